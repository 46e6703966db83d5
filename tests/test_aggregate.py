import math

import pandas as pd
import pytest

from themes.aggregate import (
    FINDINGS_SECTIONS,
    PREVALENCE_COLUMNS,
    aggregate,
    prevalence,
    trend_test,
    wilson_interval,
)
from themes.correction import ClassifierError, correction_from_card
from themes.presence import PresenceRule


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
    with pytest.raises(ValueError, match="findings") as error:
        aggregate(*_two_theme_run(), ["t"], sections=("findings",))
    assert error.value.code == "E602"


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


# -- the card's presence rule and correction (issue 13) -------------------------------------------

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
    with pytest.raises(ValueError, match="3 of 2") as error:
        wilson_interval(3, 2)
    assert error.value.code == "E601"
