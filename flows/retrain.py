"""The retrain flow: the team-written passages plus the label store's decisions in, a new model out.

Wiring only: each task calls one function of :mod:`themes.loop`. The candidate is always saved
under ``models/<version>/`` with its card (which records the hash of the decisions it was trained
on and how it compared with the champion); it becomes the default only when its core macro-F1 on
the fixed held-out documents is not lower than the champion's minus ``margin``.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from themes import loop
from themes.config import LABELS_DIR, MODELS_DIR
from themes.labels import DECISIONS_DIR
from themes.registry import promote as promote_version


@task(cache_policy=NO_CACHE)
def load_training(labels_dir: Path, decisions_dir: Path, models_dir: Path, fill_undecided: bool, with_real: bool):
    champion = loop.champion_model(models_dir) if fill_undecided else None
    frame, decisions = loop.training_frame(labels_dir, decisions_dir, champion.model if champion else None,
                                           with_real)
    return frame, decisions, champion.version if champion else None


@task(cache_policy=NO_CACHE)
def fit(frame, decisions, params: dict | None, themes: list[str] | None, n_splits: int, learning_curve: bool):
    return loop.fit_candidate(frame, decisions, params, themes, n_splits, learning_curve)


@task(cache_policy=NO_CACHE)
def compare(candidate, models_dir: Path, labels_dir: Path, margin: float):
    return loop.challenge(candidate, models_dir, loop.heldout_frame(labels_dir), margin)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def save(result, decision: dict, models_dir: Path):
    return loop.save_candidate(result, decision, models_dir)


@task(cache_policy=NO_CACHE)
def make_default(version: str, models_dir: Path, reason: str) -> None:
    promote_version(version, models_dir, reason=reason)


@flow(name="themes-retrain", log_prints=True)
def retrain(
    labels_dir: str = str(LABELS_DIR),
    decisions_dir: str = str(DECISIONS_DIR),
    models_dir: str = str(MODELS_DIR),
    margin: float = 0.0,
    params: dict | None = None,
    themes: list[str] | None = None,
    n_splits: int = 5,
    learning_curve: bool = False,
    promote: bool = True,
    fill_undecided: bool = True,
    with_real: bool = True,
) -> loop.RetrainResult:
    """Train a challenger on all current labels, compare it with the champion, promote if not worse.

    Args:
        labels_dir: team-written ``passages-*.jsonl``.
        decisions_dir: the label store.
        models_dir: model versions and ``DEFAULT``.
        margin: allowed drop in core macro-F1 on the fixed held-out documents.
        params, themes, n_splits, learning_curve: training settings (see ``themes.train.train``).
        promote: when False the candidate is only saved and compared.
        fill_undecided: themes nobody decided for a reviewed passage take the champion's tags.
        with_real: add the real labelled Ofsted sentences when ../shared is present, as ``themes train`` does.
    """
    logger = get_run_logger()
    labels, store, models = Path(labels_dir), Path(decisions_dir), Path(models_dir)
    frame, decisions, filled_by = load_training(labels, store, models, fill_undecided, with_real)
    logger.info("Training on %d passages (%d decisions from the label store)", len(frame), len(decisions))
    result = fit(frame, decisions, params, themes, n_splits, learning_curve)
    result.card["undecided_themes_filled_by"] = filled_by
    decision, table = compare(result.model, models, labels, margin)
    version, folder = save(result, decision, models)
    promoted = bool(promote and decision["promote"])
    if promoted:
        make_default(version, models, decision["reason"])
    logger.info("Candidate %s: %s%s", version, decision["reason"], "" if promote else " (promotion switched off)")
    return loop.RetrainResult(version, folder, result.card, decision["champion"], decision["champion_f1"],
                              decision["challenger_f1"], margin, promoted, decision["reason"], table)
