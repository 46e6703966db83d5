"""The pipeline flow: PDFs in, tagged passages and theme frequencies out.

Wiring only: the stages are :func:`flows.local.run_pipeline`, run here inside a flow, with one task
run per document for ingest + segment on the Dask path (cached on the file's content hash by
``themes.store``), a retrying task for the writes, and the run's artifacts.
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

from flows import local
from flows.local import (
    SECTION_CHOICES,
    default_workers,
    from_cache,
    run_pipeline,
    run_without_prefect,
)
from themes import ingest, store
from themes.config import DEFAULT_OUT_DIR, INGEST, SAMPLE_DIR, SEGMENT, IngestSettings
from themes.errors import ArgumentError, Errors
from themes.types import Document, Passage


@task(cache_policy=NO_CACHE, task_run_name="read {path.name}")
def read_document(
    path: Path, corpus: Path, cache_dir: Path, settings: IngestSettings = INGEST
) -> tuple[Document, list[Passage], bool]:
    """Ingest and segment one PDF, or take it from the content-hash cache (the Dask path)."""
    _, cached = from_cache(path, corpus, cache_dir, settings)
    if cached:
        return (*cached, True)
    from themes import segment

    document = ingest.ingest_with_timeout(path, settings)
    document.file = str(path.relative_to(corpus))
    passages = segment.segment(document, SEGMENT)
    store.save_cached(cache_dir, document, passages, store.cache_key(settings, SEGMENT))
    return replace(document, paragraphs=[]), passages, False


write_results = task(name="write_results", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)(
    local.write_results)


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
    result = run_pipeline(corpus, out, model, cache_dir, sections, ocr, workers,
                          submit_read=read_document.submit if reader == "tasks" else None,
                          logger=get_run_logger(), writer=write_results)
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
        return run_without_prefect(corpus, out, model, workers, sections, ocr)
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
