"""Count themes by document, as the Panel does, with the presence rule the model's card records.

A theme is present in a document when the model card's presence rule (:class:`PresenceRule`,
chosen by cross-validation over the held-out document-evaluation set ``corpus/doc-eval``, see
:func:`themes.doceval.choose_presence_rule`) says so from the document's passage scores for
that theme: at least *k* passages over the theme's threshold, the best passage score over a cut,
a noisy-OR of passage probabilities over a cut, or a small logistic regression over per-document
score features. A model whose card has no ``document_evaluation`` falls back to
``config.AGGREGATE.min_passages`` passages over threshold, and its shares are not corrected.

Shares come with 95% Wilson score intervals, overall and split by year, area and review type.
Beside them: the share corrected for the classifier's document-level error (Rogan–Gladen), with
sensitivity and specificity measured on the card's held-out evaluation documents under the same
rule (:func:`correction_from_card`) and a bootstrap interval over both the evaluation documents
and the counted ones; where sensitivity + specificity - 1 < :data:`MIN_YOUDEN` the corrected
share is reported as unreliable (NaN with a note), never clipped silently. Also: a theme × theme
co-occurrence table, per-year series with a trend test, and the Panel's published 2018–19
figures for comparison. Counting can leave out boilerplate (see :mod:`themes.dedup`) and count
only some review sections.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from themes.config import AGGREGATE
from themes.types import SECTIONS

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes in ``n`` trials; (0, 1) when ``n`` is 0."""
    if n == 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"Wilson interval of {k} of {n}: successes must lie between 0 and the "
                         "number of trials (is a document counted twice?).")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp away floating error so k=0 gives exactly 0 and k=n exactly 1.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


#: Review sections that hold a review's judgements on practice; ``sections=FINDINGS_SECTIONS``
#: counts only these.
FINDINGS_SECTIONS: tuple[str, ...] = ("analysis", "learning")
#: Default: count every section. Section detection follows headings, and a review whose findings
#: sit under a heading the segmenter does not recognise would otherwise count as having no theme.
DEFAULT_SECTIONS: tuple[str, ...] | None = None
#: Which share is the headline: the observed share ("raw") with its Wilson interval. The corrected
#: share depends on error rates measured on the team-written held-out document set
#: (``corpus/doc-eval``), whose transfer to real review PDFs is not yet verified; it is shown
#: beside the raw share, not instead of it.
HEADLINE = "raw"
#: Below this Youden index (sensitivity + specificity - 1) the Rogan–Gladen denominator is so small
#: that a few misjudged documents swing the corrected share across its whole range: the corrected
#: share is then reported as unreliable (NaN, with a note) instead of being computed and clipped.
MIN_YOUDEN = 0.2

PREVALENCE_COLUMNS = ["theme", "n_documents", "n_present", "share", "ci_low", "ci_high",
                      "adjusted_share", "adjusted_low", "adjusted_high", "adjusted_note"]
COOCCURRENCE_COLUMNS = ["theme_a", "theme_b", "n_documents", "n_a", "n_b", "n_both", "lift"]
TREND_TEST_COLUMNS = ["theme", "n_years", "n_documents", "first_year", "last_year", "slope_per_year",
                      "z", "p_value"]
PASSAGE_COUNT_COLUMNS = ["theme", "n_documents_present", "n_passages_tagged", "n_passages_counted"]
COMPARISON_COLUMNS = ["theme", "panel_finding", "panel_share", "panel_n", "panel_corpus", "this_share",
                      "this_ci_low", "this_ci_high", "this_n", "this_corpus", "note"]


