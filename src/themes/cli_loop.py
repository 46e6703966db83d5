"""Commands of the researcher's loop: ``themes labels import|export|labelstudio-config|agreement|decisions``,
``themes retrain`` and ``themes models promote|rollback|compare|history``.

Each command parses its arguments and calls one library function; :func:`register` adds them to
the main ``themes`` app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from themes.config import CORE_THEMES, LABELS_DIR, MODELS_DIR, apply_prefect_environment
from themes.errors import Errors
from themes.exchange import FORMATS
from themes.labels import DECISIONS_DIR

console = Console(stderr=True)

StoreOpt = Annotated[Path, typer.Option("--store", help="The label store folder (decisions-*.jsonl).")]
ModelsOpt = Annotated[Path, typer.Option("--models-dir", help="Where model versions are saved.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")]


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise typer.BadParameter(Errors.E007.format(value=fmt, choices=", ".join(FORMATS)), param_hint="--format")
    return fmt


# -- labels ----------------------------------------------------------------------------------------

def labels_import(
    path: Annotated[Path, typer.Argument(help="File exported by Prodigy, Label Studio, Argilla, or a CSV.")],
    fmt: FormatOpt = "csv",
    annotator: Annotated[str | None, typer.Option(help="Annotator for records that name none.")] = None,
    offered: Annotated[str | None, typer.Option(
        help="Comma-separated themes a multi-choice question offered: unchosen ones become rejects.")] = None,
    store: StoreOpt = DECISIONS_DIR,
) -> None:
    """Add decisions from an annotation tool's export to the label store (already known ones are skipped)."""
    from themes.codebook import load_codebook
    from themes.exchange import import_decisions
    from themes.labels import add_new

    if not path.is_file():
        raise typer.BadParameter(Errors.E008.format(path=path), param_hint="PATH")
    offered_themes = [t.strip() for t in offered.split(",") if t.strip()] if offered else None
    try:
        decisions = import_decisions(path, _check_format(fmt), annotator, load_codebook().ids, offered_themes)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="PATH") from err
    added = add_new(decisions, store)
    print(f"Read {len(decisions)} decision(s) from {path}; added {added} new, "
          f"{len(decisions) - added} already in {store}.")


def output_path(out: Path | None, positional: Path | None, command: str) -> Path:
    """The file a command writes: ``-o/--out``, or the old positional PATH with a deprecation note."""
    if out is not None and positional is not None:
        raise typer.BadParameter(Errors.E009.format(out=out), param_hint="-o/--out")
    if positional is not None:
        console.print(f"Deprecated: `{command} PATH` will go; use `{command} -o {positional}`.", style="yellow")
        return positional
    if out is None:
        raise typer.BadParameter(Errors.E010, param_hint="-o/--out")
    return out


OutOpt = Annotated[Path | None, typer.Option("-o", "--out", help="File to write.")]
OldPathArg = Annotated[Path | None, typer.Argument(help="Deprecated: the file to write; use -o/--out.",
                                                   show_default=False)]


def labels_export(
    path: OldPathArg = None,
    out: OutOpt = None,
    fmt: FormatOpt = "csv",
    current: Annotated[bool, typer.Option(help="Only each annotator's latest decision per passage and theme.")] = False,
    store: StoreOpt = DECISIONS_DIR,
) -> None:
    """Write the label store's decisions (all of them, history included, unless --current).

    Argilla: X.json gets the records and X.settings.json; a folder gets what Dataset.from_disk loads.
    """
    from themes.codebook import load_codebook
    from themes.exchange import export_decisions
    from themes.labels import current_labels, load_decisions

    target = output_path(out, path, "themes labels export")
    decisions = load_decisions(store)
    if current:
        decisions = current_labels(decisions)
    n = export_decisions(decisions, target, _check_format(fmt), themes=load_codebook().ids)
    print(f"Wrote {n} decision(s) to {target} ({fmt}).")


def labels_labelstudio_config(
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write the XML here instead of stdout.")] = None,
    themes: Annotated[str | None, typer.Option(help="Comma-separated theme ids; default every codebook theme.")] = None,
    multi: Annotated[bool, typer.Option(
        "--multi", help="One multi-choice control named 'themes' instead of accept/reject per theme.")] = False,
) -> None:
    """The Label Studio labelling config that `labels export -f labelstudio` and `labels import` use."""
    from themes.codebook import load_codebook
    from themes.exchange import labelstudio_config

    codebook = load_codebook()
    chosen = [t.strip() for t in themes.split(",") if t.strip()] if themes else codebook.ids
    unknown = [t for t in chosen if t not in codebook.ids]
    if unknown:
        raise typer.BadParameter(Errors.E011.format(themes=", ".join(unknown)), param_hint="--themes")
    xml = labelstudio_config(chosen, {t.id: t.label for t in codebook.themes}, multi=multi)
    if out is None:
        print(xml, end="")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(xml, encoding="utf-8")
    console.print(f"Wrote the Label Studio config for {len(chosen)} theme(s) to {out}.")


def labels_agreement(
    store: StoreOpt = DECISIONS_DIR,
    themes: Annotated[str | None, typer.Option(help="Comma-separated themes; default every decided theme.")] = None,
) -> None:
    """Agreement between annotators: Cohen's kappa per theme and pair, Krippendorff's alpha per theme."""
    from themes.agreement import annotator_agreement
    from themes.labels import load_decisions
    from themes.tables import markdown_table

    decisions = load_decisions(store)
    if decisions["annotator"].nunique() < 2:
        raise typer.BadParameter(Errors.E012.format(store=store), param_hint="--store")
    result = annotator_agreement(decisions, [t.strip() for t in themes.split(",")] if themes else None)
    print("## Krippendorff's alpha (nominal) per theme\n\n" + markdown_table(result.themes))
    print("\n## Cohen's kappa per theme and pair of annotators\n\n" + markdown_table(result.pairs))


