import math

import numpy as np
import pandas as pd
import pytest

from themes.aggregate import (
    FINDINGS_SECTIONS,
    MIN_YOUDEN,
    PREVALENCE_COLUMNS,
    ClassifierError,
    PresenceRule,
    aggregate,
    corrected_prevalence,
    corrected_share,
    correction_from_card,
    document_errors,
    feature_table,
    prevalence,
    rogan_gladen,
    trend_test,
    wilson_interval,
)


@pytest.mark.parametrize(
    "k,n,low,high",
    [
        (0, 10, 0.0, 0.2775),  # z^2 / (n + z^2) by hand
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_aggregate_wilson_matches_hand_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_aggregate_wilson_no_documents_is_uninformative():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_aggregate_counts_documents_not_passages():
    documents = pd.DataFrame({
        "doc_id": ["a", "b", "c", "bad"], "status": ["ok", "ok", "ok", "error"],
        "year": [2020, 2020, 2021, None], "area": ["X", "Y", "X", None], "review_type": ["LCSPR"] * 3 + [None],
    })
    passages = pd.DataFrame({"passage_id": ["a1", "a2", "b1", "c1"], "doc_id": ["a", "a", "b", "c"]})
    predictions = pd.DataFrame({
        "passage_id": ["a1", "a2", "b1", "c1"], "theme": ["t"] * 4,
        "score": [0.9, 0.8, 0.2, 0.1], "tagged": [True, True, False, False], "model_version": "m",
    })
    result = aggregate(documents, passages, predictions, ["t"])
    row = result.prevalence.iloc[0]
    # Two tagged passages in one document count once; the unreadable file is not a denominator.
    assert (row.n_documents, row.n_present) == (3, 1)
    assert row.share == pytest.approx(1 / 3, abs=1e-4)
    by_year = result.breakdowns.query("by == 'year'").set_index("group")
    assert by_year.loc["2020", "n_present"] == 1 and by_year.loc["2021", "n_present"] == 0
    doc_a = result.document_themes.set_index("doc_id").loc["a"]
    assert doc_a.present and doc_a.n_passages == 2 and doc_a.max_score == pytest.approx(0.9)


# -- corrected prevalence ------------------------------------------------------------------------

ERR_SMALL = ClassifierError("t", tp=8, fn=2, tn=9, fp=1)  # sens 0.8, spec 0.9 from 10 + 10 documents
ERR_LARGE = ClassifierError("t", tp=800, fn=200, tn=900, fp=100)  # same rates from 1000 + 1000


@pytest.mark.parametrize(
    "p,sens,spec,expected",
    [
        (0.4, 0.8, 0.9, 0.3 / 0.7),  # (0.4 + 0.9 - 1) / (0.8 + 0.9 - 1) by hand = 0.428571
        (0.0, 0.8, 0.9, 0.0),  # -0.1 / 0.7 clipped to 0
        (1.0, 0.8, 0.9, 1.0),  # 0.9 / 0.7 clipped to 1
        (0.25, 1.0, 1.0, 0.25),  # a perfect classifier changes nothing
        (0.5, 0.5, 0.5, math.nan),  # no better than chance: undefined
    ],
)
def test_aggregate_rogan_gladen_matches_hand_values(p, sens, spec, expected):
    got = rogan_gladen(p, sens, spec)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("k", [0, 4, 10])
def test_aggregate_corrected_interval_contains_its_point_estimate(k):
    point, low, high = corrected_prevalence(k, 10, ERR_SMALL)
    assert point == pytest.approx(rogan_gladen(k / 10, 0.8, 0.9))
    assert 0.0 <= low <= point <= high <= 1.0


def test_aggregate_corrected_interval_widens_when_error_counts_are_small():
    _, lo_small, hi_small = corrected_prevalence(40, 100, ERR_SMALL)
    _, lo_large, hi_large = corrected_prevalence(40, 100, ERR_LARGE)
    # Same sensitivity and specificity; measured on 20 documents instead of 2000.
    assert hi_small - lo_small > 1.5 * (hi_large - lo_large)
    assert lo_large < 3 / 7 < hi_large


def test_aggregate_corrected_interval_edges_for_none_and_all_present():
    assert corrected_prevalence(0, 10, ERR_LARGE)[:2] == (0.0, 0.0)
    assert corrected_prevalence(10, 10, ERR_LARGE)[0] == 1.0
    assert corrected_prevalence(10, 10, ERR_LARGE)[2] == 1.0
    assert corrected_prevalence(0, 10, ERR_LARGE)[2] > 0  # 0 of 10 does not prove absence


def test_aggregate_corrected_is_nan_without_usable_error_counts():
    assert all(math.isnan(v) for v in corrected_prevalence(4, 10, None))
    # Every held-out document had the theme: specificity unknown, nothing to correct with.
    assert all(math.isnan(v) for v in corrected_prevalence(4, 10, ClassifierError("t", 13, 0, 0, 0)))


def test_aggregate_classifier_error_rejects_negative_counts():
    with pytest.raises(ValueError, match="fp"):
        ClassifierError("t", 1, 1, 1, -1)


def _doc_themes(present: dict[str, list[bool]]) -> pd.DataFrame:
    rows = [{"doc_id": f"d{i}", "theme": t, "present": v, "n_passages": int(v), "max_score": 0.9 * v}
            for t, values in present.items() for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_aggregate_prevalence_adds_adjusted_columns():
    table = prevalence(_doc_themes({"t": [True] * 4 + [False] * 6, "u": [False] * 10}), [ERR_SMALL])
    assert list(table.columns) == PREVALENCE_COLUMNS
    t, u = table.set_index("theme").loc["t"], table.set_index("theme").loc["u"]
    assert t.adjusted_share == pytest.approx(0.4286, abs=1e-4)
    assert t.adjusted_low <= t.adjusted_share <= t.adjusted_high
    assert math.isnan(u.adjusted_share) and (u.n_present, u.ci_low) == (0, 0.0)


def test_aggregate_document_errors_count_documents_not_passages():
    docs = ["a", "a", "b", "c", "c"]
    labels = [["t"], [], ["t"], [], []]
    # a: tagged on its unlabelled passage -> still a true positive at document level.
    predicted = np.array([[0], [1], [0], [1], [0]])
    (err,) = document_errors(docs, labels, predicted, ["t"])
    assert (err.tp, err.fn, err.tn, err.fp) == (1, 1, 0, 1)
    with pytest.raises(ValueError, match="shape"):
        document_errors(docs, labels, np.zeros((4, 1)), ["t"])


# -- co-occurrence, trend, sections, boilerplate, comparison -------------------------------------

def test_aggregate_cooccurrence_counts_and_lift_by_hand():
    result = aggregate(*_two_theme_run(), ["t", "u"], min_passages=1)
    row = result.cooccurrence.query("theme_a == 't' and theme_b == 'u'").iloc[0]
    # 4 documents; t in a, b; u in b, c; both in b: lift = (1/4) / ((2/4) (2/4)) = 1.
    assert (row.n_documents, row.n_a, row.n_b, row.n_both) == (4, 2, 2, 1)
    assert row.lift == pytest.approx(1.0)


def test_aggregate_trend_test_matches_hand_values():
    # 0/2, 1/2, 2/2 over three years: T = 2, Var = 0.25 * 4 = 1, z = 2, slope = 2 / 4.
    slope, z, p = trend_test([2019, 2020, 2021], [2, 2, 2], [0, 1, 2])
    assert (slope, z) == (pytest.approx(0.5), pytest.approx(2.0))
    assert p == pytest.approx(0.0455, abs=1e-4)
    assert math.isnan(trend_test([2019], [5], [2])[1])


def _two_theme_run():
    documents = pd.DataFrame({
        "doc_id": list("abcd"), "status": ["ok"] * 4, "year": [2019, 2020, 2020, 2021],
        "area": list("WXYZ"), "review_type": ["LCSPR"] * 4,
    })
    passages = pd.DataFrame({
        "passage_id": ["a1", "a2", "b1", "c1", "d1"], "doc_id": ["a", "a", "b", "c", "d"],
        "section": ["analysis", "background", "learning", "analysis", None],
    })
    tags = {("a2", "t"), ("b1", "t"), ("b1", "u"), ("c1", "u")}
    predictions = pd.DataFrame([
        {"passage_id": p, "theme": t, "score": 0.9 if (p, t) in tags else 0.1, "tagged": (p, t) in tags,
         "model_version": "m"}
        for p in passages["passage_id"] for t in ("t", "u")
    ])
    return documents, passages, predictions


def test_aggregate_section_filter_applies_before_counting():
    everything = aggregate(*_two_theme_run(), ["t", "u"], min_passages=1).prevalence.set_index("theme")
    findings = aggregate(*_two_theme_run(), ["t", "u"], sections=FINDINGS_SECTIONS, min_passages=1)
    assert everything.loc["t", "n_present"] == 2
    # a's only t passage sits in the background section: with findings only, a no longer counts.
    assert findings.prevalence.set_index("theme").loc["t", "n_present"] == 1
    assert findings.prevalence["n_documents"].eq(4).all()  # the denominator stays every readable review
    assert findings.settings["passages_outside_sections"] == 2
    assert findings.settings["documents_without_counted_passages"] == 1  # d has no section
    with pytest.raises(ValueError, match="findings"):
        aggregate(*_two_theme_run(), ["t"], sections=("findings",))


def test_aggregate_boilerplate_is_not_counted_and_passages_sit_beside_documents():
    boilerplate = pd.DataFrame({"passage_id": ["b1"], "cluster": [1]})
    result = aggregate(*_two_theme_run(), ["t", "u"], boilerplate=boilerplate, min_passages=1)
    prev = result.prevalence.set_index("theme")
    assert (prev.loc["t", "n_present"], prev.loc["u", "n_present"]) == (1, 1)
    assert result.settings["passages_dropped_boilerplate"] == 1
    counts = result.passage_counts.set_index("theme")
    assert (counts.loc["t", "n_documents_present"], counts.loc["t", "n_passages_tagged"]) == (1, 1)
    assert counts.loc["t", "n_passages_counted"] == 4


def test_aggregate_comparison_is_labelled_as_a_different_corpus():
    result = aggregate(*_two_theme_run(), ["weak_risk_assessment", "written_agreements"], min_passages=1)
    table = result.comparison.set_index("theme")
    assert table.loc["weak_risk_assessment", "panel_share"] == 0.41
    assert table.loc["optimism_bias", "panel_share"] == 0.32
    assert math.isnan(table.loc["written_agreements", "panel_share"])
    assert table["note"].str.contains("not a like-for-like").all()
    assert (table["panel_n"] == 538).all() and table["this_corpus"].str.contains("4 documents").all()


def test_aggregate_one_stray_passage_is_not_presence_by_default():
    documents = pd.DataFrame({"doc_id": ["a", "b"], "status": ["ok", "ok"], "year": [2020, 2021],
                              "area": ["X", "Y"], "review_type": ["LCSPR", "LCSPR"]})
    passages = pd.DataFrame({"passage_id": ["a1", "a2", "b1"], "doc_id": ["a", "a", "b"]})
    predictions = pd.DataFrame({"passage_id": ["a1", "a2", "b1"], "theme": ["t"] * 3, "score": [0.9, 0.8, 0.9],
                                "tagged": [True, True, True], "model_version": "m"})
    default = aggregate(documents, passages, predictions, ["t"]).document_themes.set_index("doc_id")
    assert default.loc["a", "present"] and not default.loc["b", "present"]
    assert default.loc["b", "n_passages"] == 1  # the stray passage is still counted and shown
    any_passage = aggregate(documents, passages, predictions, ["t"], min_passages=1).prevalence
    assert int(any_passage.loc[0, "n_present"]) == 2


# -- presence rules and the card's correction (issue 13) -------------------------------------------

def test_aggregate_bootstrap_interval_covers_the_true_prevalence_about_95_percent():
    # Known truth: prevalence 0.3 among 200 counted documents, sensitivity 0.85 and specificity 0.9
    # measured on 26 + 14 evaluation documents (the doc-eval split), all four drawn afresh each time.
    rng = np.random.default_rng(13)
    covered, estimates = 0, []
    for i in range(200):
        tp, tn = int(rng.binomial(26, 0.85)), int(rng.binomial(14, 0.9))
        error = ClassifierError("t", tp=tp, fn=26 - tp, tn=tn, fp=14 - tn)
        truth = rng.random(200) < 0.3
        called = np.where(truth, rng.random(200) < 0.85, rng.random(200) < 0.1)
        c = corrected_share(int(called.sum()), 200, error, draws=2000, seed=i)
        covered += c.low <= 0.3 <= c.high
        estimates.append(c.share)
    assert 0.90 <= covered / 200 <= 0.99
    # The raw share is biased (0.3 * 0.85 + 0.7 * 0.1 = 0.325); the corrected one is centred on the truth.
    assert abs(np.median(estimates) - 0.3) < 0.02


def test_aggregate_correction_is_unreliable_when_youden_is_small():
    weak = ClassifierError("t", tp=11, fn=9, tn=11, fp=9)  # 0.55 + 0.55 - 1 = 0.1
    c = corrected_share(30, 100, weak)
    assert math.isnan(c.share) and math.isnan(c.low) and math.isnan(c.high)
    assert c.note.startswith("unreliable") and c.youden == pytest.approx(0.1) and MIN_YOUDEN == 0.2
    table = prevalence(_doc_themes({"t": [True] * 3 + [False] * 7}), [weak]).iloc[0]
    assert math.isnan(table.adjusted_share) and table.adjusted_note.startswith("unreliable")
    fair = ClassifierError("t", tp=14, fn=6, tn=13, fp=7)  # 0.7 + 0.65 - 1 = 0.35
    assert not math.isnan(corrected_share(30, 100, fair).share)


def test_aggregate_correction_says_when_it_is_shown_at_a_bound():
    c = corrected_share(0, 50, ERR_SMALL)  # 0 observed, but the rule has a 10% false-positive rate
    assert c.share == 0.0 and "shown at 0" in c.note


RULES = [
    PresenceRule(kind="count", k={"t": 2}, thresholds={"t": 0.5}),
    PresenceRule(kind="max", cut={"t": 0.8}, thresholds={"t": 0.5}),
    PresenceRule(kind="noisy_or", cut={"t": 2.0}, thresholds={"t": 0.5}),
    PresenceRule(kind="logistic", coef={"t": [1.0, 4.0, 0.5, 0.0, -0.2]}, intercept={"t": -4.0},
                 thresholds={"t": 0.5}),
]


@pytest.mark.parametrize("rule", RULES, ids=[r.kind for r in RULES])
def test_aggregate_presence_rule_round_trips_as_json_and_decides_alike_one_by_one(rule):
    import json

    again = PresenceRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert again == rule
    docs = {"a": [0.9, 0.6, 0.1], "b": [0.55], "c": [0.3, 0.2], "d": [0.95, 0.85, 0.9, 0.7]}
    scored = pd.DataFrame([{"doc_id": d, "theme": "t", "score": s, "tagged": s >= 0.5}
                           for d, scores in docs.items() for s in scores])
    table = feature_table(scored)
    batch = dict(zip(table["doc_id"], again.present(table)))
    assert batch == {d: again.present_in("t", s) for d, s in docs.items()}
    assert batch["d"] and not batch["c"]


def test_aggregate_noisy_or_adds_up_weak_passages_that_max_does_not():
    many_weak = [0.6] * 6  # noisy-OR evidence 6 * ln(2.5) = 5.5; best score 0.6
    assert PresenceRule(kind="noisy_or", cut={"t": 3.0}).present_in("t", many_weak)
    assert not PresenceRule(kind="max", cut={"t": 0.8}).present_in("t", many_weak)


def _card(rule: PresenceRule, n: int = 40) -> dict:
    return {"version": "m-1", "document_evaluation": {
        "set": "corpus/doc-eval", "n_documents": n, "documents": [f"{i:064x}" for i in range(n)],
        "rule": rule.to_dict(),
        "themes": {"t": {"tp": 20, "fn": 6, "tn": 12, "fp": 2}, "u": {"tp": 5, "fn": 5, "tn": 15, "fp": 15}}}}


def test_aggregate_uses_the_card_rule_and_rates_and_says_where_they_come_from():
    rule = PresenceRule(kind="count", k={"t": 1, "u": 1})
    correction = correction_from_card(_card(rule))
    assert correction is not None and correction.n_documents == 40 and correction.rule == rule
    result = aggregate(*_two_theme_run(), ["t", "u"], correction=correction)
    prev = result.prevalence.set_index("theme")
    assert prev.loc["t", "n_present"] == 2  # the card's k=1, not the default of 2 passages
    assert not math.isnan(prev.loc["t", "adjusted_share"])
    assert prev.loc["u", "adjusted_note"].startswith("unreliable")  # 0.5 + 0.5 - 1 = 0
    assert "40 held-out documents (corpus/doc-eval" in result.settings["corrected_with"]
    assert result.settings["presence_rule"] == rule.describe()


def test_aggregate_without_a_document_evaluation_counts_uncorrected_and_says_so():
    assert correction_from_card({"version": "old", "document_errors": [{"theme": "t"}]}) is None
    result = aggregate(*_two_theme_run(), ["t", "u"])
    assert result.prevalence["adjusted_share"].isna().all()
    assert result.prevalence["adjusted_note"].str.startswith("not corrected").all()
    assert result.settings["corrected_with"].startswith("none")


def test_aggregate_files_with_the_same_content_count_as_one_document():
    # Two file names, one content hash (a report saved twice): documents.csv keeps both rows, but
    # the document is counted once, so a share never exceeds 1 and its interval stays in [0, 1].
    documents = pd.DataFrame({
        "doc_id": ["a", "a", "b"], "file": ["a.pdf", "a copy.pdf", "b.pdf"], "status": ["ok"] * 3,
        "year": [2020, 2020, 2020], "area": ["X", "X", "Y"], "review_type": ["LCSPR"] * 3,
    })
    passages = pd.DataFrame({"passage_id": ["a1", "a2", "b1"], "doc_id": ["a", "a", "b"]})
    predictions = pd.DataFrame({
        "passage_id": ["a1", "a2", "b1"], "theme": ["t"] * 3,
        "score": [0.9, 0.8, 0.1], "tagged": [True, True, False], "model_version": "m",
    })
    result = aggregate(documents, passages, predictions, ["t"])
    row = result.prevalence.iloc[0]
    assert (row.n_documents, row.n_present) == (2, 1)
    assert 0.0 <= row.ci_low <= row.share <= row.ci_high <= 1.0
    by_year = result.breakdowns.query("by == 'year'").set_index("group")
    assert (by_year.loc["2020", "n_documents"], by_year.loc["2020", "n_present"]) == (2, 1)
    assert len(result.document_themes) == 2


def test_aggregate_wilson_refuses_more_successes_than_trials():
    with pytest.raises(ValueError, match="3 of 2"):
        wilson_interval(3, 2)
