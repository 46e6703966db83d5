"""Overfit-and-reload: the classifier learns a handful of examples, survives skops, batches cleanly."""

import numpy as np
import pytest

from themes.classify import ThemeClassifier, _stacked_sigmoid_models, informative_term
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


@pytest.mark.parametrize(("term", "informative"), [
    ("the", False), ("not the", False), ("would", False), ("not", False), ("should not", False),
    ("not shared", True), ("face value", True), ("cannot share", True),
])
def test_classify_explanations_leave_out_terms_of_stop_words_only(term, informative):
    assert informative_term(term) is informative


def test_classify_unlabelled_theme_leaves_the_passage_out_of_that_theme_only():
    texts = [t for t, _ in TEXTS] * 3
    y = np.array([lab for _, lab in TEXTS] * 3)
    unknown = y.copy()
    unknown[:4, 1] = -1  # the first four passages were not labelled for optimism_bias
    masked = ThemeClassifier(themes=THEMES, calibrate=False).fit(texts, unknown)
    # optimism_bias learned from the other rows alone; poor_information_sharing from all of them
    dropped = ThemeClassifier(themes=THEMES, calibrate=False).fit(texts, y)
    assert np.allclose(masked.predict_proba(texts)[:, 0], dropped.predict_proba(texts)[:, 0])
    est = masked.estimators_[1]
    assert est.n_features_in_ == masked.n_features_ and hasattr(est, "coef_")
    reference = ThemeClassifier(themes=THEMES, calibrate=False)
    reference.fit(texts, y)
    sub = reference._transform(texts)[4:]
    from sklearn.linear_model import LogisticRegression

    direct = LogisticRegression(C=8.0, class_weight="balanced", solver="liblinear", max_iter=1000)
    direct.fit(sub, y[4:, 1])
    assert np.allclose(est.coef_, direct.coef_)


def test_classify_rejects_labels_of_wrong_shape():
    with pytest.raises(ValueError, match="one column per theme"):
        ThemeClassifier(themes=THEMES).fit(["a", "b"], np.zeros((2, 3)))


def test_classify_theme_with_one_class_asks_for_examples():
    texts = ["the school was not told", "the plan was reviewed", "a strategy meeting was held"]
    y = np.zeros((3, len(THEMES)), dtype=int)
    y[:, 1] = [1, 0, 1]  # the first theme is never present
    with pytest.raises(ValueError, match=f"{THEMES[0]!r} has only one class") as error:
        ThemeClassifier(themes=THEMES, calibrate=False, use_chars=False).fit(texts, y)
    assert error.value.code == "E406"


def test_classify_needs_one_kind_of_feature():
    bare = ThemeClassifier(themes=THEMES, use_words=False, use_scope=False, use_chars=False)
    with pytest.raises(ValueError, match="at least one of use_words") as error:
        bare.fit(["a", "b"], np.array([[0, 1], [1, 0]]))
    assert error.value.code == "E407"


# -- the shipped default model tells a failing from a mention --------------------------------
# Pairs written for this test (not in the training data): the same topic, once as a failing in
# practice, once as good practice, a negation or another sense of the words.
CONTRASTS = [
    ("weak_risk_assessment",
     "The assessment was never revisited after Mr X moved into the household, and his history of violence was not considered.",
     "The assessment was revisited promptly after Mr X moved into the household and took full account of his history."),
    ("weak_risk_assessment",
     "Mother's account of the injury was accepted without any check with the hospital or the GP.",
     "Mother's account of the injury was checked with the hospital and the GP, and both confirmed it."),
    ("weak_risk_assessment",
     "No one analysed what the three earlier referrals meant for the baby's safety; each was closed on its own.",
     "The review panel met four times between March and June to consider the agency reports."),
    ("poor_information_sharing",
     "The school's concerns about the bruising were never passed on to children's social care.",
     "The school passed its concerns about the bruising to children's social care the same afternoon."),
    ("poor_information_sharing",
     "Probation knew of Mr X's conviction but the health visitor was not told, and health was not invited to the strategy discussion.",
     "A data sharing agreement between the three partners was signed in 2019 and renewed in 2022."),
    ("poor_information_sharing",
     "Nobody asked the GP what was known about Father's drinking before the case was closed.",
     "The GP, the school and the police all contributed to the strategy discussion held the next day."),
    ("optimism_bias",
     "Practitioners believed Mother when she promised that this time things would be different, and the plan was ended.",
     "Practitioners tested Mother's progress over six months, and the improvement was sustained before the plan ended."),
    ("optimism_bias",
     "Each new incident was treated as a fresh start, and the family's long history was put to one side.",
     "The family's long history was set out in full at each review and informed every decision."),
    ("optimism_bias",
     "Two good home visits were taken as evidence that the family had turned a corner, and the case was closed.",
     "Child A attended nursery three days a week and was described by staff as settled."),
    ("written_agreements",
     "A written agreement that Mr X would not stay at the flat was the only safety measure, and it was relied on to close the case.",
     "The panel was in agreement that the review should cover the two years before Child A's death."),
    ("written_agreements",
     "Mother signed a safety plan promising to keep Father away from the baby, and practitioners took this as assurance.",
     "The IDVA completed safety planning with Mother and referred her to the refuge."),
    ("written_agreements",
     "The contract of expectations with the parents was treated as protective although it had already been broken twice.",
     "No written agreement was used in this case; the child protection plan set out what agencies would do."),
]


