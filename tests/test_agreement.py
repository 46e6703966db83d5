"""Agreement: the one Cohen's kappa, Krippendorff's alpha, and the label store's per-pair table."""

from __future__ import annotations

import math

import pytest
from conftest import decision

from themes import agreement as A
from themes import labels as L
from themes.config import CORE_THEMES


def test_agreement_krippendorff_alpha_matches_published_and_hand_computed_values():
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", example C: 4 coders, 12 units.
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3]
    c = [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]
    units = [[v for v in unit if v is not None] for unit in zip(a, b, c, d)]
    assert A.krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)
    # By hand: units (1,1) (0,0) (1,0) (0,0): o00=4, o11=2, o01=o10=1; n0=5, n1=3, n=8;
    # alpha = 1 - (n-1) * (o01+o10) / (2 * n0 * n1) = 1 - 7 * 2 / 30 = 0.5333.
    assert A.krippendorff_alpha_nominal([[1, 1], [0, 0], [1, 0], [0, 0]]) == pytest.approx(8 / 15)
    assert A.krippendorff_alpha_nominal([[1, 1], [1]]) != A.krippendorff_alpha_nominal([[1, 1], [1]])  # NaN


def test_agreement_agreement_gives_kappa_and_alpha_per_theme(tmp_path):
    # alice: accept, reject, accept, reject; bo: accept, reject, reject, reject (and bo revised p3).
    rows = [("p1", "accept", "accept"), ("p2", "reject", "reject"), ("p3", "accept", "reject"), ("p4", "reject", "reject")]
    decisions = []
    for i, (p, a, b) in enumerate(rows):
        decisions += [decision(p, value=a, t=i), decision(p, annotator="bo", value=b, t=10 + i)]
    decisions.append(decision("p3", annotator="bo", value="accept", t=1))  # older than bo's reject: superseded
    result = A.annotator_agreement(L.to_frame(decisions))
    pair = result.pairs.iloc[0]
    # po = 3/4; pe = (2/4)(1/4) + (2/4)(3/4) = 1/2; kappa = (3/4 - 1/2) / (1/2) = 0.5
    assert (pair["n_both"], pair["percent_agreement"], pair["kappa"]) == (4, 0.75, 0.5)
    assert result.themes.iloc[0]["alpha"] == pytest.approx(8 / 15, abs=1e-4)


@pytest.mark.parametrize(("a", "b", "expected"), [
    ([1, 1, 0, 0], [1, 0, 0, 0], 0.5),                      # po 3/4, pe 1/2
    (["accept", "reject"], ["accept", "reject"], 1.0),
    ([1, 1, 1, 1], [0, 0, 0, 0], 0.0),                      # each annotator constant, never agreeing: defined, 0
])
def test_agreement_cohen_kappa_matches_hand_computed_values(a, b, expected):
    assert A.cohen_kappa(a, b) == pytest.approx(expected)


def test_agreement_cohen_kappa_is_nan_when_one_label_was_used_throughout():
    assert math.isnan(A.cohen_kappa([0, 0, 0], [0, 0, 0]))
    assert math.isnan(A.cohen_kappa(["accept"] * 3, ["accept"] * 3))


def test_agreement_both_agreements_use_the_one_kappa(monkeypatch):
    """The label store's table and the real sets' per-theme kappa both go through cohen_kappa."""
    calls = []
    monkeypatch.setattr(A, "cohen_kappa", lambda a, b: calls.append((list(a), list(b))) or 0.25)
    rows = [{"id": "1", "labels": ["optimism_bias"]}, {"id": "2", "labels": []}]
    assert A.cohen_kappa_by_theme(rows, rows, ["optimism_bias"]) == {"optimism_bias": 0.25}
    decisions = [decision("p1", t=1), decision("p1", annotator="bo", t=2)]
    assert A.annotator_agreement(L.to_frame(decisions)).pairs["kappa"].tolist() == [0.25]
    assert len(calls) == 2


def test_agreement_cohen_kappa_by_theme_on_common_ids() -> None:
    a = [
        {"id": "1", "labels": ["optimism_bias"]},
        {"id": "2", "labels": []},
        {"id": "3", "labels": ["optimism_bias"]},
        {"id": "4", "labels": []},
        {"id": "only-a", "labels": ["optimism_bias"]},
    ]
    b = [
        {"id": "1", "labels": ["optimism_bias"]},
        {"id": "2", "labels": []},
        {"id": "3", "labels": []},
        {"id": "4", "labels": []},
    ]
    kappa = A.cohen_kappa_by_theme(a, b, ["optimism_bias", "written_agreements"])
    assert kappa["optimism_bias"] == pytest.approx(0.5)
    assert math.isnan(kappa["written_agreements"])
    with pytest.raises(ValueError, match="no ids") as info:
        A.cohen_kappa_by_theme(a, [{"id": "x", "labels": []}], CORE_THEMES)
    assert info.value.code == "E514"
