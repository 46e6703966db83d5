"""The ``themes`` command line: each command parses arguments and calls one library function.

A :class:`~themes.errors.ThemesError` raised anywhere under a command ends it with one line,
``error[E301]: ...``, on stderr and exit status 1; ``THEMES_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from themes.config import (
    DEFAULT_OUT_DIR,
    LABELS_DIR,
    MODELS_DIR,
    SAMPLE_DIR,
    apply_prefect_environment,
)
from themes.errors import Errors, ThemesError, error_line


class CodedErrorsGroup(TyperGroup):
    """The root command group: a ``ThemesError`` from any command becomes one coded line on stderr."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ThemesError as err:
            if os.environ.get("THEMES_DEBUG") == "1":
                raise
            click.echo(error_line(err), err=True)
            raise typer.Exit(1) from None


app = typer.Typer(help="Find the Panel's practice themes in safeguarding review PDFs.", no_args_is_help=True,
                  cls=CodedErrorsGroup)
console = Console(stderr=True)


def prevalence_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    for column in ("theme", "documents", "present", "share", "95% CI"):
        table.add_column(column, justify="left" if column == "theme" else "right")
    for r in rows:
        table.add_row(r["theme"], str(r["n_documents"]), str(r["n_present"]), f"{r['share']:.0%}",
                      f"{r['ci_low']:.0%}–{r['ci_high']:.0%}")
    return table


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[None]:
    """A progress bar on stderr while documents are read: documents done, pages/s, time left."""
    if not enabled:
        yield
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from flows.local import progress_listener

    start = time.monotonic()
    bar = Progress(TextColumn("reading"), BarColumn(), MofNCompleteColumn(), TextColumn("documents"),
                   TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console,
                   transient=False)
    task = bar.add_task("read", total=None, rate="")

    def update(event) -> None:
        elapsed = max(time.monotonic() - start, 1e-6)
        bar.update(task, completed=event.done, total=event.total,
                   rate=f"{event.pages_read / elapsed:.1f} pages/s")

    with bar, progress_listener(update):
        yield


@app.command()
def run(
    corpus: Annotated[Path, typer.Option(help="Folder of PDFs (searched recursively).")] = SAMPLE_DIR,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = DEFAULT_OUT_DIR,
    model: Annotated[str | None, typer.Option(help="Model version or folder; default models/DEFAULT.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Documents read at once: reader processes, or local Dask worker processes with --dask; "
             "default the number of cores.")] = None,
    dask: Annotated[bool, typer.Option(
        "--dask", help="Read documents on a temporary local Dask cluster of --workers processes.")] = False,
    dask_address: Annotated[str | None, typer.Option(
        help="Scheduler of a running Dask cluster (tcp://HOST:8786) whose workers read the documents; "
             "they must see --corpus and --out at the same paths.")] = None,
    sections: Annotated[str, typer.Option(
        help="Review sections counted: all, or findings (analysis and learning only).")] = "all",
    ocr: Annotated[bool, typer.Option(
        "--ocr", help="OCR scanned PDFs (no text layer); needs ocrmypdf and tesseract installed.")] = False,
    prefect: Annotated[bool, typer.Option(
        "--prefect/--no-prefect", help="Run as a Prefect flow (recorded in the UI; the local API "
             "takes seconds to start); --no-prefect runs the same stages directly.")] = True,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Show a progress bar (documents, pages/s, time left).")] = True,
    summary_json: Annotated[Path | None, typer.Option(
        help="Also write the run's counts and per-stage seconds to this JSON file.")] = None,
) -> None:
    """Run the whole pipeline over a folder of PDFs and print the theme table."""
    if not corpus.is_dir():
        raise typer.BadParameter(Errors.E001.format(path=corpus), param_hint="--corpus")
    if dask and dask_address:
        raise typer.BadParameter(Errors.E002, param_hint="--dask-address")
    apply_prefect_environment()
    from flows.local import SECTION_CHOICES, run_without_prefect

    if sections not in SECTION_CHOICES:
        raise typer.BadParameter(Errors.E003.format(value=sections, choices=", ".join(SECTION_CHOICES)),
                                 param_hint="--sections")
    with progress_bar(progress):
        if prefect or dask or dask_address:  # flows.pipeline imports Prefect (about a second)
            from flows.pipeline import run as run_flow

            result = run_flow(str(corpus), str(out), model, workers, dask=dask, dask_address=dask_address,
                              sections=sections, ocr=ocr, prefect=prefect)
        else:
            result = run_without_prefect(str(corpus), str(out), model, workers, sections=sections, ocr=ocr)
    if summary_json:
        summary_json.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    Console().print(prevalence_table(
        result["prevalence"],
        f"{result['documents_ok']} of {result['documents']} documents read, {result['pages']} pages, "
        f"{result['passages']} passages — model {result['model_version']}",
    ))
    Console().print(f"Results in {result['out']} (open report.html in a browser).")


