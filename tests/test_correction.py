"""Corrected shares: Rogan–Gladen by hand, bootstrap intervals, and when a share cannot be corrected."""

import math

import numpy as np
import pandas as pd
import pytest

from themes.aggregate import prevalence
from themes.correction import (
    MIN_YOUDEN,
    ClassifierError,
    corrected_prevalence,
    corrected_share,
    document_errors,
    rogan_gladen,
)

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
def test_correction_rogan_gladen_matches_hand_values(p, sens, spec, expected):
    got = rogan_gladen(p, sens, spec)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("k", [0, 4, 10])
def test_correction_corrected_interval_contains_its_point_estimate(k):
    point, low, high = corrected_prevalence(k, 10, ERR_SMALL)
    assert point == pytest.approx(rogan_gladen(k / 10, 0.8, 0.9))
    assert 0.0 <= low <= point <= high <= 1.0


def test_correction_corrected_interval_widens_when_error_counts_are_small():
    _, lo_small, hi_small = corrected_prevalence(40, 100, ERR_SMALL)
    _, lo_large, hi_large = corrected_prevalence(40, 100, ERR_LARGE)
    # Same sensitivity and specificity; measured on 20 documents instead of 2000.
    assert hi_small - lo_small > 1.5 * (hi_large - lo_large)
    assert lo_large < 3 / 7 < hi_large


def test_correction_corrected_interval_edges_for_none_and_all_present():
    assert corrected_prevalence(0, 10, ERR_LARGE)[:2] == (0.0, 0.0)
    assert corrected_prevalence(10, 10, ERR_LARGE)[0] == 1.0
    assert corrected_prevalence(10, 10, ERR_LARGE)[2] == 1.0
    assert corrected_prevalence(0, 10, ERR_LARGE)[2] > 0  # 0 of 10 does not prove absence


def test_correction_corrected_is_nan_without_usable_error_counts():
    assert all(math.isnan(v) for v in corrected_prevalence(4, 10, None))
    # Every held-out document had the theme: specificity unknown, nothing to correct with.
    assert all(math.isnan(v) for v in corrected_prevalence(4, 10, ClassifierError("t", 13, 0, 0, 0)))


def test_correction_classifier_error_rejects_negative_counts():
    with pytest.raises(ValueError, match="fp") as error:
        ClassifierError("t", 1, 1, 1, -1)
    assert error.value.code == "E606"


def test_correction_document_errors_count_documents_not_passages():
    docs = ["a", "a", "b", "c", "c"]
    labels = [["t"], [], ["t"], [], []]
    # a: tagged on its unlabelled passage -> still a true positive at document level.
    predicted = np.array([[0], [1], [0], [1], [0]])
    (err,) = document_errors(docs, labels, predicted, ["t"])
    assert (err.tp, err.fn, err.tn, err.fp) == (1, 1, 0, 1)
    with pytest.raises(ValueError, match="shape"):
        document_errors(docs, labels, np.zeros((4, 1)), ["t"])


def test_correction_bootstrap_interval_covers_the_true_prevalence_about_95_percent():
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


def test_correction_correction_is_unreliable_when_youden_is_small():
    weak = ClassifierError("t", tp=11, fn=9, tn=11, fp=9)  # 0.55 + 0.55 - 1 = 0.1
    c = corrected_share(30, 100, weak)
    assert math.isnan(c.share) and math.isnan(c.low) and math.isnan(c.high)
    assert c.note.startswith("unreliable") and c.youden == pytest.approx(0.1) and MIN_YOUDEN == 0.2
    doc_themes = pd.DataFrame({"doc_id": [f"d{i}" for i in range(10)], "theme": "t", "present": [True] * 3 + [False] * 7})
    table = prevalence(doc_themes, [weak]).iloc[0]
    assert math.isnan(table.adjusted_share) and table.adjusted_note.startswith("unreliable")
    fair = ClassifierError("t", tp=14, fn=6, tn=13, fp=7)  # 0.7 + 0.65 - 1 = 0.35
    assert not math.isnan(corrected_share(30, 100, fair).share)


def test_correction_correction_says_when_it_is_shown_at_a_bound():
    c = corrected_share(0, 50, ERR_SMALL)  # 0 observed, but the rule has a 10% false-positive rate
    assert c.share == 0.0 and "shown at 0" in c.note
