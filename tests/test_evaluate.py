"""Passage-level evaluation: per-theme scores, thresholds chosen on out-of-fold scores, baselines beside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from themes.evaluate import (
    baselines_on,
    best_thresholds,
    comparison_table,
    known_label_matrix,
    label_matrix,
    score,
)


def test_evaluate_label_matrix_marks_unlabelled_themes_of_real_sentences():
    labels = [["optimism_bias"], [], ["optimism_bias", "neglect"]]
    themes = ["optimism_bias", "neglect"]
    assert label_matrix(labels, themes).tolist() == [[1, 0], [0, 0], [1, 1]]
    # A real sentence (second flag True) was labelled for the core themes only: "neglect" is unknown.
    assert known_label_matrix(labels, [False, True, False], themes).tolist() == [[1, 0], [0, -1], [1, 1]]


def test_evaluate_best_threshold_is_the_middle_of_the_best_f1_plateau():
    y = np.array([[1], [1], [0], [0]])
    proba = np.array([[0.9], [0.8], [0.3], [0.1]])
    # Every threshold in (0.3, 0.8] separates the classes perfectly; the middle one is chosen.
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3)
    perfect = grid[(grid > 0.3) & (grid <= 0.8)]
    assert best_thresholds(y, proba)[0] == pytest.approx(perfect[len(perfect) // 2])


def test_evaluate_best_threshold_leaves_out_rows_not_labelled_for_the_theme():
    y = np.array([[1], [0], [-1], [-1]])
    proba = np.array([[0.9], [0.2], [0.95], [0.96]])
    with_unknown = best_thresholds(y, proba)
    assert with_unknown[0] == pytest.approx(best_thresholds(y[:2], proba[:2])[0])


def test_evaluate_score_counts_hard_negatives_tagged_with_any_core_theme():
    themes = ["optimism_bias", "weak_risk_assessment"]
    y = np.array([[1, 0], [0, 0], [0, 0], [0, 1]])
    pred = np.array([[1, 0], [0, 1], [0, 0], [0, 1]])
    s = score("m", "heldout", y, pred, themes, ["positive", "hard_negative", "hard_negative", "positive"])
    assert s.hard_negative_fpr == 0.5
    assert s.macro_f1_core == pytest.approx((1.0 + 2 / 3) / 2)
    row = comparison_table([s]).iloc[0]
    assert (row["system"], row["split"], row["n"]) == ("m", "heldout", 4)


def test_evaluate_baselines_sit_beside_every_split():
    frame = pd.DataFrame({"text": ["The plan was accepted at face value.", "Nothing of note.", "Risk was not assessed."],
                          "labels": [["optimism_bias"], [], ["weak_risk_assessment"]],
                          "kind": ["positive", "other_negative", "positive"]})
    rows = baselines_on(frame, ["optimism_bias", "weak_risk_assessment"], "heldout")
    assert [r.system for r in rows] == ["keywords", "seed patterns"]
    assert all(r.split == "heldout" and r.n_passages == 3 for r in rows)
