"""Tests for themes.errors: stable codes, one sentence each, every code used, placeholders fill."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from themes.errors import ArgumentError, Errors, code_of, error_line, one_sentence

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "themes"
#: Where codes are used: the package and the Prefect flows (the E7xx codes).
USERS = (SRC, ROOT / "flows")
ERRORS_PY = SRC / "errors.py"


def _catalogue() -> dict[str, str]:
    """Code -> raw message, read from the class body (so duplicates and order are visible)."""
    tree = ast.parse(ERRORS_PY.read_text())
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Errors").body
    return {
        n.targets[0].id: ast.literal_eval(n.value)
        for n in body
        if isinstance(n, ast.Assign) and re.fullmatch(r"[EW]\d{3}", n.targets[0].id)
    }


def _codes_in_class_body() -> list[str]:
    tree = ast.parse(ERRORS_PY.read_text())
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Errors").body
    return [t.id for n in body if isinstance(n, ast.Assign) for t in n.targets]


CATALOGUE = _catalogue()


def _filled(message: str) -> str:
    """``message`` with every placeholder filled by a value every format spec accepts."""
    fields = {f for _, f, _, _ in string.Formatter().parse(message) if f}
    return message.format(**dict.fromkeys(fields, 1.5))


def test_errors_codes_are_unique_and_in_a_reserved_range() -> None:
    codes = _codes_in_class_body()
    assert codes, "the catalogue is empty"
    assert len(codes) == len(set(codes)), [c for c in codes if codes.count(c) > 1]
    for code in codes:
        assert re.fullmatch(r"E[0-7]\d\d", code), f"{code} is outside the reserved ranges E000-E799"


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_errors_message_is_one_sentence_ending_in_a_full_stop(code: str) -> None:
    text = _filled(CATALOGUE[code])
    assert "\n" not in text
    assert text.endswith("."), code
    assert not text.endswith(".."), code
    # A second sentence would start after a full stop, question or exclamation mark.
    assert not re.search(r"[.!?]\s+[A-Z]", text), code


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_errors_placeholders_fill_and_the_code_leads(code: str) -> None:
    message = getattr(Errors, code)
    assert message == f"[{code}] {CATALOGUE[code]}"
    filled = _filled(message)
    assert "{" not in filled and "}" not in filled
    assert code_of(filled) == code


def test_errors_every_code_is_used_in_src() -> None:
    used: set[str] = set()
    for path in (p for folder in USERS for p in folder.rglob("*.py")):
        if path == ERRORS_PY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "Errors"
            ):
                used.add(node.attr)
    assert used <= set(CATALOGUE), f"used but not defined: {sorted(used - set(CATALOGUE))}"
    assert set(CATALOGUE) <= used, f"defined but never used: {sorted(set(CATALOGUE) - used)}"


def test_errors_unknown_code_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        Errors.E999  # noqa: B018


@pytest.mark.parametrize(
    ("message", "code"),
    [("[E105] a.pdf is encrypted; needs a password.", "E105"), ("a.pdf is encrypted.", None),
     (None, None)],
)  # fmt: skip
def test_errors_code_of(message: str | None, code: str | None) -> None:
    assert code_of(message) == code


def test_errors_one_sentence_collapses_and_cuts_a_library_message() -> None:
    assert one_sentence("bad\n  xref table.") == "bad xref table"
    assert one_sentence(KeyError("Font")) == "'Font'"
    cut = one_sentence("x" * 500, limit=50)
    assert len(cut) == 50 and cut.endswith("…")


def test_errors_error_line_shows_the_code_in_front_on_one_line() -> None:
    coded = ArgumentError(Errors.E702)
    assert error_line(coded) == "error[E702]: Dask reading runs inside the Prefect flow: drop --no-prefect."
    assert error_line(ValueError("plain\n  words")) == "error: plain words"
