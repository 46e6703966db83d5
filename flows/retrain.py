"""The retrain flow: the team-written passages plus the label store's decisions in, a new model out.

Wiring only: one task runs :func:`themes.retrain.retrain`, the same routine ``themes retrain`` and
notebook 03 use. The candidate is always saved under ``models/<version>/`` with its card (which
records the hash of the decisions it was trained on and how it compared with the champion); it
becomes the default only when its core macro-F1 on the fixed held-out documents is not lower than
the champion's minus ``margin``.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from themes import retrain as retraining
from themes.config import LABELS_DIR, MODELS_DIR
from themes.labels import DECISIONS_DIR


# No retries: the routine saves a new model version each time it runs, so a retry would save another.
@task(cache_policy=NO_CACHE)
def train_compare_promote(settings: dict) -> retraining.RetrainResult:
    """Train, compare and perhaps promote: :func:`themes.retrain.retrain` with the flow's settings."""
    return retraining.retrain(**settings)


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
) -> retraining.RetrainResult:
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
    result = train_compare_promote({
        "labels_dir": Path(labels_dir), "decisions_dir": Path(decisions_dir), "models_dir": Path(models_dir),
        "margin": margin, "params": params, "themes": themes, "n_splits": n_splits,
        "with_learning_curve": learning_curve, "promote": promote, "fill_undecided": fill_undecided,
        "with_real": with_real,
    })
    get_run_logger().info(
        "Candidate %s, trained on %d decisions from the label store: %s%s", result.version,
        result.card.get("n_label_decisions", 0), result.reason, "" if promote else " (promotion switched off)",
    )
    return result
