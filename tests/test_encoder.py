"""OnnxThemeClassifier: the ThemeClassifier contract from an ONNX folder, on a toy model built in a fixture.

Needs onnx, onnxruntime and tokenizers (the ``train`` extra); skips cleanly without them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from themes.encoder import HEAD_FILE, OnnxThemeClassifier

TEXTS = [
    "The risk assessment was a risk assessment",
    "A written agreement was signed",
    "The baby was",
    "The written risk assessment was signed the agreement",
]
EXPECTED = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])


def test_encoder_predicts_themes_over_thresholds(toy_onnx_model):
    """Passages tag the themes their words point at, columns in the order of ``themes_``."""
    clf = OnnxThemeClassifier.load(toy_onnx_model)
    assert clf.themes_ == ["weak_risk_assessment", "written_agreements"]
    np.testing.assert_array_equal(clf.thresholds_, [0.5, 0.5])
    proba = clf.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 2) and ((proba > 0) & (proba < 1)).all()
    np.testing.assert_array_equal(clf.predict(TEXTS), EXPECTED)
    assert clf.predict_proba([]).shape == (0, 2)


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_encoder_threads_return_rows_in_input_order(toy_onnx_model, threads):
    """Scoring on several threads returns rows in input order, equal to one passage at a time."""
    clf = OnnxThemeClassifier.load(toy_onnx_model, threads=threads)
    together = clf.predict_proba(TEXTS)
    single = np.vstack([clf.predict_proba([t]) for t in TEXTS])
    np.testing.assert_array_equal(together, single)


def test_shipped_default_scores_a_passage_the_same_whatever_it_is_scored_with():
    """The shipped int8 encoder gives a passage the same score alone and inside a corpus of other
    passages: a document's tags must not depend on which documents share its run (in padded
    batches they did, by up to 0.26)."""
    from themes.registry import load_model, model_kind, resolve

    folder = resolve(None)
    if model_kind(folder) != "onnx":
        pytest.skip("the default model is not an ONNX encoder")
    model = load_model(folder).model
    passages = [
        "The social worker accepted the mother's account that the partner had left and closed the case.",
        "Agencies did not share what they knew about the father's history of violence.",
        "Contents",
        "The plan relied on a written agreement that the mother would not let the partner into the home, "
        "and no one checked whether it was kept, although the health visitor and the school had both seen "
        "him there and each assumed that children's social care already knew.",
        "Risk was not reassessed when the family moved.",
    ]
    alone = np.vstack([model.predict_proba([p]) for p in passages])
    together = model.predict_proba(passages * 3)[: len(passages)]
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)


def test_encoder_missing_file_names_it(toy_onnx_model):
    """A folder without its head says which file is missing."""
    (toy_onnx_model / HEAD_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="head.json") as error:
        OnnxThemeClassifier.load(toy_onnx_model)
    assert error.value.code == "E409"


def test_encoder_head_shape_mismatch_is_refused(toy_onnx_model):
    """A head whose thresholds do not match its themes is refused with the field named."""
    path = toy_onnx_model / HEAD_FILE
    head = json.loads(path.read_text())
    head["thresholds"] = [0.5]
    path.write_text(json.dumps(head))
    with pytest.raises(ValueError, match="thresholds") as error:
        OnnxThemeClassifier.load(toy_onnx_model)
    assert error.value.code == "E411"


def test_encoder_rule_weights_lift_a_theme_its_codebook_keyword_names(toy_onnx_model):
    """A head with rule weights adds the codebook's keyword hit inside the sigmoid: a passage the
    encoder alone leaves untagged is tagged when it holds the theme's keyword, and only then."""
    path = toy_onnx_model / HEAD_FILE
    head = json.loads(path.read_text())
    plain = OnnxThemeClassifier.load(toy_onnx_model)
    text = "The baby was a baby was a baby was on a written agreement"  # 2 of 12 words: below 0.5
    assert plain.predict([text])[0, 1] == 0
    head["rule_weights"] = [[0.0, 0.0], [3.0, 0.0]]  # keyword hit of written_agreements: +3 on its logit
    path.write_text(json.dumps(head))
    ruled = OnnxThemeClassifier.load(toy_onnx_model)
    assert ruled.predict([text])[0, 1] == 1
    assert ruled.predict(["The baby was"])[0, 1] == 0  # no keyword: the same as without rules
    assert ruled.explain(text, "written_agreements") == ["written agreement"]


def test_encoder_rule_weights_of_wrong_shape_are_refused(toy_onnx_model):
    path = toy_onnx_model / HEAD_FILE
    head = json.loads(path.read_text())
    head["rule_weights"] = [[1.0, 0.0]]
    path.write_text(json.dumps(head))
    with pytest.raises(ValueError, match="rule_weights") as error:
        OnnxThemeClassifier.load(toy_onnx_model)
    assert error.value.code == "E411"
