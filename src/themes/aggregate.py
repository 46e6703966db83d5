"""Count themes by document, as the Panel does: a theme is present when any passage is tagged.

Shares come with 95% Wilson score intervals, overall and split by year, area and review type.
Beside them: the share corrected for the classifier's measured error (Rogan–Gladen, with a
parametric bootstrap interval), a theme × theme co-occurrence table, per-year series with a
trend test, and the Panel's published 2018–19 figures for comparison. Counting can leave out
boilerplate (see :mod:`themes.dedup`) and count only some review sections.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from themes.config import AGGREGATE
from themes.types import SECTIONS

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes in ``n`` trials; (0, 1) when ``n`` is 0."""
    if n == 0:
        return 0.0, 1.0
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
#: share depends on error rates measured on our own labelled held-out documents, whose transfer to
#: real review PDFs is not yet verified; it is shown beside the raw share, not instead of it.
HEADLINE = "raw"

PREVALENCE_COLUMNS = ["theme", "n_documents", "n_present", "share", "ci_low", "ci_high",
                      "adjusted_share", "adjusted_low", "adjusted_high"]
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
    min_passages: int = AGGREGATE.min_passages,
) -> pd.DataFrame:
    """One row per readable document and theme: present, tagged passage count, best score.

    Args:
        min_passages: tagged passages needed for the theme to be present in the document.
    """
    ok_docs = documents.loc[documents["status"] == "ok", "doc_id"]
    grid = pd.MultiIndex.from_product([ok_docs, list(themes)], names=["doc_id", "theme"]).to_frame(index=False)
    joined = predictions.merge(passages[["passage_id", "doc_id"]], on="passage_id")
    per = (
        joined.groupby(["doc_id", "theme"])
        .agg(n_passages=("tagged", "sum"), max_score=("score", "max"))
        .reset_index()
    )
    out = grid.merge(per, on=["doc_id", "theme"], how="left")
    out["n_passages"] = out["n_passages"].fillna(0).astype(int)
    out["max_score"] = out["max_score"].fillna(0.0).round(4)
    out["present"] = out["n_passages"] >= max(1, min_passages)
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


def corrected_prevalence(
    n_present: int, n_documents: int, error: ClassifierError | None,
    draws: int = 4000, level: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """Rogan–Gladen share and a parametric bootstrap interval; (NaN, NaN, NaN) when not estimable.

    Each draw takes the observed share, the sensitivity and the specificity from Jeffreys
    Beta(x + 1/2, n - x + 1/2) distributions of their own counts (the share from the documents of
    this run, sensitivity and specificity from the held-out documents), so the interval carries
    the uncertainty of all three; unlike binomial resampling it does not collapse to a point at 0
    of n or n of n. Draws where sens + spec <= 1 (a classifier no better than chance) are left
    out. The interval is the central ``level`` quantile range of the clipped draws.

    Args:
        n_present: documents of this run in which the theme was tagged.
        n_documents: readable documents of this run.
        error: held-out confusion counts, or ``None`` (nothing to correct with).
    """
    if error is None or n_documents == 0:
        return math.nan, math.nan, math.nan
    point = rogan_gladen(n_present / n_documents, error.sensitivity, error.specificity)
    if math.isnan(point):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    p = rng.beta(n_present + 0.5, n_documents - n_present + 0.5, draws)
    sens = rng.beta(error.tp + 0.5, error.fn + 0.5, draws)
    spec = rng.beta(error.tn + 0.5, error.fp + 0.5, draws)
    youden = sens + spec - 1
    ok = youden > 0
    values = np.clip((p[ok] + spec[ok] - 1) / youden[ok], 0.0, 1.0)
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return point, float(low), float(high)


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
) -> pd.DataFrame:
    """Share of documents with each theme, its 95% Wilson interval, and the corrected share.

    Args:
        errors: held-out document-level error counts per theme; themes without them (or all,
            when ``None``) get NaN in ``adjusted_share``, ``adjusted_low`` and ``adjusted_high``.
        draws: bootstrap draws per theme for the corrected interval.
        seed: random seed, so a run's numbers can be reproduced.
    """
    table = _shares(doc_themes, ["theme"])
    by_theme = _errors_by_theme(errors)
    corrected = [
        corrected_prevalence(int(k), int(n), by_theme.get(t), draws=draws, seed=seed)
        for t, k, n in zip(table["theme"], table["n_present"], table["n_documents"])
    ]
    for j, column in enumerate(("adjusted_share", "adjusted_low", "adjusted_high")):
        table[column] = [round(c[j], 4) if not math.isnan(c[j]) else math.nan for c in corrected]
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
    merged = doc_themes.merge(documents[["doc_id", *by]], on="doc_id")
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
) -> Aggregates:
    """Every table of a run from its documents, passages and predictions.

    Args:
        errors: held-out document-level error counts per theme for the corrected shares
            (:func:`document_errors`); ``None`` leaves the adjusted columns NaN.
        sections: review sections to count; ``None`` (the default) counts all of them.
        boilerplate: passages to leave out (``themes.dedup.find_boilerplate(...).dropped``).
        draws, seed: bootstrap draws and seed for the corrected intervals.
        min_passages: tagged passages needed for a theme to be present in a document.
    """
    counted, record = counted_passages(passages, sections, boilerplate)
    doc_themes = document_themes(documents, counted, predictions, themes, min_passages)
    ok_docs = set(documents.loc[documents["status"] == "ok", "doc_id"])
    record["documents_counted"] = len(ok_docs)
    record["min_passages"] = min_passages
    record["documents_without_counted_passages"] = len(ok_docs - set(counted["doc_id"]))
    record["corrected_with"] = "held-out document-level sensitivity/specificity" if errors else "none given"
    prev = prevalence(doc_themes, errors, draws=draws, seed=seed)
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
