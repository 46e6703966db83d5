"""Score a model on labelled passages, always with the keyword and seed-pattern baselines beside it.

Passage level: per-theme scores, the thresholds chosen on out-of-fold scores, comparison tables,
and :func:`evaluate_model` on the held-out documents and the real-text sets. The document level
(a labelled document set run through the pipeline) is :mod:`themes.doceval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from themes.baselines import KeywordBaseline, PatternBaseline
from themes.config import CORE_THEMES
from themes.dataset import is_heldout, load_labels, load_real_set, real_doc_id, split
from themes.registry import load_model
from themes.tables import markdown_table


@dataclass
class Scores:
    """Per-theme precision/recall/F1 and the headline numbers for one system on one split."""

    system: str
    split: str
    n_passages: int
    per_theme: pd.DataFrame  # index theme; columns precision, recall, f1, support
    macro_f1_core: float
    hard_negative_fpr: float | None
    extra: dict = field(default_factory=dict)

    def row(self) -> dict:
        out = {
            "system": self.system,
            "split": self.split,
            "n": self.n_passages,
            "macro_f1_core": round(self.macro_f1_core, 3),
            "hard_neg_fpr": None if self.hard_negative_fpr is None else round(self.hard_negative_fpr, 3),
        }
        for theme in self.per_theme.index:
            out[f"f1_{theme}"] = round(float(self.per_theme.loc[theme, "f1"]), 3)
        return out


def label_matrix(labels: Sequence[Sequence[str]], themes: Sequence[str]) -> np.ndarray:
    """0/1 matrix (n, len(themes)) from lists of theme ids."""
    index = {t: j for j, t in enumerate(themes)}
    y = np.zeros((len(labels), len(themes)), dtype=int)
    for i, row in enumerate(labels):
        for theme in row:
            if theme in index:
                y[i, index[theme]] = 1
    return y


def known_label_matrix(labels: Sequence[Sequence[str]], core_only: Sequence[bool], themes: Sequence[str]) -> np.ndarray:
    """:func:`label_matrix` with ``-1`` where a passage was not labelled for a theme.

    Real sentences are labelled for the four core themes only (``core_only`` True): their other
    themes are unknown, not absent, and must not teach a model that real prose never shows them.
    """
    y = label_matrix(labels, themes)
    other = np.array([t not in CORE_THEMES for t in themes])
    rows = np.asarray(core_only, dtype=bool)
    y[np.ix_(rows, other)] = -1
    return y


def score(
    system: str,
    split: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    themes: Sequence[str],
    kinds: Sequence[str] | None = None,
) -> Scores:
    """Precision, recall and F1 per theme; macro-F1 over the core themes present in ``themes``.

    Args:
        kinds: per-passage kind ("positive", "hard_negative", ...); when given, the false-positive
            rate on hard negatives (share of hard negatives tagged with any core theme) is computed.
    """
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    per_theme = pd.DataFrame(
        {"precision": p, "recall": r, "f1": f, "support": s}, index=pd.Index(list(themes), name="theme")
    )
    core = [t for t in themes if t in CORE_THEMES]
    macro = float(per_theme.loc[core, "f1"].mean()) if core else float("nan")
    fpr = None
    if kinds is not None:
        hard = np.array([k == "hard_negative" for k in kinds])
        if hard.any():
            core_idx = [list(themes).index(t) for t in core]
            fpr = float(y_pred[hard][:, core_idx].any(axis=1).mean())
    return Scores(system, split, len(y_true), per_theme, macro, fpr)


def best_thresholds(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per column, the probability threshold that maximises F1 on these (out-of-fold) scores.

    Rows labelled ``-1`` in a column (not labelled for that theme) are left out of its choice.
    """
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3)
    best = np.full(y_true.shape[1], 0.5)
    for j in range(y_true.shape[1]):
        known = y_true[:, j] >= 0
        truth, scores = y_true[known, j], proba[known, j]
        f1s = []
        for t in grid:
            pred = scores >= t
            tp = int((pred & (truth == 1)).sum())
            denom = int(pred.sum()) + int(truth.sum())
            f1s.append(2 * tp / denom if denom else 0.0)
        f1s_arr = np.array(f1s)
        # Among near-best thresholds prefer the middle one: less sensitive to a single passage.
        near = np.flatnonzero(f1s_arr >= f1s_arr.max() - 1e-9)
        best[j] = grid[near[len(near) // 2]]
    return best


def comparison_table(scores: Sequence[Scores]) -> pd.DataFrame:
    """One row per (system, split) with the headline numbers and per-theme F1."""
    return pd.DataFrame([s.row() for s in scores])


def baselines_on(frame: pd.DataFrame, themes: Sequence[str], split_name: str) -> list[Scores]:
    """Keyword and seed-pattern baselines scored on one split."""
    y = label_matrix(frame["labels"], themes)
    kinds = list(frame["kind"]) if "kind" in frame and frame["kind"].notna().any() else None
    out = []
    for name, baseline in (("keywords", KeywordBaseline(themes=list(themes))),
                           ("seed patterns", PatternBaseline(themes=list(themes)))):
        pred = baseline.fit(list(frame["text"]), y).predict(list(frame["text"]))
        out.append(score(name, split_name, y, pred, themes, kinds))
    return out


@dataclass
class Evaluation:
    """All scores for one model: held-out split and real-text sets, each with both baselines."""

    model_version: str
    table: pd.DataFrame
    markdown: str


#: Real-text sets (locators into ../shared), by stem (read with :func:`themes.dataset.load_real_set`).
REAL_SETS = (
    ("ofsted dev (real)", "ofsted_dev"),
    ("ofsted targeted (real)", "ofsted_targeted"),
    ("seeds (real)", "seeds"),
)


def evaluate_model(model: str | None = None, out_dir=None) -> Evaluation:
    """Score a saved model on the held-out documents and the real-text sets, beside the baselines.

    Args:
        model: version or folder; default ``models/DEFAULT``.
        out_dir: when given, ``evaluation.json`` and ``evaluation.md`` are written there.
    """
    loaded = load_model(model)
    themes = [t for t in loaded.model.themes_ if t in CORE_THEMES]
    columns = [loaded.model.themes_.index(t) for t in themes]
    _, heldout = split(load_labels())
    sets = [("heldout (written)", heldout)]
    for name, stem in REAL_SETS:
        frame = load_real_set(stem)
        if frame is None:
            continue
        if name.startswith("ofsted"):
            # Reports on the training side of the fixed split may have been trained on.
            frame = frame[frame["file"].map(lambda f: is_heldout(real_doc_id(f)))]
            name = name.replace("(real)", "(real, held-out reports)")
        sets.append((name, frame.assign(kind=None)))
    scores: list[Scores] = []
    for split_name, frame in sets:
        y = label_matrix(frame["labels"], themes)
        pred = loaded.model.predict(list(frame["text"]))[:, columns]
        kinds = list(frame["kind"]) if "kind" in frame and frame["kind"].notna().any() else None
        scores.append(score(loaded.version, split_name, y, pred, themes, kinds))
        base = frame if kinds else frame.assign(kind=None)
        scores += baselines_on(base, themes, split_name)
    table = comparison_table(scores)
    markdown = markdown_table(table)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.json").write_text(table.to_json(orient="records", indent=2))
        (out / "evaluation.md").write_text(f"# Evaluation of {loaded.version}\n\n{markdown}\n")
    return Evaluation(loaded.version, table, markdown)