@dataclass(frozen=True)
class ClassifierError:
    """Document-level confusion counts for one theme, measured on held-out documents.

    Args:
        theme: theme id.
        tp: documents with the theme that the model tagged.
        fn: documents with the theme that the model missed.
        tn: documents without the theme that the model left untagged.
        fp: documents without the theme that the model tagged.
    """

    theme: str
    tp: int
    fn: int
    tn: int
    fp: int

    def __post_init__(self) -> None:
        for name in ("tp", "fn", "tn", "fp"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"ClassifierError for {self.theme!r}: {name} must be a count >= 0, got {value!r}.")

    @property
    def sensitivity(self) -> float:
        """tp / (tp + fn); NaN when no held-out document has the theme."""
        n = self.tp + self.fn
        return self.tp / n if n else math.nan

    @property
    def specificity(self) -> float:
        """tn / (tn + fp); NaN when every held-out document has the theme."""
        n = self.tn + self.fp
        return self.tn / n if n else math.nan


# -- presence rules ---------------------------------------------------------------------------

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
            raise ValueError(f"PresenceRule kind {self.kind!r} is unknown: use one of {', '.join(RULE_KINDS)}.")

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
            raise ValueError(f"The card's logistic rule reads features {data['features']}, not "
                             f"{list(LOGISTIC_FEATURES)}: re-run `themes evaluate --documents ... --write-card`.")
        return cls(kind=data["kind"], k={t: int(v) for t, v in data.get("k", {}).items()},
                   cut={t: float(v) for t, v in data.get("cut", {}).items()},
                   coef={t: [float(c) for c in v] for t, v in data.get("coef", {}).items()},
                   intercept={t: float(v) for t, v in data.get("intercept", {}).items()},
                   thresholds={t: float(v) for t, v in data.get("thresholds", {}).items()},
                   default_k=int(data.get("default_k", AGGREGATE.min_passages)))


@dataclass(frozen=True)
class Correction:
    """What the corrected shares rest on: a model card's document evaluation.

    Args:
        errors: per theme, document-level confusion counts on the evaluation documents under
            ``rule`` (each document judged by the rule fitted without it).
        rule: the presence rule chosen on those documents; counting uses the same one.
        documents: sha256 ids of the evaluation documents.
        source: the evaluation set's folder, as the card names it (``corpus/doc-eval``).
        model_version: the model whose card it is.
    """

    errors: dict[str, ClassifierError]
    rule: PresenceRule
    documents: tuple[str, ...]
    source: str
    model_version: str

    @property
    def n_documents(self) -> int:
        return len(self.documents)

    def provenance(self) -> str:
        """One sentence saying exactly where the sensitivity and specificity come from."""
        return (f"sensitivity and specificity measured on {self.n_documents} held-out documents "
                f"({self.source}, never trained on, never counted by a run) recorded in the card of model "
                f"{self.model_version} (document_evaluation), each document judged out of fold under the "
                f"presence rule '{self.rule.kind}': {self.rule.describe()}")


def correction_from_card(card: Mapping[str, Any]) -> Correction | None:
    """The presence rule and error counts a model card's ``document_evaluation`` records, or
    ``None`` when the card has none (then shares are counted with the default rule, uncorrected)."""
    evaluation = card.get("document_evaluation")
    if not evaluation:
        return None
    errors = {t: ClassifierError(t, int(c["tp"]), int(c["fn"]), int(c["tn"]), int(c["fp"]))
              for t, c in evaluation["themes"].items()}
    return Correction(errors=errors, rule=PresenceRule.from_dict(evaluation["rule"]),
                      documents=tuple(evaluation["documents"]), source=str(evaluation.get("set", "?")),
                      model_version=str(card.get("version", evaluation.get("model_version", "?"))))


