"""Where results live on disk: the per-document cache and the run's output tables.

The cache holds one JSON file per document, named by the sha256 of the file's bytes, so an
unchanged or renamed PDF is never parsed twice and a changed one is parsed again. Every write goes
to a temporary file first and is moved into place, so a crash or kill leaves either the old file or
the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from themes.config import AGGREGATE, INGEST, SEGMENT, IngestSettings, SegmentSettings
from themes.types import TRANSIENT_ERROR_KINDS, Document, Passage, PassageScores

#: Bump when ingest or segment change what they produce, so cached documents are rebuilt. (The
#: cache key also hashes their source, so this is a name for humans more than a safeguard.)
PIPELINE_CACHE_VERSION = "ingest-3"

#: Ingest settings that limit a run but do not change what a file yields when it is read; OCR is
#: handled by the caller (a cached scan is read again when a run OCRs).
_RUNTIME_ONLY = frozenset({"timeout_s", "ocr", "ocr_timeout_s"})
#: Modules (and packages, every module in them) whose code decides what a cached document holds.
_CACHED_CODE = ("ingest", "segment.py", "types.py", "text.py", "errors.py")

DOCUMENT_COLUMNS = [
    "doc_id", "file", "status", "error_kind", "error", "pages", "title", "area", "year", "review_type",
    "ocr", "bad_pages",
]
PASSAGE_COLUMNS = [
    "passage_id", "doc_id", "page", "char_start", "char_end", "bbox", "section", "kind", "text",
]
PREDICTION_COLUMNS = ["passage_id", "theme", "score", "tagged", "model_version"]


@functools.cache
def _code_version() -> str:
    """Package version plus a hash of the code that produces cached documents."""
    from importlib import metadata

    try:
        version = metadata.version("themes")
    except metadata.PackageNotFoundError:
        version = "0"
    h = hashlib.sha256(f"{PIPELINE_CACHE_VERSION}:{version}".encode())
    for name in _CACHED_CODE:
        path = Path(__file__).parent / name
        for module in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            h.update(module.read_bytes())
    return h.hexdigest()


def cache_key(ingest: IngestSettings = INGEST, segment: SegmentSettings = SEGMENT) -> str:
    """Short hash of the ingest and segment settings and the code's version: the cache's folder.

    Changing any setting that alters what a document yields, or the ingest/segment code, gives a
    new key, so cached documents are read again rather than served stale.
    """
    knobs = {
        "ingest": {k: v for k, v in dataclasses.asdict(ingest).items() if k not in _RUNTIME_ONLY},
        "segment": dataclasses.asdict(segment),
        "code": _code_version(),
    }
    return hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:16]


def _readable_by_all(tmp: Path) -> None:
    """Give a mkstemp file (0600) the mode a plainly created file would get, without os.umask."""
    # Creating a throwaway file beside it shows the umask without changing it process-wide
    # (os.umask is a process-wide setter, racy under threads).
    probe = tmp.with_name(tmp.name + ".mode")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        os.close(fd)
        os.chmod(tmp, probe.stat().st_mode & 0o777)
    except OSError:
        pass  # keep mkstemp's private mode rather than fail the write
    finally:
        probe.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path`` and move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        _readable_by_all(tmp)  # mkstemp makes 0600; outputs should be as readable as any file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# -- per-document cache ---------------------------------------------------------------------

def cache_path(cache_dir: Path, doc_id: str, key: str | None = None) -> Path:
    """Where a document's cached result lives: ``<cache>/<settings and code key>/<doc_id>.json``."""
    return Path(cache_dir) / (key or cache_key()) / f"{doc_id}.json"


def is_transient_failure(document: Document) -> bool:
    """Whether a document's error is a property of this run (timeout, killed reader), not the file.

    Such errors are never cached: the next run tries again. The kernel's OOM killer picks the
    largest process, often a reader, and a later run may have more time or memory.
    """
    return document.status == "error" and document.error_kind in TRANSIENT_ERROR_KINDS


