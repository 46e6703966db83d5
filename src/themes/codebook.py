"""The codebook: theme definitions, keywords and token patterns, loaded and validated.

The codebook is a data file, ``corpus/codebook.yaml``; this module reads it into typed
:class:`Codebook` / :class:`Theme` objects and refuses a file that breaks the schema. The rule
baselines built from it live in :mod:`themes.baselines`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from themes import config
from themes.errors import Errors, ThemesError, UnknownThemeError

__all__ = [
    "Codebook",
    "CodebookError",
    "Theme",
    "ThemePattern",
    "codebook_hash",
    "load_codebook",
]

REQUIRED_FIELDS: tuple[str, ...] = (
    "id",
    "label",
    "core",
    "definition",
    "include",
    "exclude",
    "examples_positive",
    "examples_negative",
    "keywords",
    "patterns",
)
OPTIONAL_FIELDS: tuple[str, ...] = ("veto_patterns",)

#: Token attributes a ``spacy.blank("en")`` pipeline actually sets. LEMMA, POS, TAG, DEP, MORPH
#: and ENT_* would compile but never match, so they are refused rather than silently dead.
ALLOWED_TOKEN_ATTRS: frozenset[str] = frozenset(
    {
        "ORTH",
        "TEXT",
        "LOWER",
        "NORM",
        "LENGTH",
        "SHAPE",
        "PREFIX",
        "SUFFIX",
        "IS_ALPHA",
        "IS_ASCII",
        "IS_DIGIT",
        "IS_LOWER",
        "IS_UPPER",
        "IS_TITLE",
        "IS_PUNCT",
        "IS_SPACE",
        "IS_STOP",
        "IS_BRACKET",
        "IS_QUOTE",
        "IS_LEFT_PUNCT",
        "IS_RIGHT_PUNCT",
        "IS_CURRENCY",
        "LIKE_NUM",
        "LIKE_URL",
        "LIKE_EMAIL",
        "OP",
    }
)

_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class CodebookError(ThemesError, ValueError):
    """The codebook file is missing, unreadable or does not follow the codebook schema (E3xx)."""


@dataclass(frozen=True)
class ThemePattern:
    """One spaCy ``Matcher`` token pattern with its id (unique within its theme)."""

    id: str
    pattern: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Theme:
    """One theme of the codebook.

    Args:
        id: fixed snake_case id used everywhere (labels, models, outputs).
        label: human-readable name for reports.
        core: one of the four core themes of the Panel's first annual report.
        definition: what a passage must describe to be coded for the theme.
        include: criteria for coding the theme.
        exclude: what is not coded (good practice, other senses, negation, recommendation).
        examples_positive: short sentences that are coded.
        examples_negative: short sentences that mention the topic but are not coded.
        keywords: lower-case words and phrases for the naive keyword baseline.
        patterns: token patterns for the pattern baseline.
        veto_patterns: token patterns that cancel an overlapping pattern match.
    """

    id: str
    label: str
    core: bool
    definition: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    examples_positive: tuple[str, ...]
    examples_negative: tuple[str, ...]
    keywords: tuple[str, ...]
    patterns: tuple[ThemePattern, ...]
    veto_patterns: tuple[ThemePattern, ...] = ()


@dataclass(frozen=True)
class Codebook:
    """A validated codebook: a version string and the themes in file order."""

    version: str
    themes: tuple[Theme, ...]

    @property
    def ids(self) -> list[str]:
        """Every theme id, in file order."""
        return [t.id for t in self.themes]

    @property
    def core_ids(self) -> list[str]:
        """The core theme ids, in file order."""
        return [t.id for t in self.themes if t.core]

    def get(self, theme_id: str) -> Theme:
        """The theme with this id.

        Raises:
            UnknownThemeError: (a ``KeyError``, E322) when the codebook has no such theme.
        """
        for theme in self.themes:
            if theme.id == theme_id:
                return theme
        raise UnknownThemeError(
            Errors.E322.format(theme=theme_id, version=self.version, known=", ".join(self.ids))
        )


# ---------------------------------------------------------------------------------------------
# Loading and validation


@lru_cache(maxsize=1)
def _blank_nlp() -> Any:
    """A shared ``spacy.blank("en")`` (tokenizer only); spaCy is imported only when needed."""
    import spacy

    return spacy.blank("en")


def codebook_hash(path: str | Path = config.CODEBOOK_PATH) -> str:
    """The sha256 hex digest of the codebook file's bytes (recorded in model cards)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def theme_labels(path: str | Path = config.CODEBOOK_PATH) -> dict[str, str]:
    """Theme id -> label, read from the YAML without validating patterns (which imports spaCy).

    For display only, e.g. the report of a re-run whose predictions are all cached; anything that
    matches or trains uses :func:`load_codebook`.
    """
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {str(t["id"]): str(t.get("label", t["id"])) for t in data.get("themes", []) if "id" in t}