@app.command()
def classify(
    input: Annotated[str, typer.Argument(help="JSON Lines with id and text; - for stdin.")] = "-",
    model: Annotated[str | None, typer.Option(help="Model version or folder.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--out", "--output", help="Write here instead of stdout.")] = None,
) -> None:
    """Score JSON Lines {"id", "text"}: writes {"id", "scores", "themes"} per line."""
    from themes.classify import score_texts
    from themes.registry import load_model

    loaded = load_model(model)
    with sys.stdin if input == "-" else open(input, encoding="utf-8") as stream:
        records = []
        for n, line in enumerate(stream, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                    records.append((record["id"], str(record["text"])))
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise typer.BadParameter(Errors.E004.format(line=n, detail=err)) from err
    proba, tagged = score_texts(loaded.model, [text for _, text in records])
    themes = loaded.model.themes_
    lines = [
        json.dumps({
            "id": rid,
            "scores": {t: round(float(p), 4) for t, p in zip(themes, p_row)},
            "themes": [t for t, on in zip(themes, t_row) if on],
        }) + "\n"
        for (rid, _), p_row, t_row in zip(records, proba, tagged)
    ]
    if output:
        output.write_text("".join(lines), encoding="utf-8")
    else:
        sys.stdout.writelines(lines)


@app.command()
def train(
    labels: Annotated[Path, typer.Option(help="Folder of labelled passages-*.jsonl.")] = LABELS_DIR,
    models_dir: Annotated[Path, typer.Option(help="Where model versions are saved.")] = MODELS_DIR,
    make_default: Annotated[bool, typer.Option(help="Point models/DEFAULT at the new model.")] = False,
    learning_curve: Annotated[bool, typer.Option(help="Fit extra models for the learning curve.")] = True,
) -> None:
    """Train a classifier on labelled passages and save it with its card."""
    from themes.tables import markdown_table
    from themes.train import train_and_save

    folder, result = train_and_save(labels, models_dir, make_default=make_default,
                                    with_learning_curve=learning_curve)
    cols = ["system", "split", "n", "macro_f1_core", "hard_neg_fpr"]
    print(markdown_table(result.comparison[cols]))
    console.print(f"Saved {folder}" + (" (now the default)" if make_default else ""))


@app.command()
def evaluate(
    model: Annotated[str | None, typer.Option(help="Model version or folder.")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write evaluation.json and evaluation.md here.")] = None,
    documents: Annotated[Path | None, typer.Option(
        help="Folder of labelled PDFs (expected/<stem>.json beside them): evaluate at document level, "
             "model and keyword search, instead of on passages.")] = None,
    write_card: Annotated[bool, typer.Option(
        "--write-card", help="With --documents: choose the presence rule there and store the evaluation "
             "in the model's card (its corrected shares then use it).")] = False,
    cache_dir: Annotated[Path | None, typer.Option(
        help="With --documents: per-document cache folder, so unchanged PDFs are not read again.")] = None,
) -> None:
    """Score a model on the held-out documents and real-text sets, baselines beside it.

    With --documents, score document-level calls (accuracy, sensitivity, specificity, true and
    predicted share, corrected share) for the model and for keyword search.
    """
    if documents is None:
        if write_card:
            raise typer.BadParameter(Errors.E005, param_hint="--write-card")
        from themes.evaluate import evaluate_model

        result = evaluate_model(model, out)
        print(result.markdown)
        return
    if not documents.is_dir():
        raise typer.BadParameter(Errors.E006.format(path=documents), param_hint="--documents")
    from themes.doceval import evaluate_document_set
    from themes.tables import document_evaluation_markdown

    evaluation = evaluate_document_set(documents, model, write_card, cache_dir)
    print(document_evaluation_markdown(evaluation))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "document_evaluation.json").write_text(json.dumps(evaluation, indent=1), encoding="utf-8")
    if write_card:
        console.print(f"Stored in the card of model {evaluation['model_version']}.")


models_app = typer.Typer(help="List and inspect saved model versions.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(models_dir: Path = MODELS_DIR) -> None:
    """Every saved version; the default is starred."""
    from themes.registry import DEFAULT_POINTER, list_versions

    pointer = models_dir / DEFAULT_POINTER
    default = pointer.read_text().strip() if pointer.exists() else None
    for version in list_versions(models_dir):
        print(("* " if version == default else "  ") + version)


@models_app.command("show")
def models_show(version: Annotated[str | None, typer.Argument()] = None, models_dir: Path = MODELS_DIR) -> None:
    """Print a model's card."""
    from themes.registry import CARD_MD, resolve

    print((resolve(version, models_dir) / CARD_MD).read_text())


labels_app = typer.Typer(help="Inspect and exchange labelled passages.")
app.add_typer(labels_app, name="labels")


@labels_app.command("stats")
def labels_stats(labels: Path = LABELS_DIR) -> None:
    """Counts per theme and kind, in the training and held-out splits."""
    from themes.dataset import label_stats, load_labels
    from themes.tables import markdown_table

    print(markdown_table(label_stats(load_labels(labels))))


@labels_app.command("gold")
def labels_gold(stems: Annotated[list[str] | None, typer.Argument(
        help="real sets, e.g. ofsted_dev; default all adjudicated")] = None) -> None:
    """Merge a real set's two annotators and the adjudicator's decisions into <set>.gold.jsonl; print kappa."""
    from themes.devset import ADJUDICATION_DIR, agreement, write_gold
    from themes.tables import markdown_table

    for stem in stems or sorted(p.stem for p in ADJUDICATION_DIR.glob("*.jsonl")):
        print(f"{write_gold(stem)}\n")
        print(markdown_table(agreement(stem).reset_index(names="pair")) + "\n")


# The researcher's loop: labels import|export|agreement|decisions, retrain, models promote|rollback|...
from themes.cli_loop import register as _register_loop

_register_loop(app, models_app, labels_app)


if __name__ == "__main__":
    app()
