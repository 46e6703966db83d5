"""The codebook file validates, broken codebooks fail clearly, and the two rule baselines behave."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from themes import config
from themes.codebook import (
    CodebookError,
    KeywordBaseline,
    PatternBaseline,
    codebook_hash,
    load_codebook,
)

ALL_THEMES = {
    "optimism_bias",
    "weak_risk_assessment",
    "poor_information_sharing",
    "written_agreements",
    "domestic_abuse",
    "child_voice",
    "fathers_male_partners",
    "professional_challenge",
    "disguised_compliance",
    "was_not_brought",
    "neglect",
    "extrafamilial_harm",
    "parental_mental_health",
    "not_in_school",
}


@pytest.fixture(scope="module")
def codebook():
    return load_codebook()


@pytest.fixture(scope="module")
def raw_codebook() -> dict:
    return yaml.safe_load(config.CODEBOOK_PATH.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "codebook.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _theme(data: dict, theme_id: str) -> dict:
    return next(t for t in data["themes"] if t["id"] == theme_id)


# --- the shipped codebook ---------------------------------------------------------------------


def test_codebook_shipped_file_validates_with_the_fixed_themes(codebook):
    assert set(codebook.ids) == ALL_THEMES
    assert codebook.core_ids == list(config.CORE_THEMES)
    assert codebook.version
    for theme in codebook.themes:
        assert len(theme.examples_positive) >= 2 and len(theme.examples_negative) >= 2, theme.id
        assert theme.keywords and theme.patterns, theme.id
    assert codebook.get("neglect").label


def test_codebook_get_unknown_theme_names_it(codebook):
    with pytest.raises(KeyError, match="no_such_theme"):
        codebook.get("no_such_theme")


def test_codebook_hash_changes_with_the_file(tmp_path, raw_codebook):
    path = _write(tmp_path, raw_codebook)
    before = codebook_hash(path)
    assert len(before) == 64
    changed = copy.deepcopy(raw_codebook)
    changed["version"] = "9.9.9"
    assert codebook_hash(_write(tmp_path, changed)) != before


# --- broken codebooks -------------------------------------------------------------------------


def _drop_keywords(d):
    del _theme(d, "written_agreements")["keywords"]


def _duplicate_neglect(d):
    d["themes"].append(copy.deepcopy(_theme(d, "neglect")))


def _bad_pattern(d):
    _theme(d, "optimism_bias")["patterns"][0]["pattern"] = [{"LOWER": {"INN": ["value"]}}]


def _lemma_pattern(d):
    _theme(d, "child_voice")["patterns"][0]["pattern"] = [{"LEMMA": "see"}]


def _capital_lower(d):
    _theme(d, "neglect")["patterns"][0]["pattern"] = [{"LOWER": "Neglect"}]


def _one_negative_example(d):
    _theme(d, "not_in_school")["examples_negative"] = ["Only one."]


def _extra_core(d):
    _theme(d, "domestic_abuse")["core"] = True


def _boolean_keyword(d):
    _theme(d, "was_not_brought")["keywords"].append(False)  # what an unquoted `no` becomes


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_drop_keywords, [r"'written_agreements'", "missing the required field 'keywords'"]),
        (_duplicate_neglect, [r"'neglect'", "more than once"]),
        (_bad_pattern, [r"'optimism_bias'", "accepted_at_face_value", "does not compile"]),
        (_lemma_pattern, [r"'child_voice'", "LEMMA"]),
        (_capital_lower, [r"'neglect'", "capitals"]),
        (_one_negative_example, [r"'not_in_school'", "examples_negative"]),
        (_extra_core, ["domestic_abuse", "CORE_THEMES"]),
        (_boolean_keyword, [r"'was_not_brought'", "keywords"]),
    ],
    ids=[
        "missing_field",
        "duplicate_id",
        "bad_pattern",
        "lemma_on_blank",
        "capital_lower",
        "too_few_examples",
        "core_mismatch",
        "boolean_keyword",
    ],
)
def test_codebook_broken_file_error_names_theme_and_field(tmp_path, raw_codebook, mutate, expected):
    data = copy.deepcopy(raw_codebook)
    mutate(data)
    with pytest.raises(CodebookError) as info:
        load_codebook(_write(tmp_path, data))
    message = str(info.value)
    for part in expected:
        assert part in message, message
    assert message.count(". ") == 0, f"error should be one sentence: {message}"


def test_codebook_missing_file_says_which(tmp_path):
    with pytest.raises(CodebookError, match="nowhere.yaml"):
        load_codebook(tmp_path / "nowhere.yaml")


# --- baselines --------------------------------------------------------------------------------

OBVIOUS = "Practitioners were too optimistic about Mother's capacity to change."
UNRELATED = "The family moved to a two-bedroom flat near the park in May."


@pytest.mark.parametrize("cls", [KeywordBaseline, PatternBaseline])
def test_codebook_baseline_flags_obvious_keyword_not_unrelated(cls):
    model = cls()
    assert model.fit(["ignored"], None) is model
    assert model.themes_ == list(config.CORE_THEMES)
    pred = model.predict([OBVIOUS, UNRELATED])
    assert pred.shape == (2, len(config.CORE_THEMES))
    assert set(np.unique(pred)) <= {0, 1}
    assert pred[0].tolist() == [1, 0, 0, 0]
    assert pred[1].sum() == 0
    assert "too optimistic" in [t.lower() for t in model.matched_terms(OBVIOUS, "optimism_bias")]


def test_codebook_keyword_baseline_matches_whole_words_any_case():
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


def test_codebook_pattern_baseline_catches_failing_without_keyword():
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
def test_codebook_pattern_baseline_skips_mentions_keywords_flag(text, theme):
    assert KeywordBaseline(themes=[theme]).predict([text])[0, 0] == 1
    assert PatternBaseline(themes=[theme]).predict([text])[0, 0] == 0


def test_codebook_pattern_baseline_batch_equals_single(codebook):
    texts = [s for t in codebook.themes for s in t.examples_positive + t.examples_negative]
    model = PatternBaseline(themes=codebook.ids).fit()
    batch = model.predict(texts)
    single = np.vstack([model.predict([t]) for t in texts])
    assert batch.shape == (len(texts), len(codebook.ids))
    assert np.array_equal(batch, single)
    assert batch.sum() > 0


def test_codebook_pattern_baseline_equals_plain_matcher_on_long_text(codebook):
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


def test_codebook_every_theme_flags_one_of_its_own_examples(codebook):
    ids = codebook.ids
    keywords = KeywordBaseline(themes=ids).fit()
    patterns = PatternBaseline(themes=ids).fit()
    for j, theme in enumerate(codebook.themes):
        positives = list(theme.examples_positive)
        assert keywords.predict(positives)[:, j].any(), f"no keyword of {theme.id} fires"
        assert patterns.predict(positives)[:, j].any(), f"no pattern of {theme.id} fires"


def test_codebook_baseline_unknown_theme_is_named():
    with pytest.raises(KeyError, match="made_up_theme"):
        PatternBaseline(themes=["made_up_theme"]).fit()


def test_codebook_baseline_reads_a_custom_codebook(tmp_path, raw_codebook):
    data = copy.deepcopy(raw_codebook)
    _theme(data, "neglect")["keywords"] = ["marmalade"]
    path = _write(tmp_path, data)
    model = KeywordBaseline(themes=["neglect"], codebook_path=path).fit()
    assert model.predict(["Toast and marmalade.", "Chronic neglect."]).ravel().tolist() == [1, 0]
