"""The real-text dev set: sentences of real reports stored as locators, never as text.

The project may not hold any sentence of the real reports in ``../shared``, so a labelled real
sentence is stored as a :class:`Locator` (file, page, character offsets and a hash of its text)
and its text is rebuilt from ``../shared`` at evaluation time with :func:`rebuild`. The
labelled sets (one file per annotator, and a gold file adjudicated from two) are read with
:func:`load_real_labels`; :func:`build_gold` and :func:`agreement` make and check the gold files.
How the sentences were drawn for labelling is a one-off: ``benchmarks/devset_candidates.py``.

Offsets of an Ofsted locator index into ``page_text(path, page)``: pdfplumber's
``page.extract_text()`` with default arguments. Offsets of a seeds locator index into the whole
``.txt`` file read as utf-8.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from themes.agreement import cohen_kappa_by_theme, labels_by_id
from themes.config import CORE_THEMES, LABELS_DIR, shared_dir
from themes.errors import Errors, LabelError, MissingFileError, MissingPageError, one_sentence

Source = Literal["ofsted", "seeds"]
SOURCES: tuple[str, ...] = ("ofsted", "seeds")

#: Folder of real-text label files (locators and labels, no text).
REAL_LABELS_DIR = LABELS_DIR / "real"

# --------------------------------------------------------------------------------------------
# Locators
# --------------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces, trimmed and lower-cased: what the hash is taken of."""
    return " ".join(text.split()).lower()


