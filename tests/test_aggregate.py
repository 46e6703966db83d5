import pandas as pd
import pytest

from themes.aggregate import aggregate, wilson_interval


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
