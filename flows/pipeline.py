"""The pipeline flow: PDFs in, tagged passages and theme frequencies out.

Wiring only: each task calls one library function. One task run per document for ingest +
segment (cached on the file's content hash by ``themes.store``), then one batch classification,
aggregation, and the report.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from themes import aggregate as agg
from themes import dedup, ingest, report, segment, store
from themes.classify import score_passages
from themes.codebook import load_codebook
from themes.config import DEFAULT_OUT_DIR, INGEST, SAMPLE_DIR, SEGMENT, IngestSettings
from themes.registry import load_model
from themes.types import Document, Passage

#: The ``sections`` parameter: which review sections are counted.
SECTION_CHOICES = {"all": None, "findings": agg.FINDINGS_SECTIONS}


def find_pdfs(corpus: Path) -> list[Path]:
    """Every file under ``corpus`` whose name ends in .pdf (any case), in a stable order."""
    return sorted(p for p in Path(corpus).rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")


@task(cache_policy=NO_CACHE, task_run_name="read {path.name}")
def read_document(
    path: Path, corpus: Path, cache_dir: Path, settings: IngestSettings = INGEST
) -> tuple[Document, list[Passage], bool]:
    """Ingest and segment one PDF, or take it from the content-hash cache.

    A scan cached as ``no_text_layer`` is read again when this run OCRs scans.
    """
    rel = str(path.relative_to(corpus))
    doc_id = ingest.doc_id_of(path)
    key = store.cache_key(settings, SEGMENT)  # a changed setting or code version re-reads
    cached = store.load_cached(cache_dir, doc_id, rel, key)
    if cached and not (settings.ocr and cached[0].error_kind == "no_text_layer"):
        return (*cached, True)
    document = ingest.ingest_with_timeout(path, settings)
    document.file = rel
    passages = segment.segment(document)
    store.save_cached(cache_dir, document, passages, key)
    return document, passages, False


@task(cache_policy=NO_CACHE)
def classify_passages(passages: list[Passage], model: str | None):
    loaded = load_model(model)
    return loaded, score_passages(loaded.model, passages, loaded.version)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def write_results(out: Path, documents, passages, predictions, aggregates, html: str) -> list[Path]:
    written = store.write_outputs(
        out, documents, passages, predictions, aggregates.csv_tables()
    )
    report.write_workbook(out / "tables.xlsx", aggregates)
    report.write_report(out / "report.html", html)
    return [*written, out / "tables.xlsx", out / "report.html"]


@flow(name="themes-pipeline", log_prints=True)
def pipeline(
    corpus: str = str(SAMPLE_DIR),
    out: str = str(DEFAULT_OUT_DIR),
    model: str | None = None,
    cache_dir: str | None = None,
    sections: str = "all",
    ocr: bool = False,
) -> dict:
    """Run ingest → segment → classify → aggregate → report over a folder of PDFs.

    Args:
        corpus: folder searched recursively for PDFs.
        out: output folder (created); see README for the files it receives.
        model: model version or folder; default ``models/DEFAULT``.
        cache_dir: per-document cache; default ``<out>/cache``.
        sections: "all" counts every section; "findings" counts analysis and learning only.
        ocr: OCR scans (no text layer) with OCRmyPDF and Tesseract, which must be installed.
    """
    logger = get_run_logger()
    corpus_path, out_path = Path(corpus).resolve(), Path(out).resolve()
    cache = Path(cache_dir) if cache_dir else out_path / "cache"
    files = find_pdfs(corpus_path)
    logger.info("Found %d PDF file(s) under %s", len(files), corpus_path)
    settings = replace(INGEST, ocr=ocr)
    futures = [read_document.submit(f, corpus_path, cache, settings) for f in files]
    documents, passages = [], []
    for i, future in enumerate(futures, start=1):
        document, doc_passages, was_cached = future.result()
        documents.append(document)
        passages.extend(doc_passages)
        state = "ok" if document.status == "ok" else f"{document.error_kind}: {document.error}"
        logger.info(
            "[%d/%d] %s — %s, %d pages, %d passages%s", i, len(files), document.file, state,
            document.pages, len(doc_passages), " (cached)" if was_cached else "",
        )
    loaded, scores = classify_passages(passages, model)
    documents_df = store.documents_frame(documents)
    passages_df = store.passages_frame(passages)
    predictions_df = store.predictions_frame(scores)
    themes = list(loaded.model.themes_)
    boilerplate = dedup.find_boilerplate(passages_df)
    logger.info("Left out %d boilerplate passage(s) repeated across documents", len(boilerplate.dropped))
    errors = [agg.ClassifierError(**counts) for counts in loaded.card.get("document_errors", [])]
    aggregates = agg.aggregate(
        documents_df, passages_df, predictions_df, themes, errors=errors or None,
        sections=SECTION_CHOICES[sections], boilerplate=boilerplate.dropped,
    )
    labels = {t.id: t.label for t in load_codebook().themes}
    explanations = {
        (s.passage_id, t): loaded.model.explain(p.text, t)
        for s, p in zip(scores, passages)
        for t in s.themes
    }
    html = report.render_report(aggregates, documents_df, passages_df, predictions_df, themes,
                                loaded.version, labels, explanations)
    written = write_results(out_path, documents_df, passages_df, predictions_df, aggregates, html)
    logger.info("Wrote %d files to %s", len(written), out_path)
    result = {
        "out": str(out_path),
        "model_version": loaded.version,
        "documents": len(documents),
        "documents_ok": int((documents_df["status"] == "ok").sum()),
        "pages": int(documents_df["pages"].fillna(0).sum()),
        "passages": len(passages),
        "prevalence": aggregates.prevalence.to_dict(orient="records"),
    }
    publish_artifacts(result, documents_df, written, corpus_path)
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


def run(corpus: str, out: str, model: str | None = None, workers: int = 2, dask: bool = False,
        dask_address: str | None = None, sections: str = "all", ocr: bool = False) -> dict:
    """Call the pipeline flow with ``workers`` documents read at once (see :func:`task_runner_for`).

    ``sections`` is the flow's section filter: a key of :data:`SECTION_CHOICES`.
    """
    if sections not in SECTION_CHOICES:
        raise ValueError(f"Unknown sections {sections!r}: use one of {', '.join(SECTION_CHOICES)}.")
    runner = task_runner_for(workers, dask, dask_address)
    flow_with_runner = pipeline.with_options(task_runner=runner)
    if not (dask or dask_address):
        return flow_with_runner(corpus=corpus, out=out, model=model, sections=sections, ocr=ocr)
    with api_visible_to_workers():
        return flow_with_runner(corpus=corpus, out=out, model=model, sections=sections, ocr=ocr)


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