@dataclass
class Aggregates:
    """The tables a run reports, and how they were counted."""

    document_themes: pd.DataFrame  # doc_id, theme, present, n_passages, max_score
    prevalence: pd.DataFrame  # PREVALENCE_COLUMNS
    breakdowns: pd.DataFrame  # by, group, theme, n_documents, n_present, share, ci_low, ci_high
    cooccurrence: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COOCCURRENCE_COLUMNS))
    trend_tests: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TREND_TEST_COLUMNS))
    passage_counts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PASSAGE_COUNT_COLUMNS))
    comparison: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COMPARISON_COLUMNS))
    #: Passages left out as boilerplate (``themes.dedup`` dropped table), empty when none.
    boilerplate: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Document-level error counts used for the corrected shares, one row per theme.
    classifier_errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: How the run counted: sections, headline, passages dropped and why.
    settings: dict = field(default_factory=dict)

    @property
    def trends(self) -> pd.DataFrame:
        """Per-year share of documents with each theme and its Wilson interval."""
        by_year = self.breakdowns[self.breakdowns["by"] == "year"]
        return by_year.rename(columns={"group": "year"}).drop(columns="by").reset_index(drop=True)

    def csv_tables(self) -> dict[str, pd.DataFrame]:
        """The tables written as ``<name>.csv`` in the output folder (the out/ contract)."""
        return {"document_themes": self.document_themes, "prevalence": self.prevalence,
                "breakdowns": self.breakdowns, "cooccurrence": self.cooccurrence}

    def all_tables(self) -> dict[str, pd.DataFrame]:
        """Every table, for the workbook: one sheet each."""
        settings = pd.DataFrame({"setting": list(self.settings), "value": [str(v) for v in self.settings.values()]})
        return {
            "prevalence": self.prevalence, "passage_counts": self.passage_counts,
            "breakdowns": self.breakdowns, "trends": self.trends, "trend_tests": self.trend_tests,
            "cooccurrence": self.cooccurrence, "comparison": self.comparison,
            "classifier_errors": self.classifier_errors, "boilerplate_dropped": self.boilerplate,
            "document_themes": self.document_themes, "settings": settings,
        }


def document_themes(
    documents: pd.DataFrame, passages: pd.DataFrame, predictions: pd.DataFrame, themes: Sequence[str],
    min_passages: int = AGGREGATE.min_passages, rule: PresenceRule | None = None,
) -> pd.DataFrame:
    """One row per readable document and theme: present, tagged passage count, best score.

    Args:
        min_passages: without ``rule``, tagged passages needed for the theme to be present.
        rule: the presence rule (a model card's, see :func:`correction_from_card`); default at
            least ``min_passages`` tagged passages. A document with no counted passage never has
            a theme.
    """
    rule = rule or PresenceRule.count(min_passages)
    # Files with the same content share a doc_id (the content hash): one document, counted once.
    ok_docs = documents.loc[documents["status"] == "ok", "doc_id"].drop_duplicates()
    grid = pd.MultiIndex.from_product([ok_docs, list(themes)], names=["doc_id", "theme"]).to_frame(index=False)
    joined = predictions.merge(passages[["passage_id", "doc_id"]], on="passage_id")
    features = feature_table(joined) if len(joined) else pd.DataFrame(columns=["doc_id", "theme", *FEATURE_COLUMNS])
    out = grid.merge(features, on=["doc_id", "theme"], how="left")
    for column in FEATURE_COLUMNS:
        out[column] = out[column].astype(float).fillna(0.0)
    out["present"] = rule.present(out) & (out["n_passages"].to_numpy() > 0)
    out["n_passages"] = out["n_over"].astype(int)
    out["max_score"] = out["max"].round(4)
    return out[["doc_id", "theme", "present", "n_passages", "max_score"]]


