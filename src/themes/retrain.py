"""Retraining on the review decisions: a challenger trained, compared with the champion, promoted if not worse.

:func:`retrain` is the one retraining routine: ``themes retrain`` (through the ``themes-retrain``
flow in ``flows/retrain.py``), notebook 03 and the flow all call it. It trains a challenger on the
team-written passages plus the label store's decisions, scores it beside the champion (the default
model) on the fixed held-out documents, keeps it under ``models/<version>/`` and promotes it only
when its core macro-F1 is not lower than the champion's minus a margin. :func:`prevalence_change`
shows what the new model would change on the last run's corpus, :func:`cards_side_by_side` the
two model cards.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from themes import labels as label_store
from themes.aggregate import document_themes
from themes.config import CORE_THEMES, LABELS_DIR, MODELS_DIR
from themes.dataset import load_labels, load_real_training, split, with_decisions
from themes.evaluate import label_matrix, score
from themes.labels import DECISIONS_DIR
from themes.registry import CARD_MD, default_version, load_model, resolve, save_model
from themes.registry import promote as promote_version
from themes.review import Run
from themes.train import new_version, train


@dataclass
class RetrainResult:
    """A retrained candidate, how it compares with the champion, and whether it was promoted.

    ``table`` holds per-theme F1 of both models on the same fixed held-out documents (and the
    core macro-F1 in its first row).
    """

    version: str
    folder: Path
    card: dict
    champion: str | None
    champion_f1: float | None
    challenger_f1: float
    margin: float
    promoted: bool
    reason: str
    table: pd.DataFrame

    def summary(self) -> dict:
        return {"version": self.version, "champion": self.champion, "champion_macro_f1_core": self.champion_f1,
                "challenger_macro_f1_core": self.challenger_f1, "margin": self.margin, "promoted": self.promoted,
                "reason": self.reason, "label_decisions_hash": self.card.get("label_decisions_hash"),
                "n_label_decisions": self.card.get("n_label_decisions")}


def training_frame(
    labels_dir: Path = LABELS_DIR, decisions_dir: Path = DECISIONS_DIR, fill_model: Any = None,
    with_real: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The team-written passages merged with the store's decisions, and the decisions themselves.

    Args:
        fill_model: tags the themes nobody decided for a reviewed passage (see
            :func:`themes.dataset.with_decisions`); ``None`` counts them as absent.
        with_real: add the real labelled Ofsted sentences, as ``themes train`` does, when
            ``../shared`` is present (a few minutes to rebuild their text), so a challenger is not
            trained on less real text than the champion it is compared with.
    """
    decisions = label_store.load_decisions(decisions_dir)
    frame = with_decisions(load_labels(labels_dir), decisions, fill_model)
    real = load_real_training() if with_real else frame.iloc[:0]
    if len(real):
        frame = pd.concat([frame, real], ignore_index=True)
    return frame, decisions


def fit_candidate(
    frame: pd.DataFrame, decisions: pd.DataFrame, params: dict | None = None,
    themes: Sequence[str] | None = None, n_splits: int = 5, with_learning_curve: bool = False,
) -> Any:
    """Train a challenger on the merged frame; its card records the decisions it was trained on."""
    result = train(frame, params=params, themes=themes, with_learning_curve=with_learning_curve, n_splits=n_splits)
    train_df, _ = split(frame)
    sources = train_df["source"].astype(str) if "source" in train_df else pd.Series([], dtype=str)
    real_sources = sources[sources.str.startswith("real:")]
    result.card["real_training"] = {"train_sentences": len(real_sources), "sets": sorted(set(real_sources))}
    trained_from_store = int((sources == "decisions").sum())
    result.card.update({
        "label_decisions_hash": label_store.decisions_hash(decisions),
        "n_label_decisions": len(decisions),
        "n_label_decision_passages_trained": trained_from_store,
        "label_decision_annotators": sorted(decisions["annotator"].unique()) if len(decisions) else [],
    })
    return result


