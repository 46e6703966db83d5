"""Overfit-and-reload: the classifier learns a handful of examples, survives skops, batches cleanly."""

import numpy as np
import pytest

from themes.classify import ThemeClassifier, scope_tokens
from themes.registry import load_model, save_model, set_default

THEMES = ["poor_information_sharing", "optimism_bias"]
TEXTS = [
    ("The school's concerns were never passed to children's social care.", [1, 0]),
    ("Police did not tell the health visitor about the domestic incident.", [1, 0]),
    ("Nobody asked the GP what was known about the father.", [1, 0]),
    ("The referral was not sent to the MASH.", [1, 0]),
    ("The worker believed the mother when she promised things would change.", [0, 1]),
    ("Two good visits were taken as proof that the family had turned a corner.", [0, 1]),
    ("Staff hoped the new baby would be a fresh start for the couple.", [0, 1]),
    ("Each new incident was treated as a one-off and the case was closed.", [0, 1]),
    ("The family moved to a new flat in the spring.", [0, 0]),
    ("Child A attended nursery three days a week.", [0, 0]),
    ("The review was commissioned by the partnership in May.", [0, 0]),
    ("Mother has two older children who live with their grandmother.", [0, 0]),
]


@pytest.fixture(scope="module")
def fitted():
    texts = [t for t, _ in TEXTS] * 3
    y = np.array([lab for _, lab in TEXTS] * 3)
    return ThemeClassifier(themes=THEMES, calibrate=False, C=50.0).fit(texts, y), texts, y


def test_classify_overfits_a_handful(fitted):
    model, texts, y = fitted
    assert (model.predict(texts) == y).all()


def test_classify_save_load_same_predictions(fitted, tmp_path):
    model, texts, _ = fitted
    save_model(model, {"note": "test"}, "v-test", tmp_path)
    set_default("v-test", tmp_path)
    loaded = load_model(None, tmp_path)
    assert loaded.version == "v-test"
    assert np.allclose(loaded.model.predict_proba(texts), model.predict_proba(texts))
    assert (tmp_path / "v-test" / "card.md").read_text().startswith("# Model card: v-test")


def test_classify_batch_equals_single(fitted):
    model, texts, _ = fitted
    batch = model.predict_proba(texts[:6])
    single = np.vstack([model.predict_proba([t]) for t in texts[:6]])
    assert np.allclose(batch, single)


def test_classify_explain_names_the_driving_words(fitted):
    model, _, _ = fitted
    terms = model.explain("The concerns were never passed to social care.", "poor_information_sharing")
    assert terms and any("passed" in t or "never" in t for t in terms)


def test_classify_scope_marks_negated_words():
    tokens = scope_tokens("The assessment was not updated, but the plan was reviewed.")
    assert "neg_updated" in tokens and "reviewed" in tokens and "neg_reviewed" not in tokens
    assert "hyp_share" in scope_tokens("Agencies should share information.")


def test_classify_rejects_labels_of_wrong_shape():
    with pytest.raises(ValueError, match="one column per theme"):
        ThemeClassifier(themes=THEMES).fit(["a", "b"], np.zeros((2, 3)))