def labels_decisions(store: StoreOpt = DECISIONS_DIR) -> None:
    """Current decisions per theme and annotator, and the hash a model trained on them would record."""
    from themes.labels import decision_counts, decisions_hash, load_decisions
    from themes.tables import markdown_table

    decisions = load_decisions(store)
    print(markdown_table(decision_counts(decisions)))
    print(f"\n{len(decisions)} decision(s) in {store}; hash {decisions_hash(decisions)[:16]}")


# -- retrain ---------------------------------------------------------------------------------------

def run_retrain_flow(**kwargs: Any) -> Any:
    """Run the ``themes-retrain`` Prefect flow (``flows/retrain.py``) and return its ``RetrainResult``.

    Keyword arguments are the flow's parameters (paths may be ``Path`` objects).
    """
    apply_prefect_environment()
    from flows.retrain import retrain as retrain_flow

    kwargs = {k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()}
    return retrain_flow(**kwargs)


def retrain(
    labels: Annotated[Path, typer.Option(help="Folder of team-written passages-*.jsonl.")] = LABELS_DIR,
    store: StoreOpt = DECISIONS_DIR,
    models_dir: ModelsOpt = MODELS_DIR,
    margin: Annotated[float, typer.Option(help="Allowed drop in core macro-F1 for promotion.")] = 0.0,
    promote: Annotated[bool, typer.Option(help="Promote the candidate when it is not worse.")] = True,
    fast: Annotated[bool, typer.Option(help="Core themes, no character n-grams, 3 folds, no real sentences: a quick model.")] = False,
    learning_curve: Annotated[bool, typer.Option(help="Fit extra models for the card's learning curve.")] = False,
    fill_undecided: Annotated[bool, typer.Option(
        help="Themes nobody decided for a reviewed passage take the champion's tags.")] = True,
    real: Annotated[bool, typer.Option(
        help="Add the real labelled Ofsted sentences from ../shared, as themes train does.")] = True,
) -> None:
    """Retrain on the team-written passages plus every decision; promote only if not worse than the default."""
    from themes.tables import markdown_table

    extra: dict[str, Any] = {"params": {"use_chars": False}, "themes": list(CORE_THEMES), "n_splits": 3} if fast else {}
    result = run_retrain_flow(labels_dir=labels, decisions_dir=store, models_dir=models_dir, margin=margin,
                              promote=promote, learning_curve=learning_curve, fill_undecided=fill_undecided,
                              with_real=real and not fast, **extra)
    print(markdown_table(result.table))
    print(f"\nCandidate {result.version} saved in {result.folder}: {result.reason}"
          + ("" if result.promoted else " — the default is unchanged."))


# -- models ----------------------------------------------------------------------------------------

def models_promote(
    version: Annotated[str, typer.Argument(help="Version to make the default.")],
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "promoted by hand",
    models_dir: ModelsOpt = MODELS_DIR,
) -> None:
    """Make a saved version the default (logged in models/HISTORY.jsonl)."""
    from themes.registry import promote

    try:
        before = promote(version, models_dir, reason)
    except FileNotFoundError as err:
        raise typer.BadParameter(str(err), param_hint="VERSION") from err
    print(f"Default is now {version} (was {before}).")


def models_rollback(
    to: Annotated[str | None, typer.Option(help="Version to return to; default the one before.")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "rolled back by hand",
    models_dir: ModelsOpt = MODELS_DIR,
) -> None:
    """Point the default back at the model the current one replaced."""
    from themes.registry import rollback

    try:
        version = rollback(models_dir, to, reason)
    except (ValueError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err)) from err
    print(f"Default is now {version}.")


def models_compare(
    a: Annotated[str, typer.Argument(help="First version (e.g. the default).")],
    b: Annotated[str, typer.Argument(help="Second version.")],
    models_dir: ModelsOpt = MODELS_DIR,
) -> None:
    """Two model cards side by side: held-out F1 per theme, thresholds, training data."""
    from themes.registry import compare_cards
    from themes.tables import markdown_table

    print(markdown_table(compare_cards(a, b, models_dir)))


def models_history(models_dir: ModelsOpt = MODELS_DIR) -> None:
    """Every promotion and rollback, oldest first."""
    from themes.registry import history

    for entry in history(models_dir):
        print(f"{entry['time']}  {entry['action']:<8}  {entry.get('from')} -> {entry['to']}  {entry.get('reason', '')}")


def register(app: typer.Typer, models_app: typer.Typer, labels_app: typer.Typer) -> None:
    """Add the loop's commands to the main app and its ``models`` and ``labels`` groups."""
    labels_app.command("import")(labels_import)
    labels_app.command("export")(labels_export)
    labels_app.command("labelstudio-config")(labels_labelstudio_config)
    labels_app.command("agreement")(labels_agreement)
    labels_app.command("decisions")(labels_decisions)
    app.command("retrain")(retrain)
    models_app.command("promote")(models_promote)
    models_app.command("rollback")(models_rollback)
    models_app.command("compare")(models_compare)
    models_app.command("history")(models_history)