def load_codebook(path: str | Path = config.CODEBOOK_PATH) -> Codebook:
    """Load and validate the codebook YAML file.

    Checks required fields and their types, unique theme and pattern ids, that the themes marked
    ``core`` are exactly :data:`themes.config.CORE_THEMES`, and that every pattern compiles in a
    spaCy ``Matcher`` using only attributes a blank English pipeline sets.

    Raises:
        CodebookError: with one sentence naming the file, the theme and the field at fault.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise CodebookError(Errors.E301.format(path=path, reason=exc.strerror or exc)) from exc
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> Codebook:
    """Parse and validate, cached on the file's path, mtime and size."""
    del mtime_ns, size  # part of the cache key only
    where = Path(path)
    try:
        data = yaml.safe_load(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CodebookError(Errors.E302.format(path=where, detail=first.rstrip("."))) from exc
    return _parse_codebook(data, where)


def _parse_codebook(data: Any, where: Path) -> Codebook:
    """Turn the parsed YAML into a :class:`Codebook`, raising on the first problem."""
    if not isinstance(data, dict):
        raise CodebookError(Errors.E303.format(path=where))
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise CodebookError(Errors.E304.format(path=where))
    raw_themes = data.get("themes")
    if not isinstance(raw_themes, list) or not raw_themes:
        raise CodebookError(Errors.E305.format(path=where))

    themes: list[Theme] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_themes):
        theme = _parse_theme(raw, index, where)
        if theme.id in seen:
            raise CodebookError(Errors.E306.format(theme=theme.id, path=where))
        seen.add(theme.id)
        themes.append(theme)

    core = {t.id for t in themes if t.core}
    expected = set(config.CORE_THEMES)
    if core != expected:
        missing = sorted(expected - core)
        extra = sorted(core - expected)
        parts = []
        if missing:
            parts.append(f"missing or not marked core: {', '.join(missing)}")
        if extra:
            parts.append(f"marked core but not in config.CORE_THEMES: {', '.join(extra)}")
        raise CodebookError(Errors.E307.format(path=where, detail="; ".join(parts)))

    _compile_check(themes, where)
    return Codebook(version=version.strip(), themes=tuple(themes))


