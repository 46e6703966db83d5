"""The two rule baselines: keywords and token patterns from the codebook, fit/predict shaped."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from themes import config
from themes.baselines import KeywordBaseline, PatternBaseline
from themes.codebook import load_codebook


@pytest.fixture(scope="module")
def codebook():
    return load_codebook()


OBVIOUS = "Practitioners were too optimistic about Mother's capacity to change."
UNRELATED = "The family moved to a two-bedroom flat near the park in May."


@pytest.mark.parametrize("cls", [KeywordBaseline, PatternBaseline])
def test_baselines_baseline_flags_obvious_keyword_not_unrelated(cls):
    model = cls()
    assert model.fit(["ignored"], None) is model
    assert model.themes_ == list(config.CORE_THEMES)
    pred = model.predict([OBVIOUS, UNRELATED])
    assert pred.shape == (2, len(config.CORE_THEMES))
    assert set(np.unique(pred)) <= {0, 1}
    assert pred[0].tolist() == [1, 0, 0, 0]
    assert pred[1].sum() == 0
    assert "too optimistic" in [t.lower() for t in model.matched_terms(OBVIOUS, "optimism_bias")]


def test_baselines_keyword_baseline_matches_whole_words_any_case():
    model = KeywordBaseline(themes=["domestic_abuse", "weak_risk_assessment"]).fit()
    pred = model.predict(
        [
            "A DASH risk form was completed.",
            "The dashboard showed the figures.",
            "Decision\nmaking was poor.",
        ]
    )
    assert pred[:, 0].tolist() == [1, 0, 0]
    assert pred[2, 1] == 1  # "decision-making" keyword, across a line break, without the hyphen


def test_baselines_pattern_baseline_catches_failing_without_keyword():
    text = "The school was never told that police had been called to the house twice."
    keywords = KeywordBaseline(themes=["poor_information_sharing"]).fit()
    patterns = PatternBaseline(themes=["poor_information_sharing"]).fit()
    assert keywords.predict([text])[0, 0] == 0
    assert patterns.predict([text])[0, 0] == 1
    assert patterns.matched_terms(text, "poor_information_sharing") == ["never told"]


@pytest.mark.parametrize(
    ("text", "theme"),
    [
        (
            "The panel was in agreement with the findings and with the decision to publish.",
            "written_agreements",
        ),
        (
            "Practitioners did not accept her explanation at face value and arranged a medical.",
            "optimism_bias",
        ),
        (
            "The IDVA completed a safety plan with Mother, including a refuge place.",
            "written_agreements",
        ),
    ],
    ids=["other_sense", "negation", "victim_safety_plan"],
)
def test_baselines_pattern_baseline_skips_mentions_keywords_flag(text, theme):
    assert KeywordBaseline(themes=[theme]).predict([text])[0, 0] == 1
    assert PatternBaseline(themes=[theme]).predict([text])[0, 0] == 0


def test_baselines_pattern_baseline_batch_equals_single(codebook):
    texts = [s for t in codebook.themes for s in t.examples_positive + t.examples_negative]
    model = PatternBaseline(themes=codebook.ids).fit()
    batch = model.predict(texts)
    single = np.vstack([model.predict([t]) for t in texts])
    assert batch.shape == (len(texts), len(codebook.ids))
    assert np.array_equal(batch, single)
    assert batch.sum() > 0


def test_baselines_pattern_baseline_equals_plain_matcher_on_long_text(codebook):
    """The anchor-and-window speed-up must find exactly what one plain spaCy Matcher finds."""
    from spacy.matcher import Matcher

    from themes.codebook import _blank_nlp

    nlp = _blank_nlp()
    sentences = [s for t in codebook.themes for s in t.examples_positive + t.examples_negative]
    texts = sentences + [" ".join(sentences[i : i + 9]) for i in range(0, len(sentences), 9)]
    model = PatternBaseline(themes=codebook.ids).fit()
    plain, veto = Matcher(nlp.vocab), Matcher(nlp.vocab)
    for theme in codebook.themes:
        for p in theme.patterns:
            plain.add(theme.id, [list(p.pattern)])
        for p in theme.veto_patterns:
            veto.add(theme.id, [list(p.pattern)])
    expected = np.zeros((len(texts), len(codebook.ids)), dtype=int)
    for i, doc in enumerate(nlp.pipe(texts)):
        vetoes = [(nlp.vocab.strings[k], s, e) for k, s, e in veto(doc)]
        for key, s, e in plain(doc):
            theme = nlp.vocab.strings[key]
            if not any(t == theme and vs < e and s < ve for t, vs, ve in vetoes):
                expected[i, codebook.ids.index(theme)] = 1
    assert np.array_equal(model.predict(texts), expected)


def test_baselines_every_theme_flags_one_of_its_own_examples(codebook):
    ids = codebook.ids
    keywords = KeywordBaseline(themes=ids).fit()
    patterns = PatternBaseline(themes=ids).fit()
    for j, theme in enumerate(codebook.themes):
        positives = list(theme.examples_positive)
        assert keywords.predict(positives)[:, j].any(), f"no keyword of {theme.id} fires"
        assert patterns.predict(positives)[:, j].any(), f"no pattern of {theme.id} fires"


def test_baselines_baseline_unknown_theme_is_named():
    with pytest.raises(KeyError, match="made_up_theme") as info:
        PatternBaseline(themes=["made_up_theme"]).fit()
    assert info.value.code == "E322"


def test_baselines_set_params_refuses_an_unknown_parameter_with_its_code():
    with pytest.raises(ValueError, match="'colour'.*themes, codebook_path") as info:
        PatternBaseline().set_params(colour="red")
    assert info.value.code == "E013"


def test_baselines_matched_terms_of_a_theme_not_modelled_is_e323():
    with pytest.raises(KeyError, match="'neglect' is not one of this baseline's themes") as info:
        KeywordBaseline(themes=["optimism_bias"]).matched_terms("Some text.", "neglect")
    assert info.value.code == "E323"


def test_baselines_baseline_reads_a_custom_codebook(tmp_path):
    data = yaml.safe_load(config.CODEBOOK_PATH.read_text(encoding="utf-8"))
    next(t for t in data["themes"] if t["id"] == "neglect")["keywords"] = ["marmalade"]
    path = tmp_path / "codebook.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    model = KeywordBaseline(themes=["neglect"], codebook_path=path).fit()
    assert model.predict(["Toast and marmalade.", "Chronic neglect."]).ravel().tolist() == [1, 0]