def read_cache_entry(path: Path) -> dict | None:
    """A cache entry's JSON, or None when it is missing or unreadable: the caller rebuilds it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def save_cached(
    cache_dir: Path, document: Document, passages: list[Passage], key: str | None = None
) -> None:
    """Cache one document's metadata and passages; transient failures (timeouts, a killed reader
    process) are not cached, so the next run reads the file again."""
    if is_transient_failure(document):
        return
    meta = {k: v for k, v in dataclasses.asdict(document).items() if k != "paragraphs"}
    payload = {"document": meta, "passages": [dataclasses.asdict(p) for p in passages]}
    atomic_write_text(cache_path(cache_dir, document.doc_id, key), json.dumps(payload))


def load_cached(
    cache_dir: Path, doc_id: str, file: str, key: str | None = None
) -> tuple[Document, list[Passage]] | None:
    """The cached result for a document's content, relabelled with its current file name.

    ``key`` is :func:`cache_key` of the run's settings; by default that of the default settings.
    """
    payload = read_cache_entry(cache_path(cache_dir, doc_id, key))
    if payload is None:
        return None
    document = Document(**{**payload["document"], "file": file})
    passages = [Passage(**{**p, "bbox": tuple(p["bbox"])}) for p in payload["passages"]]
    return document, passages


# -- output tables --------------------------------------------------------------------------

def documents_frame(documents: list[Document]) -> pd.DataFrame:
    rows = [{c: getattr(d, c) for c in DOCUMENT_COLUMNS} for d in documents]
    for row in rows:  # "3;7": pages that failed in a file whose other pages were read
        row["bad_pages"] = ";".join(str(n) for n in row["bad_pages"])
    frame = pd.DataFrame(rows, columns=DOCUMENT_COLUMNS)
    frame["year"] = frame["year"].astype("Int64")
    frame["pages"] = frame["pages"].astype("Int64")
    return frame


def passages_frame(passages: list[Passage]) -> pd.DataFrame:
    rows = [{c: getattr(p, c) for c in PASSAGE_COLUMNS} for p in passages]
    frame = pd.DataFrame(rows, columns=PASSAGE_COLUMNS)
    frame["bbox"] = frame["bbox"].map(lambda b: [float(x) for x in b])
    return frame


def predictions_frame(scores: list[PassageScores]) -> pd.DataFrame:
    """One row per passage and theme. Built column by column: a dict per row costs about 0.5 KB,
    which at a whole corpus (a million rows) was most of the run's peak memory."""
    if not scores:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    passage_ids, themes, values, tagged, versions = [], [], [], [], []
    for s in scores:
        n = len(s.scores)
        passage_ids += [s.passage_id] * n
        themes += s.scores.keys()
        values += s.scores.values()
        tagged += (theme in s.themes for theme in s.scores)
        versions += [s.model_version] * n
    return pd.DataFrame({"passage_id": passage_ids, "theme": themes, "score": pd.array(values, dtype=float),
                         "tagged": pd.array(tagged, dtype=bool), "model_version": versions},
                        columns=PREDICTION_COLUMNS)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    # utf-8-sig so Excel opens accented partnership names correctly.
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8-sig"))


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_outputs(
    out_dir: Path,
    documents: pd.DataFrame,
    passages: pd.DataFrame,
    predictions: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
) -> list[Path]:
    """Write the run's contract files (``documents.csv``, parquet files, CSV tables) atomically."""
    out_dir = Path(out_dir)
    written = []
    for name, frame in (("documents.csv", documents), *((f"{k}.csv", v) for k, v in tables.items())):
        write_csv(frame, out_dir / name)
        written.append(out_dir / name)
    for name, frame in (("passages.parquet", passages), ("predictions.parquet", predictions)):
        write_parquet(frame, out_dir / name)
        written.append(out_dir / name)
    return written


# -- per-document prediction cache ----------------------------------------------------------
#
# Beside the ingest cache: one JSON file per (document, model version, codebook), holding the
# document's passage scores and the explanations the report shows. A re-run with the same model
# classifies nothing again; another model or codebook is another folder, so it classifies all.
# Passages (and their ids) come from the ingest cache, so its key is part of the folder name too:
# changed ingest or segment settings re-read the documents and re-classify their new passages.

