"""The pipeline flow: PDFs in, tagged passages and theme frequencies out.

Wiring only: each task calls one library function. One task run per document for ingest +
segment (cached on the file's content hash by ``themes.store``), then one batch classification,
aggregation, and the report.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from themes import aggregate as agg
from themes import ingest, report, segment, store
from themes.classify import score_passages
from themes.codebook import load_codebook
from themes.config import DEFAULT_OUT_DIR, INGEST, SAMPLE_DIR
from themes.registry import load_model
from themes.types import Document, Passage


def find_pdfs(corpus: Path) -> list[Path]:
    """Every file under ``corpus`` whose name ends in .pdf (any case), in a stable order."""
    return sorted(p for p in Path(corpus).rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")


@task(cache_policy=NO_CACHE, task_run_name="read {path.name}")
def read_document(path: Path, corpus: Path, cache_dir: Path) -> tuple[Document, list[Passage], bool]:
    """Ingest and segment one PDF, or take it from the content-hash cache."""
    rel = str(path.relative_to(corpus))
    doc_id = ingest.doc_id_of(path)
    cached = store.load_cached(cache_dir, doc_id, rel)
    if cached:
        return (*cached, True)
    document = ingest.ingest_with_timeout(path, INGEST)
    document.file = rel
    passages = segment.segment(document)
    store.save_cached(cache_dir, document, passages)
    return document, passages, False


@task(cache_policy=NO_CACHE)
def classify_passages(passages: list[Passage], model: str | None):
    loaded = load_model(model)
    return loaded, score_passages(loaded.model, passages, loaded.version)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def write_results(out: Path, documents, passages, predictions, aggregates, html: str) -> list[Path]:
    written = store.write_outputs(
        out, documents, passages, predictions,
        {"document_themes": aggregates.document_themes, "prevalence": aggregates.prevalence,
         "breakdowns": aggregates.breakdowns},
    )
    report.write_report(out / "report.html", html)
    return [*written, out / "report.html"]


@flow(name="themes-pipeline", log_prints=True)
def pipeline(
    corpus: str = str(SAMPLE_DIR),
    out: str = str(DEFAULT_OUT_DIR),
    model: str | None = None,
    cache_dir: str | None = None,
) -> dict:
    """Run ingest → segment → classify → aggregate → report over a folder of PDFs.

    Args:
        corpus: folder searched recursively for PDFs.
        out: output folder (created); see README for the files it receives.
        model: model version or folder; default ``models/DEFAULT``.
        cache_dir: per-document cache; default ``<out>/cache``.
    """
    logger = get_run_logger()
    corpus_path, out_path = Path(corpus).resolve(), Path(out).resolve()
    cache = Path(cache_dir) if cache_dir else out_path / "cache"
    files = find_pdfs(corpus_path)
    logger.info("Found %d PDF file(s) under %s", len(files), corpus_path)
    futures = [read_document.submit(f, corpus_path, cache) for f in files]
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
    aggregates = agg.aggregate(documents_df, passages_df, predictions_df, themes)
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
    return {
        "out": str(out_path),
        "model_version": loaded.version,
        "documents": len(documents),
        "documents_ok": int((documents_df["status"] == "ok").sum()),
        "pages": int(documents_df["pages"].fillna(0).sum()),
        "passages": len(passages),
        "prevalence": aggregates.prevalence.to_dict(orient="records"),
    }


def run(corpus: str, out: str, model: str | None = None, workers: int = 2) -> dict:
    """Call the pipeline flow with ``workers`` documents read at once."""
    runner = ThreadPoolTaskRunner(max_workers=max(1, workers))
    return pipeline.with_options(task_runner=runner)(corpus=corpus, out=out, model=model)
