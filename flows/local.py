"""The pipeline's stages in this process, without Prefect: PDFs in, tagged passages and theme
frequencies out.

``themes run --no-prefect`` runs :func:`run_without_prefect` and never imports Prefect (about a
second of imports and its memory); :mod:`flows.pipeline` wraps the same :func:`run_pipeline` in a
flow, with a per-file task for the Dask path and a retrying task for the writes.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from themes import aggregate as agg
from themes import dedup, ingest, predict, report, store
from themes.codebook import codebook_hash, theme_labels
from themes.config import INGEST, SEGMENT, IngestSettings
from themes.correction import correction_from_card
from themes.errors import Errors
from themes.registry import LazyModel
from themes.types import Document, Passage

#: The ``sections`` parameter: which review sections are counted.
SECTION_CHOICES = {"all": None, "findings": agg.FINDINGS_SECTIONS}


def find_pdfs(corpus: Path) -> list[Path]:
    """Every file under ``corpus`` whose name ends in .pdf (any case), in a stable order."""
    return sorted(p for p in Path(corpus).rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")


def default_workers() -> int:
    """Documents read at once when not told: the number of cores."""
    return max(1, os.cpu_count() or 1)


# -- progress ---------------------------------------------------------------------------------

@dataclass
class Progress:
    """One document finished: what a progress bar needs."""

    done: int
    total: int
    pages_read: int  # pages parsed (not taken from the cache) so far in this run
    document: Document
    cached: bool


_LISTENERS: list[Callable[[Progress], None]] = []


@contextmanager
def progress_listener(listener: Callable[[Progress], None]) -> Iterator[None]:
    """Call ``listener`` with a :class:`Progress` after every document of runs in this process."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


def _notify(event: Progress) -> None:
    for listener in _LISTENERS:
        listener(event)


# -- reading ----------------------------------------------------------------------------------

def from_cache(path: Path, corpus: Path, cache_dir: Path, settings: IngestSettings):
    """(doc_id, cached document and passages or None); a scan cached as ``no_text_layer`` is a miss
    when this run OCRs scans."""
    try:
        doc_id = ingest.doc_id_of(path)
    except OSError:
        return "", None
    key = store.cache_key(settings, SEGMENT)  # a changed setting or code version re-reads
    cached = store.load_cached(cache_dir, doc_id, str(path.relative_to(corpus)), key)
    if cached and not (settings.ocr and cached[0].error_kind == "no_text_layer"):
        return doc_id, cached
    return doc_id, None


def read_with_pool(
    files: list[Path], corpus: Path, cache_dir: Path, settings: IngestSettings, workers: int,
    on_done: Callable[[Path, Document, list[Passage], bool], None],
    on_reading: Callable[[], None] | None = None,
) -> dict[Path, tuple[Document, list[Passage], bool]]:
    """Every file's Document and passages: from the cache, or read by ``ingest.ingest_many``'s pool
    of ``workers`` reader processes (its per-file timeout and reader recycling) and segmented here.

    Files with the same content are read once. ``on_done`` is called as each file finishes;
    ``on_reading`` once before the readers start, when any file is not cached.
    Returns ``{path: (document, passages, was_cached)}`` with the seconds spent segmenting under
    the key ``"segment_s"`` of :data:`LAST_TIMINGS`.
    """
    results: dict[Path, tuple[Document, list[Passage], bool]] = {}
    todo: dict[str, list[Path]] = {}
    for path in files:
        doc_id, cached = from_cache(path, corpus, cache_dir, settings)
        if cached:
            results[path] = (*cached, True)
            on_done(path, cached[0], cached[1], True)
        else:
            todo.setdefault(doc_id or f"unreadable:{path}", []).append(path)
    waiting = {paths[0]: key for key, paths in todo.items()}
    if waiting:  # spaCy takes seconds to import; a run with nothing new to read skips it
        if on_reading is not None:
            on_reading()
        from themes import segment
    segment_s = 0.0
    for document in ingest.ingest_many(list(waiting), workers=workers, settings=settings):
        first = next((p for p, key in waiting.items() if key == document.doc_id), None)
        if first is None:  # a reader that failed before hashing: match by file name
            first = next(p for p in waiting if p.name == Path(document.file).name)
        group = todo[waiting.pop(first)]
        document.file = str(first.relative_to(corpus))
        t0 = time.perf_counter()
        passages = segment.segment(document, SEGMENT)
        segment_s += time.perf_counter() - t0
        store.save_cached(cache_dir, document, passages, store.cache_key(settings, SEGMENT))
        # The passages carry the text from here on; a cached document holds no paragraphs either,
        # and keeping them for the whole corpus doubled the text the parent holds.
        document = replace(document, paragraphs=[])
        for path in group:
            copy = replace(document, file=str(path.relative_to(corpus)))
            results[path] = (copy, passages, False)
            on_done(path, copy, passages, False)
    LAST_TIMINGS["segment_s"] = segment_s
    return results