#: The gate's measures: core macro-F1 on the written held-out documents, and on the real held-out
#: Ofsted reports (core themes with a positive there) when ``../shared`` is present. Real text
#: decides too: a challenger must not be worse on either.
GATE_MEASURES = ("macro_f1_core", "macro_f1_real")


def heldout_frame(labels_dir: Path = LABELS_DIR, with_real: bool = True) -> pd.DataFrame:
    """The fixed held-out documents both models are scored on: the team-written passages' held-out
    documents and, when ``../shared`` is present, the labelled sentences of the held-out Ofsted
    reports (``core_only`` True: labelled for the core themes only)."""
    written = split(load_labels(labels_dir))[1].assign(core_only=False)
    real = load_real_training() if with_real else written.iloc[:0]
    if not len(real):
        return written
    return pd.concat([written, split(real)[1].assign(core_only=True)], ignore_index=True)


def compare_on(heldout: pd.DataFrame, models: dict[str, Any]) -> pd.DataFrame:
    """Per-theme F1 on the written held-out passages, led by core macro-F1 there and (with real
    held-out sentences) core macro-F1 over the themes present in them, for several fitted models."""
    real_rows = heldout["core_only"].astype(bool) if "core_only" in heldout else pd.Series(False, heldout.index)
    written, real = heldout[~real_rows], heldout[real_rows]
    columns = {}
    for name, model in models.items():
        themes = list(model.themes_)
        y = label_matrix(written["labels"], themes)
        s = score(name, "heldout", y, model.predict(list(written["text"])), themes)
        head = {"macro_f1_core": s.macro_f1_core}
        if len(real):
            core = [t for t in CORE_THEMES if t in themes]
            y_real = label_matrix(real["labels"], core)
            pred = model.predict(list(real["text"]))[:, [themes.index(t) for t in core]]
            per = score(name, "heldout real", y_real, pred, core).per_theme["f1"]
            head["macro_f1_real"] = float(per[[t for j, t in enumerate(core) if y_real[:, j].sum()]].mean())
        columns[name] = pd.concat([pd.Series(head), s.per_theme["f1"]])
    table = pd.DataFrame(columns)
    table.index.name = "measure"
    return table.round(3).reset_index()


def champion_model(models_dir: Path = MODELS_DIR) -> Any | None:
    """The current default model (``LoadedModel``), or ``None`` when there is none."""
    version = default_version(models_dir)
    return load_model(version, models_dir) if version else None


def challenge(candidate: Any, models_dir: Path, heldout: pd.DataFrame, margin: float = 0.0) -> tuple[dict, pd.DataFrame]:
    """Score the challenger beside the current default model; decide whether it may be promoted.

    Returns the decision (champion, both macro-F1s, margin, promote, reason) and the per-theme table.
    """
    champion_version = default_version(models_dir)
    models = {"challenger": candidate}
    if champion_version:
        models = {"champion": load_model(champion_version, models_dir).model, "challenger": candidate}
    table = compare_on(heldout, models)
    by_measure = table.set_index("measure")
    measures = [m for m in GATE_MEASURES if m in by_measure.index]
    challenger_f1 = float(by_measure.loc["macro_f1_core", "challenger"])
    if not champion_version:
        decision = {"champion": None, "champion_f1": None, "promote": True,
                    "reason": "There is no default model yet; the candidate becomes the first."}
    else:
        champion_f1 = float(by_measure.loc["macro_f1_core", "champion"])
        parts, ok = [], True
        for m in measures:
            new, old = float(by_measure.loc[m, "challenger"]), float(by_measure.loc[m, "champion"])
            ok &= new >= old - margin - 1e-9
            what = "core macro-F1" if m == "macro_f1_core" else "real held-out reports' macro-F1"
            parts.append(f"{what} {new:.3f} vs champion {old:.3f}")
        decision = {"champion": champion_version, "champion_f1": champion_f1, "promote": ok,
                    "reason": "; ".join(parts) + f" (margin {margin:.3f}): "
                    + ("promoted" if ok else "kept, not promoted")}
    decision.update({"challenger_f1": challenger_f1, "margin": margin})
    return decision, table


