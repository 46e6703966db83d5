"""The pipeline flow: PDFs in, tagged passages and theme frequencies out.

Wiring only: each task calls one library function. One task run per document for ingest +
segment (cached on the file's content hash by ``themes.store``), then one batch classification,
aggregation, and the report.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from themes import aggregate as agg
from themes import dedup, ingest, predict, report, store
from themes.codebook import codebook_hash, theme_labels
from themes.config import DEFAULT_OUT_DIR, INGEST, SAMPLE_DIR, SEGMENT, IngestSettings
from themes.correction import correction_from_card
from themes.errors import ArgumentError, Errors
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

def _from_cache(path: Path, corpus: Path, cache_dir: Path, settings: IngestSettings):
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


@task(cache_policy=NO_CACHE, task_run_name="read {path.name}")
def read_document(
    path: Path, corpus: Path, cache_dir: Path, settings: IngestSettings = INGEST
) -> tuple[Document, list[Passage], bool]:
    """Ingest and segment one PDF, or take it from the content-hash cache (the Dask path)."""
    _, cached = _from_cache(path, corpus, cache_dir, settings)
    if cached:
        return (*cached, True)
    from themes import segment

    document = ingest.ingest_with_timeout(path, settings)
    document.file = str(path.relative_to(corpus))
    passages = segment.segment(document, SEGMENT)
    store.save_cached(cache_dir, document, passages, store.cache_key(settings, SEGMENT))
    return replace(document, paragraphs=[]), passages, False


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
        doc_id, cached = _from_cache(path, corpus, cache_dir, settings)
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


# -- classifying ------------------------------------------------------------------------------

def _write_results(out: Path, documents, passages, predictions, aggregates, html: str) -> list[Path]:
    written = store.write_outputs(
        out, documents, passages, predictions, aggregates.csv_tables()
    )
    report.write_workbook(out / "tables.xlsx", aggregates)
    report.write_report(out / "report.html", html)
    return [*written, out / "tables.xlsx", out / "report.html"]


write_results = task(name="write_results", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)(
    _write_results)


def run_pipeline(
    corpus: str, out: str, model: str | None = None, cache_dir: str | None = None,
    sections: str = "all", ocr: bool = False, workers: int | None = None, reader: str = "pool",
    logger: logging.Logger | logging.LoggerAdapter | None = None, in_flow: bool = False,
) -> dict:
    """Ingest → segment → classify → aggregate → report, with or without Prefect around it.

    Args:
        corpus, out, model, cache_dir, sections, ocr: as for :func:`pipeline`.
        workers: reader processes; default the number of cores.
        reader: "pool" reads through ``ingest.ingest_many`` here; "tasks" submits one
            ``read_document`` task per file to the flow's task runner (Dask).
        logger: where per-document lines go; the flow's run logger inside Prefect.
        in_flow: write outputs through the retrying ``write_results`` task.
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
    if reader == "tasks":
        futures = [read_document.submit(f, corpus_path, cache, settings) for f in files]
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

    t0 = time.perf_counter()
    ingest_key = store.cache_key(settings, SEGMENT)
    scores, explanations, classified = predict.classify_with_cache(loaded, documents, passages_of, cache, ingest_key)
    themes = loaded.themes
    loaded.release()  # the rest needs only the card and the theme list
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
        boilerplate = dedup.find_boilerplate(passages_df)
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
        writer = write_results if in_flow else _write_results
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
        "passages": len(passages),
        "passages_classified": classified,
        "timings": timings,
        "outputs_kept": kept is not None,
        "prevalence": prevalence,
        "_documents_df": documents_df,
        "_written": written,
    }


@flow(name="themes-pipeline", log_prints=True)
def pipeline(
    corpus: str = str(SAMPLE_DIR),
    out: str = str(DEFAULT_OUT_DIR),
    model: str | None = None,
    cache_dir: str | None = None,
    sections: str = "all",
    ocr: bool = False,
    workers: int | None = None,
    reader: str = "pool",
) -> dict:
    """Run ingest → segment → classify → aggregate → report over a folder of PDFs.

    Args:
        corpus: folder searched recursively for PDFs.
        out: output folder (created); see README for the files it receives.
        model: model version or folder; default ``models/DEFAULT``.
        cache_dir: per-document cache; default ``<out>/cache``.
        sections: "all" counts every section; "findings" counts analysis and learning only.
        ocr: OCR scans (no text layer) with OCRmyPDF and Tesseract, which must be installed.
        workers: reader processes; default the number of cores.
        reader: "pool" (reader processes here) or "tasks" (one task per file on the task runner).
    """
    result = run_pipeline(corpus, out, model, cache_dir, sections, ocr, workers, reader,
                          logger=get_run_logger(), in_flow=True)
    documents_df, written = result.pop("_documents_df"), result.pop("_written")
    publish_artifacts(result, documents_df, written, Path(corpus).resolve())
    return result


#: Artifact keys: the Prefect UI's Artifacts page keeps each key's history across runs.
PREVALENCE_ARTIFACT = "themes-prevalence"
SUMMARY_ARTIFACT = "themes-run-summary"