def text_sha1(text: str) -> str:
    """The sha1 hex digest of :func:`normalise` of ``text``."""
    return hashlib.sha1(normalise(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Locator:
    """Where one real sentence is, and a hash to check that the rebuilt text is the same.

    Args:
        source: ``"ofsted"`` (a PDF under ``shared/ofsted``) or ``"seeds"`` (a ``.txt`` under
            ``shared/seeds``).
        file: the file name inside the source folder.
        page: 1-based page number for Ofsted PDFs; 0 for seeds text files.
        char_start: offset of the first character in the page text (or file text).
        char_end: offset one past the last character.
        sha1: sha1 of :func:`normalise` of the located text.
    """

    source: str
    file: str
    page: int
    char_start: int
    char_end: int
    sha1: str

    @property
    def id(self) -> str:
        """Stable id ``<source>-<file stem>-p<page>-<char_start>``."""
        return f"{self.source}-{Path(self.file).stem}-p{self.page}-{self.char_start}"

    @classmethod
    def of(cls, source: str, file: str, page: int, text: str, start: int, end: int) -> Locator:
        """The locator of ``text[start:end]`` (``text`` being the page or file text)."""
        return cls(source, file, page, start, end, text_sha1(text[start:end]))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Locator:
        """A locator from a mapping holding the six locator fields (extra keys are ignored)."""
        missing = [name for name in LOCATOR_FIELDS if name not in row]
        if missing:
            raise LabelError(Errors.E515.format(row=row.get("id", "?"), missing=missing))
        return cls(
            source=str(row["source"]),
            file=str(row["file"]),
            page=int(row["page"]),
            char_start=int(row["char_start"]),
            char_end=int(row["char_end"]),
            sha1=str(row["sha1"]),
        )


LOCATOR_FIELDS: tuple[str, ...] = ("source", "file", "page", "char_start", "char_end", "sha1")


def page_text(path: str | Path, page: int) -> str:
    """The text of one PDF page (1-based) as the locators index it: ``extract_text()`` defaults."""
    import pdfplumber

    with pdfplumber.open(str(path)) as pdf:
        return page_text_of(pdf, page, path)


def page_text_of(pdf: Any, page: int, path: str | Path) -> str:
    """Text of page ``page`` of an open pdfplumber document, closing the page afterwards."""
    if not 1 <= page <= len(pdf.pages):
        raise MissingPageError(Errors.E516.format(path=path, pages=len(pdf.pages), page=page))
    pdf_page = pdf.pages[page - 1]
    try:
        return pdf_page.extract_text() or ""
    finally:
        # Without close() pdfplumber keeps every parsed page: memory grows ~8 MiB a page.
        pdf_page.close()


def source_path(shared: Path, source: str, file: str) -> Path:
    """The path of ``file`` of ``source`` under the shared folder."""
    if source not in SOURCES:
        raise LabelError(Errors.E517.format(source=source, choices=SOURCES))
    return shared / source / file


def rebuild(locators: Sequence[Locator], shared: Path | None = None) -> list[str | None]:
    """The texts of ``locators``, or ``None`` where a text cannot be rebuilt or its hash differs.

    Each PDF is opened once and each page extracted once. A warning names the file and page of
    every failure.

    Args:
        locators: where the texts are.
        shared: the shared folder; by default :func:`themes.config.shared_dir`. When there is
            none, every text is ``None`` and one warning says so.
    """
    shared = shared if shared is not None else shared_dir()
    out: list[str | None] = [None] * len(locators)
    if shared is None:
        if locators:
            warnings.warn(Errors.E524.format(count=len(locators)), stacklevel=2)
        return out

    by_file: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, loc in enumerate(locators):
        by_file[(loc.source, loc.file)].append(i)

    for (source, file), indices in by_file.items():
        path = source_path(shared, source, file)
        if not path.is_file():
            warnings.warn(Errors.E525.format(count=len(indices), path=path), stacklevel=2)
            continue
        if source == "seeds":
            texts = {0: path.read_text(encoding="utf-8")}
        else:
            texts = _ofsted_pages(path, sorted({locators[i].page for i in indices}))
        for i in indices:
            loc = locators[i]
            text = texts.get(loc.page)
            if text is None:
                warnings.warn(Errors.E526.format(locator=loc.id, name=file, page=loc.page))
                continue
            if not 0 <= loc.char_start < loc.char_end <= len(text):
                warnings.warn(
                    Errors.E527.format(locator=loc.id, start=loc.char_start, end=loc.char_end,
                                       length=len(text), name=file, page=loc.page)
                )
                continue
            piece = text[loc.char_start : loc.char_end]
            if text_sha1(piece) != loc.sha1:
                warnings.warn(
                    Errors.E528.format(locator=loc.id, name=file, page=loc.page, start=loc.char_start,
                                       end=loc.char_end)
                )
                continue
            out[i] = piece
    return out


def _ofsted_pages(path: Path, pages: Iterable[int]) -> dict[int, str]:
    """Texts of the given pages of one PDF, opened once; unreadable pages are left out."""
    import pdfplumber

    texts: dict[int, str] = {}
    try:
        with pdfplumber.open(str(path)) as pdf:
            for page in pages:
                try:
                    texts[page] = page_text_of(pdf, page, path)
                except Exception as exc:  # noqa: BLE001 - one bad page must not lose the rest
                    warnings.warn(Errors.E529.format(name=path.name, page=page, exc_type=type(exc).__name__))
    except Exception as exc:  # noqa: BLE001
        warnings.warn(Errors.E530.format(path=path, exc_type=type(exc).__name__, detail=one_sentence(exc)))
    return texts


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file; a bad line raises naming file and line."""
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LabelError(Errors.E518.format(path=path, line=number, detail=exc.msg)) from exc
    return rows


#: Which label file of a real set counts, best first: the adjudicated gold file, else annotator a's.
LABEL_FILE_PREFERENCE = ("gold", "a")


def real_label_file(stem: str) -> str:
    """The label file of a real set to use: ``<stem>.gold`` when adjudicated, else ``<stem>.a``."""
    for suffix in LABEL_FILE_PREFERENCE:
        if (REAL_LABELS_DIR / f"{stem}.{suffix}.jsonl").is_file():
            return f"{stem}.{suffix}"
    raise MissingFileError(Errors.E519.format(stem=stem, folder=REAL_LABELS_DIR))


def load_real_labels(name: str, shared: Path | None = None) -> pd.DataFrame:
    """A real-text label file with its texts rebuilt from the shared folder.

    Args:
        name: the file stem under ``corpus/labels/real``, e.g. ``"ofsted_dev.a"`` or ``"seeds.a"``.
        shared: the shared folder; by default :func:`themes.config.shared_dir`.

    Returns:
        Columns ``id, text, labels`` (a list), the locator fields and ``annotator``; rows whose
        text cannot be rebuilt are dropped with one warning giving their count.
    """
    path = REAL_LABELS_DIR / f"{name}.jsonl"
    if not path.is_file():
        raise MissingFileError(Errors.E520.format(path=path))
    rows = read_jsonl(path)
    locators = [Locator.from_row(row) for row in rows]
    texts = rebuild(locators, shared)
    records = []
    for row, loc, text in zip(rows, locators, texts, strict=True):
        if text is None:
            continue
        records.append(
            {
                "id": row.get("id", loc.id),
                "text": text,
                "labels": list(row.get("labels", [])),
                **asdict(loc),
                "annotator": row.get("annotator", ""),
            }
        )
    dropped = len(rows) - len(records)
    if dropped:
        warnings.warn(Errors.E531.format(name=name, dropped=dropped, rows=len(rows)))
    columns = ["id", "text", "labels", *LOCATOR_FIELDS, "annotator"]
    return pd.DataFrame.from_records(records, columns=columns)


# --------------------------------------------------------------------------------------------
# Adjudication: two annotators' labels and an adjudicator's decisions make one gold file
# --------------------------------------------------------------------------------------------

#: The adjudicator's decisions on the rows where annotators a and b disagree, one file per set:
#: ``{"id", "labels", "rule", "chose"}`` (no text). Rules are written out in the codebook.
ADJUDICATION_DIR = REAL_LABELS_DIR / "adjudication"


def build_gold(
    a_rows: Sequence[Mapping[str, Any]],
    b_rows: Sequence[Mapping[str, Any]],
    decisions: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One gold row per item: the agreed labels where a and b agree, the decision where they differ.

    Rows keep annotator a's locator fields and order and get ``annotator: "gold"``.

    Raises:
        ValueError: when the two files do not hold the same ids, or a disagreement has no decision.
    """
    a = {str(r["id"]): r for r in a_rows}
    b = labels_by_id(b_rows)
    if set(a) != set(b):
        raise LabelError(Errors.E521.format(count=len(set(a) ^ set(b))))
    decided = {str(d["id"]): sorted(d["labels"]) for d in decisions}
    gold = []
    for item_id, row in a.items():
        agreed = set(row["labels"]) == b[item_id]
        if not agreed and item_id not in decided:
            raise LabelError(Errors.E522.format(item=item_id))
        labels = sorted(row["labels"]) if agreed else decided[item_id]
        unknown = set(labels) - set(CORE_THEMES)
        if unknown:
            raise LabelError(Errors.E523.format(item=item_id, themes=sorted(unknown)))
        gold.append({**{k: row[k] for k in ("id", *LOCATOR_FIELDS)}, "labels": labels, "annotator": "gold"})
    return gold


def write_gold(stem: str) -> Path:
    """Write ``<stem>.gold.jsonl`` from ``<stem>.a``, ``<stem>.b`` and ``adjudication/<stem>.jsonl``."""
    gold = build_gold(
        read_jsonl(REAL_LABELS_DIR / f"{stem}.a.jsonl"),
        read_jsonl(REAL_LABELS_DIR / f"{stem}.b.jsonl"),
        read_jsonl(ADJUDICATION_DIR / f"{stem}.jsonl"),
    )
    path = REAL_LABELS_DIR / f"{stem}.gold.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in gold), encoding="utf-8")
    tmp.replace(path)
    return path


def agreement(stem: str) -> pd.DataFrame:
    """Per core theme: Cohen's kappa a–b (before adjudication) and a–gold, b–gold (after)."""
    rows = {who: read_jsonl(REAL_LABELS_DIR / f"{stem}.{who}.jsonl") for who in ("a", "b", "gold")}
    pairs = {"a-b": ("a", "b"), "a-gold": ("a", "gold"), "b-gold": ("b", "gold")}
    table = {name: cohen_kappa_by_theme(rows[x], rows[y]) for name, (x, y) in pairs.items()}
    out = pd.DataFrame(table).T.round(2)
    out.insert(0, "n", len(rows["gold"]))
    out["positives (gold)"] = sum(bool(r["labels"]) for r in rows["gold"])
    return out
