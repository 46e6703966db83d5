"""Presence rules: how one document's passage scores for a theme become present or absent.

A :class:`PresenceRule` reads per-document features of the passage scores
(:func:`feature_table`): passages over the theme's threshold, the best score, the noisy-OR
evidence, the mean of the best three and the number of passages. The rule is chosen on held-out
documents by :func:`themes.doceval.choose_presence_rule` and travels in the model card as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from themes.config import AGGREGATE
from themes.errors import ArgumentError, Errors, ModelError

#: Per-document features of one theme's passage scores (see :func:`document_features`).
FEATURE_COLUMNS = ("n_over", "max", "noisy_or", "top3_mean", "n_passages")
#: The logistic rule's inputs, in coefficient order: log1p(n_over), max, log1p(noisy_or),
#: top3_mean, log1p(n_passages). Logs keep long documents from dominating.
LOGISTIC_FEATURES = ("log1p_n_over", "max", "log1p_noisy_or", "top3_mean", "log1p_n_passages")
#: A passage probability is capped here before the noisy-OR, so one score of 1.0 is not infinite.
_P_CAP = 1 - 1e-6

RuleKind = Literal["count", "max", "noisy_or", "logistic"]
RULE_KINDS: tuple[str, ...] = ("count", "max", "noisy_or", "logistic")


def document_features(scores: Sequence[float], threshold: float) -> dict[str, float]:
    """The features a presence rule reads from one document's passage scores for one theme.

    ``n_over``: passages scoring at or above ``threshold``; ``max``: the best score;
    ``noisy_or``: the noisy-OR of the passage probabilities as evidence, -ln(1 - noisy-OR) =
    sum of -ln(1 - p) (in this form it does not round to 1 in long documents); ``top3_mean``: the
    mean of the three best scores (missing ones count 0); ``n_passages``: passages scored.
    """
    s = np.sort(np.asarray(scores, dtype=float))[::-1]
    if not len(s):
        return {c: 0.0 for c in FEATURE_COLUMNS}
    return {"n_over": float((s >= threshold).sum()), "max": float(s[0]),
            "noisy_or": float(-np.log1p(-np.clip(s, 0.0, _P_CAP)).sum()),
            "top3_mean": float(s[:3].sum() / 3), "n_passages": float(len(s))}


def feature_table(scored: pd.DataFrame, thresholds: Mapping[str, float] | None = None) -> pd.DataFrame:
    """:func:`document_features` for every (doc_id, theme) of a long table of passage scores.

    Args:
        scored: one row per passage and theme with ``doc_id``, ``theme``, ``score`` and, when
            ``thresholds`` is not given, ``tagged`` (the pipeline's predictions table joined to
            its passages).
        thresholds: per-theme passage thresholds that define ``n_over``; default the ``tagged``
            column.
    """
    f = scored[["doc_id", "theme", "score"]].copy()
    if thresholds is not None:
        f["over"] = f["score"].to_numpy() >= f["theme"].map(dict(thresholds)).fillna(np.inf).to_numpy()
    else:
        f["over"] = scored["tagged"].astype(bool).to_numpy()
    f["evidence"] = -np.log1p(-np.clip(f["score"].to_numpy(dtype=float), 0.0, _P_CAP))
    f = f.sort_values(["doc_id", "theme", "score"], ascending=[True, True, False], kind="stable")
    f["top"] = np.where(f.groupby(["doc_id", "theme"]).cumcount() < 3, f["score"], 0.0)
    out = f.groupby(["doc_id", "theme"], sort=False).agg(
        n_over=("over", "sum"), max=("score", "max"), noisy_or=("evidence", "sum"), top=("top", "sum"),
        n_passages=("score", "size"),
    ).reset_index()
    out["top3_mean"] = out.pop("top") / 3
    for column in FEATURE_COLUMNS:
        out[column] = out[column].astype(float)
    return out[["doc_id", "theme", *FEATURE_COLUMNS]]


def logistic_inputs(features: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
    """The logistic rule's input columns (:data:`LOGISTIC_FEATURES`) from document features."""
    def col(name: str) -> np.ndarray:
        return np.atleast_1d(np.asarray(features[name], dtype=float))

    return np.column_stack([np.log1p(col("n_over")), col("max"), np.log1p(col("noisy_or")),
                            col("top3_mean"), np.log1p(col("n_passages"))])