@pytest.fixture(scope="module")
def default_model():
    from themes.registry import load_model

    return load_model().model


@pytest.fixture(scope="module")
def shipped_tfidf_model():
    """The newest shipped TF-IDF model (the reference recipe; the default may be an encoder)."""
    from themes.config import MODELS_DIR
    from themes.registry import list_versions, load_model, model_kind

    versions = [v for v in list_versions() if model_kind(MODELS_DIR / v) == "skops"]
    assert versions, "models/ should ship the TF-IDF reference model"
    return load_model(versions[-1]).model


def test_classify_stacked_scoring_equals_each_calibrated_model(shipped_tfidf_model):
    # predict_proba scores all themes' models in one product; the numbers must be scikit-learn's own.
    model = shipped_tfidf_model
    assert _stacked_sigmoid_models(model) is not None, "the shipped model should take the fast path"
    texts = [failing for _, failing, _ in CONTRASTS] + [mention for _, _, mention in CONTRASTS] + [""]
    features = model._transform(texts)
    expected = np.column_stack([est.predict_proba(features)[:, 1] for est in model.estimators_])
    np.testing.assert_allclose(model.predict_proba(texts), expected, rtol=0, atol=1e-12)


def test_classify_refit_replaces_the_stacked_models():
    texts = [t for t, _ in TEXTS] * 3
    y = np.array([lab for _, lab in TEXTS] * 3)
    model = ThemeClassifier(themes=THEMES, use_chars=False).fit(texts, y)
    before = model.predict_proba(texts[:4])
    model.fit(texts, y[:, ::-1])  # the same texts, the themes' labels swapped
    features = model._transform(texts[:4])
    expected = np.column_stack([est.predict_proba(features)[:, 1] for est in model.estimators_])
    np.testing.assert_allclose(model.predict_proba(texts[:4]), expected, rtol=0, atol=1e-12)
    assert not np.allclose(model.predict_proba(texts[:4]), before)


def test_classify_default_model_ranks_the_failing_above_the_mention(default_model):
    ordered, at_threshold = 0, 0
    for theme, failing, mention in CONTRASTS:
        j = default_model.themes_.index(theme)
        p_fail, p_mention = default_model.predict_proba([failing, mention])[:, j]
        threshold = default_model.thresholds_[j]
        ordered += p_fail > p_mention
        at_threshold += (p_fail >= threshold) and (p_mention < threshold)
    # Keyword search separates none of these pairs (both sides share the topic's words). The bars
    # are the level the shipped model reaches (9 of 12 ranked, 6 of 12 split at the threshold, on
    # 2026-11-23-d3030c00), so a regression fails here; the misses are listed in the notes, and a
    # better model should raise these bars.
    assert ordered >= 9, f"only {ordered} of {len(CONTRASTS)} pairs ranked the failing higher"
    assert at_threshold >= 6, f"only {at_threshold} of {len(CONTRASTS)} pairs split by the threshold"


def test_classify_cli_contract(tmp_path):
    import json
    import subprocess
    import sys

    lines = [json.dumps({"id": i, "text": failing, "extra": "ignored"}) for i, (_, failing, _) in enumerate(CONTRASTS[:3])]
    out = subprocess.run([sys.executable, "-m", "themes.cli", "classify", "-"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True).stdout.splitlines()
    records = [json.loads(line) for line in out]
    assert [r["id"] for r in records] == [0, 1, 2]
    from themes.config import CORE_THEMES

    for r in records:
        assert set(CORE_THEMES) <= set(r["scores"]) and all(0 <= v <= 1 for v in r["scores"].values())
        assert set(r["themes"]) <= set(r["scores"])


def test_classify_explain_many_equals_explain_one_at_a_time():
    # The run explains every tagged passage in one batch; it must say what explain says, for the
    # shipped models (the TF-IDF reference: rule features, calibrated folds; and the default) and
    # for passages with no theme.
    from themes.config import MODELS_DIR
    from themes.registry import list_versions, model_kind

    for version in [None, [v for v in list_versions() if model_kind(MODELS_DIR / v) == "skops"][-1]]:
        _explain_many_equals_explain(load_model(version).model)


def _explain_many_equals_explain(model):
    texts = [t for t, _ in TEXTS]
    themes = [list(model.themes_[i % 3 : i % 3 + 2]) if i % 4 else [] for i in range(len(texts))]
    batch = model.explain_many(texts, themes)
    assert batch == [{t: model.explain(text, t) for t in wanted} for text, wanted in zip(texts, themes)]
    assert any(terms for row in batch for terms in row.values())