def save_candidate(result: Any, decision: dict, models_dir: Path = MODELS_DIR) -> tuple[str, Path]:
    """Save the challenger under a new ``models_dir/<version>/`` with the comparison in its card."""
    version = new_version(result.card, Path(models_dir))
    result.card["challenge"] = {k: decision[k] for k in ("champion", "champion_f1", "challenger_f1", "margin",
                                                         "promote", "reason")}
    folder = save_model(result.model, result.card, version, Path(models_dir))
    return version, folder


def retrain(
    labels_dir: Path = LABELS_DIR, decisions_dir: Path = DECISIONS_DIR, models_dir: Path = MODELS_DIR,
    margin: float = 0.0, params: dict | None = None, themes: Sequence[str] | None = None,
    n_splits: int = 5, with_learning_curve: bool = False, promote: bool = True, fill_undecided: bool = True,
    with_real: bool = True,
) -> RetrainResult:
    """Train on the team-written passages plus every current decision; promote only if not worse.

    Args:
        margin: the challenger is promoted when its core macro-F1 on the fixed held-out documents
            (written, and the real held-out reports when ``../shared`` is present) is at least the
            champion's minus this on each.
        params, themes, n_splits, with_learning_curve: passed to :func:`themes.train.train`.
        promote: when False the candidate is saved and compared but never made the default.
        fill_undecided: themes nobody decided for a reviewed passage take the champion's tags
            rather than counting as absent.
        with_real: train on the real labelled Ofsted sentences too (see :func:`training_frame`).
    """
    champion = champion_model(Path(models_dir)) if fill_undecided else None
    frame, decisions = training_frame(labels_dir, decisions_dir, champion.model if champion else None, with_real)
    result = fit_candidate(frame, decisions, params, themes, n_splits, with_learning_curve)
    result.card["undecided_themes_filled_by"] = champion.version if champion else None
    decision, table = challenge(result.model, Path(models_dir), heldout_frame(labels_dir, with_real), margin)
    version, folder = save_candidate(result, decision, models_dir)
    promoted = bool(promote and decision["promote"])
    if promoted:
        promote_version(version, Path(models_dir), reason=decision["reason"])
    return RetrainResult(version, folder, result.card, decision["champion"], decision["champion_f1"],
                         decision["challenger_f1"], margin, promoted, decision["reason"], table)


def prevalence_change(run: Run, models: dict[str, Any]) -> pd.DataFrame:
    """Share of the run's documents in which each theme is present, under each model, and the change.

    Args:
        models: name -> fitted classifier (e.g. {"champion": ..., "challenger": ...}); the first
            two are compared in the ``change`` column.
    """
    ok = run.documents[run.documents["status"] == "ok"]
    texts = list(run.passages["text"])
    shares = {}
    for name, model in models.items():
        proba = model.predict_proba(texts)
        rows = []
        for j, theme in enumerate(model.themes_):
            rows.append(pd.DataFrame({"passage_id": run.passages["passage_id"], "theme": theme,
                                      "score": proba[:, j], "tagged": proba[:, j] >= model.thresholds_[j]}))
        predictions = pd.concat(rows, ignore_index=True)
        doc_themes = document_themes(ok, run.passages, predictions, list(model.themes_))
        shares[name] = doc_themes.groupby("theme")["present"].mean()
    table = pd.DataFrame(shares).round(3)
    table.index.name = "theme"
    names = list(models)
    if len(names) >= 2:
        table["change"] = (table[names[1]] - table[names[0]]).round(3)
    return table.reset_index()


def cards_side_by_side(left: str | None, right: str, models_dir: Path = MODELS_DIR) -> str:
    """Two model cards (Markdown, shown as preformatted text) in two columns of HTML."""
    def column(version: str | None) -> str:
        if version is None:
            return "<div style='flex:1'><i>no current model</i></div>"
        text = (resolve(version, Path(models_dir)) / CARD_MD).read_text()
        return ("<div style='flex:1;min-width:0'><pre style='white-space:pre-wrap;font-size:80%'>"
                + html.escape(text) + "</pre></div>")

    return "<div style='display:flex;gap:12px'>" + column(left) + column(right) + "</div>"