@dataclass(frozen=True)
class PresenceRule:
    """How a document's passage scores for a theme become present or absent.

    Plain numbers only, so it goes into a model card as JSON (:meth:`to_dict`) and back.

    Args:
        kind: ``count`` (at least ``k[theme]`` passages at or above the theme's passage
            threshold), ``max`` (best passage score >= ``cut[theme]``), ``noisy_or`` (noisy-OR
            evidence -ln(1 - noisy-OR) >= ``cut[theme]``) or ``logistic`` (``intercept[theme]`` +
            ``coef[theme]`` · :data:`LOGISTIC_FEATURES` >= 0).
        k, cut, coef, intercept: per-theme parameters of the kind.
        thresholds: per-theme passage thresholds that define "over threshold" (the model's);
            empty means the predictions' ``tagged`` column.
        default_k: themes without parameters fall back to at least this many passages over
            threshold.
    """

    kind: RuleKind = "count"
    k: dict[str, int] = field(default_factory=dict)
    cut: dict[str, float] = field(default_factory=dict)
    coef: dict[str, list[float]] = field(default_factory=dict)
    intercept: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    default_k: int = AGGREGATE.min_passages

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise ArgumentError(Errors.E604.format(kind=self.kind, choices=", ".join(RULE_KINDS)))

    @classmethod
    def count(cls, k: int = AGGREGATE.min_passages) -> PresenceRule:
        """At least ``k`` passages over threshold for every theme (the rule without a card)."""
        return cls(kind="count", default_k=max(1, int(k)))

    def _decide(self, theme: str, x: pd.DataFrame) -> np.ndarray:
        """Presence for rows of one theme's document features."""
        if self.kind == "count" or theme not in {**self.cut, **self.intercept}:
            return x["n_over"].to_numpy() >= self.k.get(theme, self.default_k)
        if self.kind == "max":
            return x["max"].to_numpy() >= self.cut[theme]
        if self.kind == "noisy_or":
            return x["noisy_or"].to_numpy() >= self.cut[theme]
        z = logistic_inputs(x) @ np.asarray(self.coef[theme], dtype=float) + self.intercept[theme]
        return z >= 0

    def present(self, features: pd.DataFrame) -> np.ndarray:
        """Presence for each row of a :func:`feature_table` (any themes), as a boolean array."""
        out = np.zeros(len(features), dtype=bool)
        themes = features["theme"].to_numpy()
        for theme in pd.unique(themes):
            rows = themes == theme
            out[rows] = self._decide(str(theme), features.loc[rows])
        return out

    def present_in(self, theme: str, scores: Sequence[float]) -> bool:
        """Whether ``theme`` is present in a document whose passages scored ``scores`` for it."""
        threshold = self.thresholds.get(theme, 0.5)
        row = pd.DataFrame([{"theme": theme, **document_features(scores, threshold)}])
        return bool(self._decide(theme, row)[0])

    def describe(self) -> str:
        """One sentence for a reader: what makes a theme present in a document."""
        if self.kind == "count":
            ks = sorted(set(self.k.values())) or [self.default_k]
            if len(ks) == 1:
                return f"at least {ks[0]} passage(s) scoring at or above the theme's threshold"
            per = ", ".join(f"{t} {v}" for t, v in self.k.items())
            return f"at least k passages scoring at or above the theme's threshold, k per theme ({per})"
        if self.kind == "max":
            per = ", ".join(f"{t} {v:.3f}" for t, v in self.cut.items())
            return f"the document's best passage score reaches a per-theme cut ({per})"
        if self.kind == "noisy_or":
            per = ", ".join(f"{t} {1 - math.exp(-v):.4f}" for t, v in self.cut.items())
            return f"the noisy-OR of the document's passage probabilities reaches a per-theme cut ({per})"
        return ("a logistic regression per theme over the document's passage scores (passages over "
                "threshold, best score, noisy-OR, mean of the best three, number of passages) says "
                "present with probability of at least 0.5")

    def to_dict(self) -> dict:
        """JSON-ready: plain strings, ints, floats and lists."""
        out: dict[str, Any] = {"kind": self.kind, "default_k": int(self.default_k)}
        if self.k:
            out["k"] = {t: int(v) for t, v in self.k.items()}
        if self.cut:
            out["cut"] = {t: float(v) for t, v in self.cut.items()}
        if self.coef:
            out["coef"] = {t: [float(c) for c in v] for t, v in self.coef.items()}
            out["intercept"] = {t: float(v) for t, v in self.intercept.items()}
            out["features"] = list(LOGISTIC_FEATURES)
        if self.thresholds:
            out["thresholds"] = {t: float(v) for t, v in self.thresholds.items()}
        out["description"] = self.describe()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PresenceRule:
        """The rule :meth:`to_dict` wrote (extra keys such as ``cv`` are ignored)."""
        if "features" in data and list(data["features"]) != list(LOGISTIC_FEATURES):
            raise ModelError(Errors.E605.format(features=data["features"], expected=list(LOGISTIC_FEATURES)))
        return cls(kind=data["kind"], k={t: int(v) for t, v in data.get("k", {}).items()},
                   cut={t: float(v) for t, v in data.get("cut", {}).items()},
                   coef={t: [float(c) for c in v] for t, v in data.get("coef", {}).items()},
                   intercept={t: float(v) for t, v in data.get("intercept", {}).items()},
                   thresholds={t: float(v) for t, v in data.get("thresholds", {}).items()},
                   default_k=int(data.get("default_k", AGGREGATE.min_passages)))
