"""The codebook file validates and broken codebooks fail clearly."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from themes import config
from themes.codebook import (
    CodebookError,
    codebook_hash,
    load_codebook,
)
from themes.errors import code_of

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
    with pytest.raises(KeyError, match="no_such_theme") as info:
        codebook.get("no_such_theme")
    assert info.value.code == "E322"
    assert str(info.value).startswith("[E322] Theme 'no_such_theme' is not in codebook")


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
    ("mutate", "code", "expected"),
    [
        (_drop_keywords, "E311", [r"'written_agreements'", "missing the required field 'keywords'"]),
        (_duplicate_neglect, "E306", [r"'neglect'", "more than once"]),
        (_bad_pattern, "E321", [r"'optimism_bias'", "accepted_at_face_value", "does not compile"]),
        (_lemma_pattern, "E320", [r"'child_voice'", "LEMMA"]),
        (_capital_lower, "E320", [r"'neglect'", "capitals"]),
        (_one_negative_example, "E308", [r"'not_in_school'", "examples_negative"]),
        (_extra_core, "E307", ["domestic_abuse", "CORE_THEMES"]),
        (_boolean_keyword, "E308", [r"'was_not_brought'", "keywords"]),
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
def test_codebook_broken_file_error_names_theme_and_field(tmp_path, raw_codebook, mutate, code, expected):
    data = copy.deepcopy(raw_codebook)
    mutate(data)
    with pytest.raises(CodebookError) as info:
        load_codebook(_write(tmp_path, data))
    message = str(info.value)
    assert code_of(message) == info.value.code == code, message
    for part in expected:
        assert part in message, message
    assert message.count(". ") == 0, f"error should be one sentence: {message}"


def test_codebook_missing_file_says_which(tmp_path):
    with pytest.raises(CodebookError, match="nowhere.yaml") as info:
        load_codebook(tmp_path / "nowhere.yaml")
    assert info.value.code == "E301" and isinstance(info.value, ValueError)