def _shares(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = frame.groupby(keys, dropna=False).agg(
        n_documents=("doc_id", "nunique"), n_present=("present", "sum")
    ).reset_index()
    grouped["n_present"] = grouped["n_present"].astype(int)
    grouped["share"] = (grouped["n_present"] / grouped["n_documents"]).round(4)
    intervals = [wilson_interval(k, n) for k, n in zip(grouped["n_present"], grouped["n_documents"])]
    grouped["ci_low"] = [round(lo, 4) for lo, _ in intervals]
    grouped["ci_high"] = [round(hi, 4) for _, hi in intervals]
    return grouped


def rogan_gladen(p: float, sensitivity: float, specificity: float) -> float:
    """True prevalence from an observed share: (p + spec - 1) / (sens + spec - 1), clipped to [0, 1].

    NaN when an input is NaN or the classifier is no better than chance (sens + spec <= 1).
    """
    youden = sensitivity + specificity - 1
    if any(math.isnan(v) for v in (p, sensitivity, specificity)) or youden <= 0:
        return math.nan
    return min(1.0, max(0.0, (p + specificity - 1) / youden))


@dataclass(frozen=True)
class CorrectedShare:
    """A Rogan–Gladen corrected share, its bootstrap interval, and why it may be missing.

    ``share``, ``low`` and ``high`` are NaN when the share cannot be corrected or the correction
    is unreliable; ``note`` then says which (empty when nothing needs saying).
    """

    share: float
    low: float
    high: float
    youden: float
    note: str = ""


def bootstrap_draws(
    n_present: int, n_documents: int, error: ClassifierError, draws: int = 4000,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Bootstrap draws of the corrected share, resampling the counted and the evaluation documents.

    A Bayesian bootstrap (Rubin 1981) over documents: each draw gives every counted document and
    every evaluation document a random Dirichlet weight, with half a pseudo-document per cell
    (Jeffreys) so that 0 of n or n of n does not collapse to a point. By the Dirichlet aggregation
    property only the cell totals matter: the observed share is Beta(k + 1/2, n - k + 1/2) over the
    counted documents, and the evaluation documents' tp/fn/tn/fp weights are
    Dirichlet(tp + 1/2, fn + 1/2, tn + 1/2, fp + 1/2), giving sensitivity and specificity. Draws
    where sens + spec <= 1 (no better than chance) are left out; the rest are clipped to [0, 1].
    """
    rng = rng or np.random.default_rng(0)
    p = rng.beta(n_present + 0.5, n_documents - n_present + 0.5, draws)
    cells = rng.dirichlet([error.tp + 0.5, error.fn + 0.5, error.tn + 0.5, error.fp + 0.5], draws)
    sens = cells[:, 0] / (cells[:, 0] + cells[:, 1])
    spec = cells[:, 2] / (cells[:, 2] + cells[:, 3])
    youden = sens + spec - 1
    ok = youden > 0
    return np.clip((p[ok] + spec[ok] - 1) / youden[ok], 0.0, 1.0)


def corrected_share(
    n_present: int, n_documents: int, error: ClassifierError | None,
    draws: int = 4000, level: float = 0.95, seed: int = 0, min_youden: float = MIN_YOUDEN,
) -> CorrectedShare:
    """Rogan–Gladen share with a bootstrap interval (:func:`bootstrap_draws`), or why there is none.

    Args:
        n_present: documents of this run in which the theme is present under the rule.
        n_documents: readable documents of this run.
        error: confusion counts on the evaluation documents under the same rule, or ``None``.
        min_youden: below this sensitivity + specificity - 1 the share is unreliable: NaN and a note.
    """
    nan = math.nan
    if error is None:
        return CorrectedShare(nan, nan, nan, nan, "not corrected: no document evaluation for this theme")
    if n_documents == 0:
        return CorrectedShare(nan, nan, nan, nan, "no documents")
    sens, spec = error.sensitivity, error.specificity
    youden = sens + spec - 1
    if math.isnan(youden):
        return CorrectedShare(nan, nan, nan, nan, "not estimable: the evaluation documents lack "
                              + ("documents with" if math.isnan(sens) else "documents without") + " this theme")
    if youden < min_youden:
        return CorrectedShare(nan, nan, nan, youden, f"unreliable: sensitivity + specificity - 1 = {youden:.2f} "
                              f"on the evaluation documents, below {min_youden:g}")
    raw = (n_present / n_documents + spec - 1) / youden
    point = min(1.0, max(0.0, raw))
    note = ""
    if raw < 0:
        note = "observed share is below the evaluation documents' false-positive rate: corrected share shown at 0"
    elif raw > 1:
        note = "observed share is above what the evaluation documents' error rates allow: corrected share shown at 1"
    values = bootstrap_draws(n_present, n_documents, error, draws, np.random.default_rng(seed))
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail]) if len(values) else (nan, nan)
    return CorrectedShare(point, float(low), float(high), youden, note)


def corrected_prevalence(
    n_present: int, n_documents: int, error: ClassifierError | None,
    draws: int = 4000, level: float = 0.95, seed: int = 0, min_youden: float = MIN_YOUDEN,
) -> tuple[float, float, float]:
    """(share, low, high) of :func:`corrected_share`; NaN when not estimable or unreliable."""
    c = corrected_share(n_present, n_documents, error, draws, level, seed, min_youden)
    return c.share, c.low, c.high


def document_errors(
    docs: Sequence[str], true_labels: Sequence[Iterable[str]], predicted: np.ndarray, themes: Sequence[str],
) -> list[ClassifierError]:
    """Document-level confusion counts per theme from passage-level labels and predictions.

    A document has a theme when any of its passages has it, in the labels and in the predictions
    alike, as in counting.

    Args:
        docs: document id of each labelled passage (held-out documents only).
        true_labels: theme ids each passage is labelled with.
        predicted: 0/1 matrix (passages × themes), e.g. ``model.predict(texts)``.
        themes: theme ids of ``predicted``'s columns.
    """
    predicted = np.asarray(predicted)
    if predicted.shape != (len(docs), len(themes)):
        raise ValueError(f"predicted has shape {predicted.shape}; expected ({len(docs)}, {len(themes)}) "
                         "for the passages and themes given.")
    truth = pd.DataFrame([[t in set(labels) for t in themes] for labels in true_labels],
                         columns=list(themes), dtype=bool)
    truth["doc"] = list(docs)
    pred = pd.DataFrame(predicted.astype(bool), columns=list(themes))
    pred["doc"] = list(docs)
    t_doc, p_doc = truth.groupby("doc").any(), pred.groupby("doc").any()
    out = []
    for theme in themes:
        t, p = t_doc[theme], p_doc[theme]
        out.append(ClassifierError(theme, int((t & p).sum()), int((t & ~p).sum()),
                                   int((~t & ~p).sum()), int((~t & p).sum())))
    return out


def prevalence(
    doc_themes: pd.DataFrame,
    errors: Mapping[str, ClassifierError] | Sequence[ClassifierError] | None = None,
    draws: int = 4000,
    seed: int = 0,
    uncorrected_note: str = "not corrected: no document evaluation given",
) -> pd.DataFrame:
    """Share of documents with each theme, its 95% Wilson interval, and the corrected share.

    Args:
        errors: evaluation-document error counts per theme under the presence rule used;
            themes without them (or all, when ``None``) get NaN in ``adjusted_share``,
            ``adjusted_low`` and ``adjusted_high``. ``adjusted_note`` says why a corrected
            share is missing, unreliable or shown at a bound.
        draws: bootstrap draws per theme for the corrected interval.
        seed: random seed, so a run's numbers can be reproduced.
        uncorrected_note: the note of a theme without error counts.
    """
    table = _shares(doc_themes, ["theme"])
    by_theme = _errors_by_theme(errors)
    corrected = [
        corrected_share(int(k), int(n), by_theme.get(t), draws=draws, seed=seed)
        for t, k, n in zip(table["theme"], table["n_present"], table["n_documents"])
    ]
    for column, attr in (("adjusted_share", "share"), ("adjusted_low", "low"), ("adjusted_high", "high")):
        table[column] = [round(getattr(c, attr), 4) if not math.isnan(getattr(c, attr)) else math.nan
                         for c in corrected]
    table["adjusted_note"] = [uncorrected_note if by_theme.get(t) is None else c.note
                              for t, c in zip(table["theme"], corrected)]
    return table[PREVALENCE_COLUMNS]


def _errors_by_theme(
    errors: Mapping[str, ClassifierError] | Sequence[ClassifierError] | None,
) -> dict[str, ClassifierError]:
    if errors is None:
        return {}
    if isinstance(errors, Mapping):
        return dict(errors)
    return {e.theme: e for e in errors}


def errors_table(errors: Mapping[str, ClassifierError] | Sequence[ClassifierError] | None) -> pd.DataFrame:
    """One row per theme: the confusion counts, sensitivity and specificity."""
    rows = [{"theme": e.theme, "tp": e.tp, "fn": e.fn, "tn": e.tn, "fp": e.fp,
             "sensitivity": round(e.sensitivity, 4), "specificity": round(e.specificity, 4)}
            for e in _errors_by_theme(errors).values()]
    return pd.DataFrame(rows, columns=["theme", "tp", "fn", "tn", "fp", "sensitivity", "specificity"])


def _group_label(value: object) -> str:
    """'2020' rather than '2020.0' when a year column came through as floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def breakdowns(doc_themes: pd.DataFrame, documents: pd.DataFrame,
               by: Sequence[str] = ("year", "area", "review_type")) -> pd.DataFrame:
    """Prevalence within each year, area and review type that the documents name."""
    merged = doc_themes.merge(documents[["doc_id", *by]].drop_duplicates("doc_id"), on="doc_id")
    parts = []
    for key in by:
        known = merged[merged[key].notna()]
        if known.empty:
            continue
        table = _shares(known, [key, "theme"]).rename(columns={key: "group"})
        table.insert(0, "by", key)
        table["group"] = table["group"].map(_group_label)
        parts.append(table)
    columns = ["by", "group", "theme", "n_documents", "n_present", "share", "ci_low", "ci_high"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def cooccurrence(doc_themes: pd.DataFrame) -> pd.DataFrame:
    """Theme × theme over documents: documents with both, and lift P(a, b) / (P(a) P(b)).

    One row per ordered pair of different themes; lift is NaN when either theme is never present
    (1 means the two appear together as often as chance would have it).
    """
    if doc_themes.empty:
        return pd.DataFrame(columns=COOCCURRENCE_COLUMNS)
    wide = doc_themes.pivot_table(index="doc_id", columns="theme", values="present", aggfunc="any",
                                  fill_value=False)
    themes = list(dict.fromkeys(doc_themes["theme"]))
    wide = wide.reindex(columns=themes, fill_value=False).astype(int)
    n = len(wide)
    both = wide.T.to_numpy() @ wide.to_numpy()
    counts = wide.sum(axis=0).to_numpy()
    rows = []
    for i, a in enumerate(themes):
        for j, b in enumerate(themes):
            if i == j:
                continue
            denom = counts[i] * counts[j]
            lift = both[i, j] * n / denom if denom else math.nan
            rows.append({"theme_a": a, "theme_b": b, "n_documents": n, "n_a": int(counts[i]),
                         "n_b": int(counts[j]), "n_both": int(both[i, j]),
                         "lift": round(lift, 4) if not math.isnan(lift) else math.nan})
    return pd.DataFrame(rows, columns=COOCCURRENCE_COLUMNS)


def trend_test(years: Sequence[float], n_documents: Sequence[int], n_present: Sequence[int]) -> tuple[float, float, float]:
    """Cochran–Armitage test for a linear trend in a share over years: (slope per year, z, p).

    The slope is the least-squares change in the share per year (documents weighted equally);
    z and the two-sided p-value are NaN when there are fewer than two years or the theme is in
    none or all of the documents.
    """
    x = np.asarray(years, dtype=float)
    n = np.asarray(n_documents, dtype=float)
    k = np.asarray(n_present, dtype=float)
    total = n.sum()
    if len(x) < 2 or total == 0:
        return math.nan, math.nan, math.nan
    centred = x - (n * x).sum() / total
    sxx = (n * centred**2).sum()
    if sxx == 0:
        return math.nan, math.nan, math.nan
    t = (k * centred).sum()
    slope = t / sxx
    p_bar = k.sum() / total
    variance = p_bar * (1 - p_bar) * sxx
    if variance == 0:
        return slope, math.nan, math.nan
    z = t / math.sqrt(variance)
    return slope, z, math.erfc(abs(z) / math.sqrt(2))


def trend_tests(breakdowns_table: pd.DataFrame) -> pd.DataFrame:
    """One Cochran–Armitage trend test per theme over the per-year rows of ``breakdowns``."""
    by_year = breakdowns_table[breakdowns_table["by"] == "year"]
    rows = []
    for theme, group in by_year.groupby("theme", sort=False):
        years = group["group"].astype(float)
        slope, z, p = trend_test(years, group["n_documents"], group["n_present"])
        rows.append({"theme": theme, "n_years": len(group), "n_documents": int(group["n_documents"].sum()),
                     "first_year": int(years.min()), "last_year": int(years.max()),
                     "slope_per_year": round(slope, 4), "z": round(z, 4), "p_value": round(p, 4)})
    return pd.DataFrame(rows, columns=TREND_TEST_COLUMNS)


#: The Panel's first annual report (538 rapid reviews, July 2018 – December 2019), mapped to our ids.
PANEL_2018_19: tuple[tuple[str, str, float | None], ...] = (
    ("weak_risk_assessment", "weak risk assessment and decision making", 0.41),
    ("poor_information_sharing", "poor information exchange between agencies", 0.40),
    ("optimism_bias", "overly optimistic practice", 0.32),
    ("written_agreements", "written agreements widely used, at best of little protective effect", None),
)
PANEL_2018_19_N = 538
PANEL_2018_19_CORPUS = "Panel annual report 2018–19: 538 rapid reviews (Jul 2018 – Dec 2019)"


def comparison(prevalence_table: pd.DataFrame, documents: pd.DataFrame) -> pd.DataFrame:
    """Our shares beside the Panel's published 2018–19 figures, labelled as a different corpus."""
    ok = documents[documents["status"] == "ok"]
    kinds = ok["review_type"].dropna().value_counts()
    mix = ", ".join(f"{n} {t}" for t, n in kinds.items())
    this_corpus = f"this run: {len(ok)} documents" + (f" ({mix})" if mix else "")
    ours = prevalence_table.set_index("theme")
    rows = []
    for theme, finding, share in PANEL_2018_19:
        mine = ours.loc[theme] if theme in ours.index else None
        note = "Different corpus, period and coding: not a like-for-like comparison."
        if share is None:
            note = "No percentage published. " + note
        rows.append({
            "theme": theme, "panel_finding": finding, "panel_share": share if share is not None else math.nan,
            "panel_n": PANEL_2018_19_N, "panel_corpus": PANEL_2018_19_CORPUS,
            "this_share": mine["share"] if mine is not None else math.nan,
            "this_ci_low": mine["ci_low"] if mine is not None else math.nan,
            "this_ci_high": mine["ci_high"] if mine is not None else math.nan,
            "this_n": int(mine["n_documents"]) if mine is not None else 0,
            "this_corpus": this_corpus, "note": note,
        })
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def passage_counts(doc_themes: pd.DataFrame, n_counted: int) -> pd.DataFrame:
    """Per theme: documents where it is present beside the tagged passages behind them."""
    table = doc_themes.groupby("theme", sort=False).agg(
        n_documents_present=("present", "sum"), n_passages_tagged=("n_passages", "sum")
    ).reset_index()
    table["n_documents_present"] = table["n_documents_present"].astype(int)
    table["n_passages_tagged"] = table["n_passages_tagged"].astype(int)
    table["n_passages_counted"] = n_counted
    return table[PASSAGE_COUNT_COLUMNS]


def counted_passages(
    passages: pd.DataFrame, sections: Sequence[str] | None = DEFAULT_SECTIONS,
    boilerplate: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The passages that count: boilerplate removed, then only the chosen sections.

    Args:
        sections: review sections to count (``FINDINGS_SECTIONS`` for findings only), or ``None``
            for every passage, including those under no recognised heading.
        boilerplate: passages to leave out, with a ``passage_id`` column (``DedupResult.dropped``).

    Returns:
        The counted passages and a record of how many were left out at each step.
    """
    if sections is not None:
        unknown = sorted(set(sections) - set(SECTIONS))
        if unknown:
            raise ValueError(f"Unknown section(s) {unknown}: choose from {list(SECTIONS)} or None for all.")
        if "section" not in passages:
            raise ValueError("passages has no 'section' column, so it cannot be filtered by section; pass sections=None.")
    dropped_ids = set(boilerplate["passage_id"]) if boilerplate is not None and len(boilerplate) else set()
    not_boilerplate = passages[~passages["passage_id"].isin(dropped_ids)]
    counted = not_boilerplate if sections is None else not_boilerplate[not_boilerplate["section"].isin(sections)]
    record = {
        "sections": None if sections is None else tuple(sections),
        "sections_counted": "all sections" if sections is None else ", ".join(sections),
        "headline": HEADLINE,
        "passages_total": len(passages),
        "passages_dropped_boilerplate": len(passages) - len(not_boilerplate),
        "boilerplate_clusters": int(boilerplate["cluster"].nunique())
        if boilerplate is not None and len(boilerplate) and "cluster" in boilerplate else 0,
        "passages_outside_sections": len(not_boilerplate) - len(counted),
        "passages_counted": len(counted),
    }
    return counted, record


def aggregate(
    documents: pd.DataFrame,
    passages: pd.DataFrame,
    predictions: pd.DataFrame,
    themes: Sequence[str],
    errors: Mapping[str, ClassifierError] | Sequence[ClassifierError] | None = None,
    sections: Sequence[str] | None = DEFAULT_SECTIONS,
    boilerplate: pd.DataFrame | None = None,
    draws: int = 4000,
    seed: int = 0,
    min_passages: int = AGGREGATE.min_passages,
    rule: PresenceRule | None = None,
    correction: Correction | None = None,
) -> Aggregates:
    """Every table of a run from its documents, passages and predictions.

    Args:
        errors: evaluation-document error counts per theme for the corrected shares; default
            those of ``correction``; ``None`` without a correction leaves the adjusted columns NaN.
        sections: review sections to count; ``None`` (the default) counts all of them.
        boilerplate: passages to leave out (``themes.dedup.find_boilerplate(...).dropped``).
        draws, seed: bootstrap draws and seed for the corrected intervals.
        min_passages: without a rule, tagged passages needed for a theme to be present.
        rule: the presence rule; default ``correction``'s, else ``min_passages`` tagged passages.
        correction: a model card's document evaluation (:func:`correction_from_card`): the
            presence rule and the error counts measured under it, with their provenance.
    """
    if correction is not None:
        rule = rule or correction.rule
        errors = correction.errors if errors is None else errors
    rule = rule or PresenceRule.count(min_passages)
    counted, record = counted_passages(passages, sections, boilerplate)
    doc_themes = document_themes(documents, counted, predictions, themes, min_passages, rule)
    ok_docs = set(documents.loc[documents["status"] == "ok", "doc_id"])
    record["documents_counted"] = len(ok_docs)
    record["min_passages"] = rule.default_k if rule.kind == "count" and not rule.k else None
    record["presence_rule"] = rule.describe()
    record["presence_rule_kind"] = rule.kind
    if correction is not None:
        record["corrected_with"] = correction.provenance()
        record["correction_documents"] = correction.n_documents
        record["correction_source"] = correction.source
        uncorrected = "not corrected: no document evaluation for this theme"
    elif errors:
        record["corrected_with"] = "the document-level error counts given to aggregate()"
        uncorrected = "not corrected: no error counts for this theme"
    else:
        record["corrected_with"] = "none: no document evaluation, shares are not corrected"
        uncorrected = "not corrected: no document evaluation"
    record["min_youden"] = MIN_YOUDEN
    record["documents_without_counted_passages"] = len(ok_docs - set(counted["doc_id"]))
    prev = prevalence(doc_themes, errors, draws=draws, seed=seed, uncorrected_note=uncorrected)
    by = breakdowns(doc_themes, documents)
    return Aggregates(
        document_themes=doc_themes,
        prevalence=prev,
        breakdowns=by,
        cooccurrence=cooccurrence(doc_themes),
        trend_tests=trend_tests(by),
        passage_counts=passage_counts(doc_themes, len(counted)),
        comparison=comparison(prev, documents),
        boilerplate=boilerplate if boilerplate is not None else pd.DataFrame(),
        classifier_errors=errors_table(errors),
        settings=record,
    )
