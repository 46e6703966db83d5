"""The run's tables: themes counted by document, as the Panel counts, with 95% intervals.

A theme is present in a document when the presence rule says so (:class:`themes.presence.
PresenceRule`). In a run that rule is the one the model card's ``document_evaluation`` records
(:func:`themes.correction.correction_from_card`), chosen by cross-validation on the held-out
``corpus/doc-eval`` set (:func:`themes.doceval.choose_presence_rule`); its kind is one of:

- ``count``: at least *k* of the document's counted passages are tagged (scored at or above the
  theme's passage threshold), *k* per theme;
- ``max``: the best passage score reaches a per-theme cut;
- ``noisy_or``: the noisy-OR evidence -ln(1 - noisy-OR) of the passage scores reaches a cut;
- ``logistic``: a per-theme logistic regression over those features says present.

A theme the rule has no parameters for, and every theme under a model whose card has no
document evaluation, needs at least ``config.AGGREGATE.min_passages`` (2) tagged passages; such
shares are not corrected. A document with no counted passage has no theme.

Shares come with 95% Wilson score intervals, overall and split by year, area and review type,
beside the share corrected for the classifier's document-level error (:mod:`themes.correction`).
Also: passage counts per theme, a theme × theme co-occurrence table, per-year series with a
Cochran–Armitage trend test, and the Panel's published 2018–19 figures for comparison. Counting
can leave out boilerplate (:mod:`themes.dedup`) and count only some review sections.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from themes.config import AGGREGATE
from themes.correction import MIN_YOUDEN, ClassifierError, Correction, corrected_share
from themes.errors import ArgumentError, Errors
from themes.presence import FEATURE_COLUMNS, PresenceRule, feature_table
from themes.types import SECTIONS

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes in ``n`` trials; (0, 1) when ``n`` is 0."""
    if n == 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ArgumentError(Errors.E601.format(k=k, n=n))
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
PREVALENCE_COLUMNS = ["theme", "n_documents", "n_present", "share", "ci_low", "ci_high",
                      "adjusted_share", "adjusted_low", "adjusted_high", "adjusted_note"]
COOCCURRENCE_COLUMNS = ["theme_a", "theme_b", "n_documents", "n_a", "n_b", "n_both", "lift"]
TREND_TEST_COLUMNS = ["theme", "n_years", "n_documents", "first_year", "last_year", "slope_per_year",
                      "z", "p_value"]
PASSAGE_COUNT_COLUMNS = ["theme", "n_documents_present", "n_passages_tagged", "n_passages_counted"]
COMPARISON_COLUMNS = ["theme", "panel_finding", "panel_share", "panel_n", "panel_corpus", "this_share",
                      "this_ci_low", "this_ci_high", "this_n", "this_corpus", "note"]


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
            raise ArgumentError(Errors.E602.format(unknown=unknown, choices=list(SECTIONS)))
        if "section" not in passages:
            raise ArgumentError(Errors.E603)
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