def _str_list(raw: dict, field: str, tid: str, where: Path, min_len: int = 1) -> tuple[str, ...]:
    """A field that must be a list of at least ``min_len`` non-empty strings."""
    value = raw[field]
    if (
        not isinstance(value, list)
        or len(value) < min_len
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise CodebookError(Errors.E308.format(theme=tid, path=where, field=field, min_len=min_len))
    return tuple(v.strip() for v in value)


def _parse_theme(raw: Any, index: int, where: Path) -> Theme:
    """One theme entry, validated field by field."""
    if not isinstance(raw, dict):
        raise CodebookError(Errors.E309.format(number=index + 1, path=where))
    tid = raw.get("id")
    if not isinstance(tid, str) or not _ID_RE.match(tid):
        raise CodebookError(Errors.E310.format(number=index + 1, path=where, value=tid))
    for field in REQUIRED_FIELDS:
        if field not in raw:
            raise CodebookError(Errors.E311.format(theme=tid, path=where, field=field))
    unknown = sorted(set(raw) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise CodebookError(
            Errors.E312.format(theme=tid, path=where, unknown=", ".join(unknown),
                               allowed=", ".join(REQUIRED_FIELDS + OPTIONAL_FIELDS))
        )
    for field in ("label", "definition"):
        if not isinstance(raw[field], str) or not raw[field].strip():
            raise CodebookError(Errors.E313.format(theme=tid, path=where, field=field))
    if not isinstance(raw["core"], bool):
        raise CodebookError(Errors.E314.format(theme=tid, path=where))
    keywords = _str_list(raw, "keywords", tid, where)
    bad = [k for k in keywords if k != k.lower()]
    if bad:
        raise CodebookError(Errors.E315.format(theme=tid, path=where, value=bad[0]))
    return Theme(
        id=tid,
        label=raw["label"].strip(),
        core=raw["core"],
        definition=" ".join(raw["definition"].split()),
        include=_str_list(raw, "include", tid, where),
        exclude=_str_list(raw, "exclude", tid, where),
        examples_positive=_str_list(raw, "examples_positive", tid, where, min_len=2),
        examples_negative=_str_list(raw, "examples_negative", tid, where, min_len=2),
        keywords=keywords,
        patterns=_parse_patterns(raw["patterns"], "patterns", tid, where, required=True),
        veto_patterns=_parse_patterns(
            raw.get("veto_patterns") or [], "veto_patterns", tid, where, required=False
        ),
    )


def _parse_patterns(
    value: Any, field: str, tid: str, where: Path, *, required: bool
) -> tuple[ThemePattern, ...]:
    """A list of ``{id, pattern}`` entries; checks shape, ids and attributes (not compilation)."""
    if not isinstance(value, list) or (required and not value):
        raise CodebookError(
            Errors.E316.format(theme=tid, path=where, field=field,
                               non_empty="non-empty " if required else "")
        )
    out: list[ThemePattern] = []
    seen: set[str] = set()
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"id", "pattern"}:
            raise CodebookError(Errors.E317.format(theme=tid, path=where, field=field, number=i + 1))
        pid, pattern = entry["id"], entry["pattern"]
        if not isinstance(pid, str) or not _ID_RE.match(pid) or pid in seen:
            raise CodebookError(
                Errors.E318.format(theme=tid, path=where, field=field, number=i + 1, value=pid)
            )
        seen.add(pid)
        if (
            not isinstance(pattern, list)
            or not pattern
            or not all(isinstance(tok, dict) for tok in pattern)
        ):
            raise CodebookError(Errors.E319.format(theme=tid, path=where, pattern=pid, field=field))
        for tok in pattern:
            problem = _token_problem(tok)
            if problem:
                raise CodebookError(
                    Errors.E320.format(theme=tid, path=where, pattern=pid, field=field, problem=problem)
                )
        out.append(ThemePattern(id=pid, pattern=tuple(pattern)))
    return tuple(out)


def _token_problem(tok: dict) -> str | None:
    """Why a token spec cannot work on a blank pipeline, or ``None`` when it can."""
    for key, value in tok.items():
        if not isinstance(key, str) or key.upper() not in ALLOWED_TOKEN_ATTRS:
            return (
                f"uses attribute {key!r}, which spacy.blank('en') does not set or spaCy does not "
                "know; use LOWER or ORTH with an IN list"
            )
        if key.upper() == "LOWER":
            values = value.get("IN", []) if isinstance(value, dict) else [value]
            if isinstance(values, list):
                upper = [v for v in values if isinstance(v, str) and v != v.lower()]
                if upper:
                    return f"has LOWER value {upper[0]!r} with capitals, which can never match"
    return None


def _compile_check(themes: Sequence[Theme], where: Path) -> None:
    """Add every pattern to a validating Matcher so schema errors surface at load time."""
    from spacy.errors import MatchPatternError
    from spacy.matcher import Matcher

    matcher = Matcher(_blank_nlp().vocab, validate=True)
    for theme in themes:
        for field, patterns in (
            ("patterns", theme.patterns),
            ("veto_patterns", theme.veto_patterns),
        ):
            for p in patterns:
                try:
                    matcher.add(f"{theme.id}::{p.id}", [list(p.pattern)])
                except (MatchPatternError, ValueError, TypeError, KeyError) as exc:
                    detail = (
                        " ".join(
                            line.strip("- ").strip()
                            for line in str(exc).splitlines()
                            if line.strip().startswith("-") or "[E" in line
                        )
                        or type(exc).__name__
                    )
                    raise CodebookError(
                        Errors.E321.format(theme=theme.id, path=where, pattern=p.id, field=field,
                                           detail=detail)
                    ) from exc