#: Seconds the last read spent segmenting (read time is the rest of the read loop).
LAST_TIMINGS: dict[str, float] = {}


# -- the stages ------------------------------------------------------------------------------

def free_memory() -> None:
    """Collect garbage and hand freed heap back to the operating system (glibc's ``malloc_trim``;
    a no-op elsewhere): without it a whole-corpus run keeps the classifier's and the passage
    objects' freed memory until it exits, and peak memory is measured on the whole process tree."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def write_results(out: Path, documents, passages, predictions, aggregates, html: str) -> list[Path]:
    written = store.write_outputs(
        out, documents, passages, predictions, aggregates.csv_tables()
    )
    report.write_workbook(out / "tables.xlsx", aggregates)
    report.write_report(out / "report.html", html)
    return [*written, out / "tables.xlsx", out / "report.html"]


def run_pipeline(
    corpus: str, out: str, model: str | None = None, cache_dir: str | None = None,
    sections: str = "all", ocr: bool = False, workers: int | None = None,
    submit_read: Callable[[Path, Path, Path, IngestSettings], Any] | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    writer: Callable[..., list[Path]] = write_results,
) -> dict:
    """Ingest → segment → classify → aggregate → report, with or without Prefect around it.

    Args:
        corpus, out, model, cache_dir, sections, ocr: as for :func:`flows.pipeline.pipeline`.
        workers: reader processes; default the number of cores.
        submit_read: None reads through ``ingest.ingest_many``'s pool here; else called per file
            (the flow's ``read_document.submit``, on its task runner: Dask), its future's
            ``result()`` is ``(document, passages, was_cached)``.
        logger: where per-document lines go; the flow's run logger inside Prefect.
        writer: writes the outputs; the flow passes its retrying ``write_results`` task.
    """
    log = logger or logging.getLogger("themes.pipeline")
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    corpus_path, out_path = Path(corpus).resolve(), Path(out).resolve()
    cache = Path(cache_dir) if cache_dir else out_path / "cache"
    files = find_pdfs(corpus_path)
    log.info("Found %d PDF file(s) under %s", len(files), corpus_path)
    settings = replace(INGEST, ocr=ocr)
    done = 0
    pages_read = 0

    def on_done(path: Path, document: Document, doc_passages: list[Passage], was_cached: bool) -> None:
        nonlocal done, pages_read
        done += 1
        if not was_cached:
            pages_read += document.pages or 0
        state = "ok" if document.status == "ok" else f"{document.error_kind}: {document.error}"
        log.info("[%d/%d] %s — %s, %d pages, %d passages%s", done, len(files), document.file, state,
                 document.pages or 0, len(doc_passages), " (cached)" if was_cached else "")
        _notify(Progress(done, len(files), pages_read, document, was_cached))

    loaded = LazyModel(model)
    LAST_TIMINGS.clear()
    if submit_read is not None:
        futures = [submit_read(f, corpus_path, cache, settings) for f in files]
        read = {}
        for f, future in zip(files, futures):
            read[f] = future.result()
            on_done(f, *read[f])
    else:
        # New documents will need the classifier: load it while the reader processes work.
        read = read_with_pool(files, corpus_path, cache, settings, workers or default_workers(), on_done,
                              on_reading=loaded.prefetch)
    timings["segment_s"] = LAST_TIMINGS.get("segment_s", 0.0)
    timings["read_s"] = time.perf_counter() - t_start - timings["segment_s"]
    documents = [read[f][0] for f in files]
    # Files with the same content are one document: their passages (and predictions) once.
    passages_of = {read[f][0].doc_id: read[f][1] for f in files}
    passages = [p for doc_passages in passages_of.values() for p in doc_passages]
    n_passages = len(passages)

    t0 = time.perf_counter()
    ingest_key = store.cache_key(settings, SEGMENT)
    scores, explanations, classified = predict.classify_with_cache(loaded, documents, passages_of, cache, ingest_key)
    themes = loaded.themes
    loaded.release()  # the rest needs only the card and the theme list
    free_memory()
    log.info("Classified %d passage(s); %d taken from the prediction cache",
             classified, len(scores) - classified)
    timings["classify_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    documents_df = store.documents_frame(documents)
    digest = store.outputs_digest(
        documents, store.predictions_key(loaded.version, codebook_hash(), ingest_key), sections,
        json.dumps(loaded.card.get("document_evaluation"), sort_keys=True, default=str), sources=[Path(__file__)])
    kept = store.kept_outputs(out_path, digest)
    if kept is not None:
        # Nothing the outputs depend on changed and every output file is there: keep them.
        written, prevalence = kept
        timings["aggregate_s"] = time.perf_counter() - t0
        timings["report_s"] = 0.0
        log.info("Inputs unchanged since the last run: kept its %d output files in %s", len(written), out_path)
    else:
        passages_df = store.passages_frame(passages)
        predictions_df = store.predictions_frame(scores)
        # Each document's shingles and MinHash signatures come from the cache beside its passages:
        # adding one document computes only its own, and the corpus is only re-banded.
        texts_of = {d: [p.text for p in ps] for d, ps in passages_of.items()}
        # From here the frames hold everything: drop the passage and score objects before aggregating
        # and writing (with the trim after classification, the flow's peak on 40 reports fell from
        # 652 to 604 MiB).
        del read, passages_of, passages, scores
        free_memory()
        boilerplate = dedup.find_boilerplate(
            passages_df, precomputed=dedup.cached_signatures(cache, ingest_key, texts_of))
        del texts_of
        log.info("Left out %d boilerplate passage(s) repeated across documents", len(boilerplate.dropped))
        # The card's presence rule and the error rates measured under it on its held-out document
        # set; a card without a document evaluation counts with the default rule, uncorrected.
        correction = correction_from_card(loaded.card)
        if correction is None:
            log.info(Errors.E712.format(version=loaded.version))
        aggregates = agg.aggregate(
            documents_df, passages_df, predictions_df, themes, correction=correction,
            sections=SECTION_CHOICES[sections], boilerplate=boilerplate.dropped,
        )
        timings["aggregate_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        labels = theme_labels()
        html = report.render_report(aggregates, documents_df, passages_df, predictions_df, themes,
                                    loaded.version, labels, explanations)
        (out_path / store.OUTPUTS_DIGEST).unlink(missing_ok=True)  # outputs are about to change
        written = writer(out_path, documents_df, passages_df, predictions_df, aggregates, html)
        timings["report_s"] = time.perf_counter() - t0
        log.info("Wrote %d files to %s", len(written), out_path)
        prevalence = aggregates.prevalence.to_dict(orient="records")
        store.save_outputs_digest(out_path, digest, written)

    return {
        "out": str(out_path),
        "model_version": loaded.version,
        "documents": len(documents),
        "documents_ok": int((documents_df["status"] == "ok").sum()),
        "pages": int(documents_df["pages"].fillna(0).sum()),
        "pages_read": pages_read,
        "passages": n_passages,
        "passages_classified": classified,
        "timings": timings,
        "outputs_kept": kept is not None,
        "prevalence": prevalence,
        "_documents_df": documents_df,
        "_written": written,
    }


def run_without_prefect(corpus: str, out: str, model: str | None = None, workers: int | None = None,
                        sections: str = "all", ocr: bool = False) -> dict:
    """The stages of :func:`flows.pipeline.run` with ``prefect=False``: no flow, no API start-up,
    no UI record, and Prefect is never imported."""
    result = run_pipeline(corpus, out, model, None, sections, ocr, workers or default_workers())
    result.pop("_documents_df"), result.pop("_written")
    return result