#: Bump when the same model version scores passages differently, so cached predictions are made
#: again. scores-2: the encoder scores each passage on its own (batched scores depended on the
#: passages batched together).
SCORING_REVISION = "scores-2"


def predictions_key(model_version: str, codebook_hash: str, ingest_key: str = "") -> str:
    """The cache folder name for one model, scoring revision, codebook and ingest cache key
    (:func:`cache_key`): ``<model version>--<revision>--<codebook hash[:12]>--<ingest key>``."""
    return f"{model_version}--{SCORING_REVISION}--{codebook_hash[:12]}--{ingest_key or cache_key()}"


def predictions_path(cache_dir: Path, doc_id: str, key: str) -> Path:
    return Path(cache_dir) / f"predictions-{PIPELINE_CACHE_VERSION}" / key / f"{doc_id}.json"


def save_cached_predictions(
    cache_dir: Path, doc_id: str, key: str, scores: list[PassageScores],
    explanations: dict[tuple[str, str], list[str]],
) -> None:
    """Cache one document's passage scores and explanations (written atomically)."""
    payload = {
        # Plain dicts by hand: dataclasses.asdict deep-copies every score and took seconds a corpus.
        "scores": [{"passage_id": s.passage_id, "scores": s.scores, "themes": s.themes,
                    "model_version": s.model_version} for s in scores],
        "explanations": [[pid, theme, terms] for (pid, theme), terms in explanations.items()],
    }
    atomic_write_text(predictions_path(cache_dir, doc_id, key), json.dumps(payload))


def load_cached_predictions(
    cache_dir: Path, doc_id: str, key: str
) -> tuple[list[PassageScores], dict[tuple[str, str], list[str]]] | None:
    """A document's cached scores and explanations for this model and codebook, or None."""
    payload = read_cache_entry(predictions_path(cache_dir, doc_id, key))
    if payload is None:
        return None  # rebuilt by classifying again
    scores = [PassageScores(**s) for s in payload["scores"]]
    explanations = {(pid, theme): terms for pid, theme, terms in payload["explanations"]}
    return scores, explanations


# -- output freshness ----------------------------------------------------------------------

#: Beside the outputs: what they were built from (see :func:`outputs_digest`) and their names.
OUTPUTS_DIGEST = ".themes-outputs.json"


def outputs_digest(
    documents: list[Document], predictions_key: str, sections: str, correction: str = "",
    sources: Sequence[Path] = (),
) -> str:
    """A digest of everything the output files depend on: each file's name, content hash and read
    status, the model and codebook (``predictions_key``), the section filter, the card's document
    evaluation (``correction``: presence rule and error rates, which ``--write-card`` can change
    without a new model version), the aggregation settings and this code (the package's and the
    flow's source)."""
    h = hashlib.sha256()
    parts = [[d.file, d.doc_id, d.status, d.error_kind, d.error, d.pages] for d in documents]
    h.update(json.dumps([parts, predictions_key, sections, correction, repr(AGGREGATE),
                         PIPELINE_CACHE_VERSION], default=str).encode())
    for source in sorted(Path(__file__).parent.glob("*.py")) + list(sources):
        h.update(source.read_bytes())
    return h.hexdigest()


def kept_outputs(out: Path, digest: str) -> tuple[list[Path], list[dict]] | None:
    """The last run's output files and prevalence rows when they were built from ``digest`` and
    all still exist; None otherwise (they are rebuilt)."""
    try:
        saved = json.loads((out / OUTPUTS_DIGEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = [out / name for name in saved.get("files", [])]
    if saved.get("digest") != digest or not files or not all(f.is_file() for f in files):
        return None
    prevalence = pd.read_csv(out / "prevalence.csv", encoding="utf-8-sig")
    return files, prevalence.to_dict(orient="records")


def save_outputs_digest(out: Path, digest: str, written: list[Path]) -> None:
    atomic_write_text(out / OUTPUTS_DIGEST,
                            json.dumps({"digest": digest, "files": [p.name for p in written]}))