def publish_artifacts(result: dict, documents: pd.DataFrame, written: list[Path], corpus: Path) -> None:
    """Publish the prevalence table and a Markdown run summary as artifacts of the current flow run.

    Args:
        result: the pipeline's return value (counts, model version, prevalence records).
        documents: one row per input file (``documents.csv``), for the list of unreadable files.
        written: the output files, linked from the summary.
        corpus: the folder that was read.
    """
    table = [{k: _cell(v) for k, v in row.items()} for row in result["prevalence"]]
    create_table_artifact(
        table, key=PREVALENCE_ARTIFACT,
        description=f"Share of {result['documents_ok']} documents in which each theme is present, "
                    "with 95% Wilson intervals (prevalence.csv).",
    )
    create_markdown_artifact(run_summary_markdown(result, documents, written, corpus),
                             key=SUMMARY_ARTIFACT, description="What this run read and wrote.")


def _cell(value: object) -> object:
    """A table cell for JSON: floats to 3 decimals, missing values (NaN) as empty."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    return value


def run_summary_markdown(result: dict, documents: pd.DataFrame, written: list[Path], corpus: Path) -> str:
    """The run summary as Markdown: counts, model, unreadable files, top themes, links to outputs."""
    lines = [
        f"# Themes run: {result['documents_ok']} of {result['documents']} documents read",
        "",
        f"- **Corpus:** `{corpus}`",
        f"- **Output folder:** [{result['out']}]({Path(result['out']).as_uri()})",
        f"- **Model:** `{result['model_version']}`",
        f"- **Pages / passages:** {result['pages']} / {result['passages']}",
    ]
    failed = documents[documents["status"] != "ok"]
    if len(failed):
        lines += ["", "## Files that could not be read", ""]
        lines += [f"- `{r.file}`: {r.error_kind} ({r.error})" for r in failed.itertuples()]
    lines += ["", "## Prevalence (share of documents, 95% interval)", "",
              "| theme | present | share | 95% CI |", "|---|---:|---:|---:|"]
    for r in sorted(result["prevalence"], key=lambda r: -r["share"]):
        lines.append(f"| {r['theme']} | {r['n_present']}/{r['n_documents']} | {r['share']:.0%} "
                     f"| {r['ci_low']:.0%}–{r['ci_high']:.0%} |")
    lines += ["", "## Output files", ""]
    lines += [f"- [{path.name}]({path.resolve().as_uri()})" for path in written]
    return "\n".join(lines) + "\n"


def task_runner_for(workers: int = 2, dask: bool = False, dask_address: str | None = None) -> TaskRunner:
    """The task runner that reads ``workers`` documents at once: threads, a local Dask cluster, or a
    running Dask scheduler.

    Args:
        workers: documents read at once (threads, or local Dask worker processes).
        dask: start a temporary local Dask cluster of ``workers`` single-threaded processes on
            127.0.0.1 for this run.
        dask_address: address of a running Dask scheduler (``tcp://HOST:8786``); its workers do the
            reading, so ``workers`` and ``dask`` are ignored. Workers need this project installed
            and must see the corpus and cache folders at the same paths.
    """
    if not (dask or dask_address):
        return ThreadPoolTaskRunner(max_workers=max(1, workers))
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": max(1, workers), "threads_per_worker": 1, "processes": True,
        "host": "127.0.0.1", "dashboard_address": None,
    })


def run(corpus: str, out: str, model: str | None = None, workers: int | None = None,
        dask: bool = False, dask_address: str | None = None, sections: str = "all",
        ocr: bool = False, prefect: bool = True) -> dict:
    """Run the pipeline: ``workers`` reader processes (default: the number of cores), or one task
    per document on a Dask cluster (see :func:`task_runner_for`).

    ``sections`` is the flow's section filter: a key of :data:`SECTION_CHOICES`. With
    ``prefect=False`` the same stages run without a flow (no API start-up, no UI record).
    """
    if sections not in SECTION_CHOICES:
        raise ArgumentError(Errors.E701.format(value=sections, choices=", ".join(SECTION_CHOICES)))
    workers = workers or default_workers()
    if not prefect:
        if dask or dask_address:
            raise ArgumentError(Errors.E702)
        result = run_pipeline(corpus, out, model, None, sections, ocr, workers)
        result.pop("_documents_df"), result.pop("_written")
        return result
    if not (dask or dask_address):
        return pipeline(corpus=corpus, out=out, model=model, sections=sections, ocr=ocr,
                        workers=workers, reader="pool")
    flow_with_runner = pipeline.with_options(task_runner=task_runner_for(workers, dask, dask_address))
    with api_visible_to_workers():
        return flow_with_runner(corpus=corpus, out=out, model=model, sections=sections, ocr=ocr,
                                workers=workers, reader="tasks")


@contextmanager
def api_visible_to_workers() -> Iterator[str]:
    """Export this process's Prefect API URL so Dask worker processes report to the same API.

    Without ``PREFECT_API_URL`` each worker process would start its own temporary Prefect server.
    When none is configured, Prefect's own temporary server (127.0.0.1) is started here instead of
    at the flow's first API call; it stops when this process exits, as it would without Dask.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    if not url:
        server = SubprocessASGIServer()
        server.start()
        url = server.api_url
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
