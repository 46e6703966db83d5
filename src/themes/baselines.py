"""The two rule baselines built from the codebook, with scikit-learn's fit/predict shape.

- :class:`KeywordBaseline` flags a theme when any of its keywords occurs as a whole word or phrase.
  It is the naive search the project exists to beat: it cannot tell a failing from a mention.
- :class:`PatternBaseline` flags a theme when one of its spaCy ``Matcher`` token patterns matches
  (and no veto pattern overlaps the match). Patterns describe the failing ("was not passed on",
  "accepted ... at face value"), so they are more specific, but still blind to context.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from themes import config
from themes.codebook import Codebook, _blank_nlp, load_codebook
from themes.errors import ArgumentError, Errors, UnknownThemeError

__all__ = ["KeywordBaseline", "PatternBaseline"]


def _resolve_themes(codebook: Codebook, themes: Sequence[str] | None) -> list[str]:
    """The theme ids a baseline models; ``None`` means the core themes."""
    if themes is None:
        return list(codebook.core_ids)
    chosen = [themes] if isinstance(themes, str) else list(themes)
    for tid in chosen:
        codebook.get(tid)  # raises E322, a KeyError naming the unknown theme
    return chosen


def _keyword_regex(keywords: Iterable[str], ignore_case: bool = True) -> re.Pattern[str]:
    """One regex matching any keyword as a whole word or phrase.

    Spaces in a phrase match any run of whitespace (line breaks inside a passage), and a hyphen
    also matches a space or nothing, so "decision-making" finds "decision making". Without
    ``ignore_case`` the regex expects lower-cased text, which is about twice as fast.
    """
    parts = []
    for kw in sorted(set(keywords), key=len, reverse=True):
        escaped = [re.escape(w).replace(r"\-", r"[-\s]?") for w in kw.split()]
        parts.append(r"\s+".join(escaped))
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", flags)


class _RuleBaseline:
    """Shared estimator plumbing: themes parameter, no-op fit, 0/1 predict."""

    def __init__(
        self, themes: Sequence[str] | None = None, codebook_path: str | Path | None = None
    ) -> None:
        self.themes = themes
        self.codebook_path = codebook_path

    def _codebook(self) -> Codebook:
        return load_codebook(self.codebook_path or config.CODEBOOK_PATH)

    def fit(self, X: Any = None, y: Any = None) -> _RuleBaseline:
        """Nothing is learned; resolves ``themes_`` and builds the matchers. Returns ``self``."""
        codebook = self._codebook()
        self.codebook_version_ = codebook.version
        self.themes_ = _resolve_themes(codebook, self.themes)
        self._build(codebook)
        return self

    def _ensure_fitted(self) -> None:
        if not hasattr(self, "themes_"):
            self.fit()

    def _build(self, codebook: Codebook) -> None:
        raise NotImplementedError

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as scikit-learn expects."""
        return {"themes": self.themes, "codebook_path": self.codebook_path}

    def set_params(self, **params: Any) -> _RuleBaseline:
        """Set constructor parameters, as scikit-learn expects; forgets the fitted state."""
        for key, value in params.items():
            if key not in self.get_params():
                raise ArgumentError(Errors.E013.format(name=type(self).__name__, key=key,
                                                      allowed=", ".join(self.get_params())))
            setattr(self, key, value)
        if hasattr(self, "themes_"):
            del self.themes_
        return self

    def _check_theme(self, theme: str) -> None:
        self._ensure_fitted()
        if theme not in self.themes_:
            raise UnknownThemeError(Errors.E323.format(theme=theme, known=", ".join(self.themes_)))


class KeywordBaseline(_RuleBaseline):
    """Flags a theme when any of its codebook keywords occurs (whole word or phrase, any case).

    Args:
        themes: theme ids, in column order; ``None`` means the core themes.
        codebook_path: codebook file; ``None`` means :data:`themes.config.CODEBOOK_PATH`.
    """

    def _build(self, codebook: Codebook) -> None:
        keywords = {t: codebook.get(t).keywords for t in self.themes_}
        self._regexes = {t: _keyword_regex(kw) for t, kw in keywords.items()}
        self._lower_regexes = [_keyword_regex(keywords[t], ignore_case=False) for t in self.themes_]

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """0/1 array of shape (n_texts, n_themes), columns in ``themes_`` order."""
        self._ensure_fitted()
        texts = list(texts)
        out = np.zeros((len(texts), len(self.themes_)), dtype=int)
        for i, text in enumerate(texts):
            lowered = text.lower()
            for j, regex in enumerate(self._lower_regexes):
                if regex.search(lowered):
                    out[i, j] = 1
        return out

    def matched_terms(self, text: str, theme: str) -> list[str]:
        """The keywords of ``theme`` found in ``text``, as written in the text, first-seen order."""
        self._check_theme(theme)
        found: list[str] = []
        for m in self._regexes[theme].finditer(text):
            term = " ".join(m.group(0).split())
            if term.lower() not in (f.lower() for f in found):
                found.append(term)
        return found


_BOUNDED_OP = re.compile(r"^\{(\d*),?(\d*)\}$")


def _token_reach(tok: Mapping[str, Any]) -> int | None:
    """Most tokens one pattern token can consume; ``None`` when unbounded (``*``, ``+``, ``{n,}``)."""
    op = tok.get("OP")
    if op is None or op in ("?", "!"):
        return 1
    m = _BOUNDED_OP.match(str(op))
    if m:
        low, high = m.group(1), m.group(2)
        if "," not in str(op):
            return int(low or 0)
        return int(high) if high else None
    return None


def _token_words(tok: Mapping[str, Any]) -> frozenset[str] | None:
    """Lower-case words one of which a required token must be, or ``None`` when unconstrained."""
    op = tok.get("OP")
    if op in ("?", "*", "!"):
        return None
    if op is not None:
        m = _BOUNDED_OP.match(str(op))
        if m and not int(m.group(1) or 0):
            return None
    for attr in ("LOWER", "ORTH", "TEXT"):
        value = tok.get(attr, tok.get(attr.lower()))
        if isinstance(value, str):
            return frozenset({value.lower()})
        if isinstance(value, dict) and isinstance(value.get("IN"), list):
            return frozenset(str(v).lower() for v in value["IN"])
    return None


@dataclass
class _Rule:
    """One compiled pattern: its own Matcher plus what a text must contain for it to match."""

    theme: str
    pattern_id: str
    veto: bool
    matcher: Any
    required: tuple[frozenset[str], ...]
    anchor: frozenset[str] | None
    reach: int | None


class PatternBaseline(_RuleBaseline):
    """Flags a theme when one of its codebook token patterns matches and no veto overlaps it.

    Runs ``spacy.blank("en")`` (tokenizer only, texts tokenized in batches with ``nlp.pipe``).
    spaCy's ``Matcher`` tries every pattern at every token, and ``IN`` lists are evaluated in
    Python, which made one shared matcher run at about 200 passages/s. So each pattern gets its
    own ``Matcher`` and runs only on texts holding all its required words, and then only on a
    window around each occurrence of its rarest word; the matches are the same.

    Args:
        themes: theme ids, in column order; ``None`` means the core themes.
        codebook_path: codebook file; ``None`` means :data:`themes.config.CODEBOOK_PATH`.
    """

    def _build(self, codebook: Codebook) -> None:
        from spacy.matcher import Matcher

        vocab = _blank_nlp().vocab
        self._rules: list[_Rule] = []
        for theme_id in self.themes_:
            theme = codebook.get(theme_id)
            for veto, patterns in ((False, theme.patterns), (True, theme.veto_patterns)):
                for p in patterns:
                    matcher = Matcher(vocab)
                    matcher.add(f"{theme_id}::{p.id}", [list(p.pattern)])
                    required = tuple(w for w in map(_token_words, p.pattern) if w is not None)
                    reaches = [_token_reach(tok) for tok in p.pattern]
                    self._rules.append(
                        _Rule(
                            theme=theme_id,
                            pattern_id=p.id,
                            veto=veto,
                            matcher=matcher,
                            required=required,
                            anchor=min(required, key=len) if required else None,
                            reach=None if None in reaches else sum(r or 0 for r in reaches),
                        )
                    )
        self._index: dict[str, list[int]] = {}
        self._unanchored: list[int] = []
        for i, rule in enumerate(self._rules):
            if rule.anchor is None:
                self._unanchored.append(i)
            for word in rule.anchor or ():
                self._index.setdefault(word, []).append(i)

    def _run(self, rule: _Rule, doc: Any, positions: dict[str, list[int]]) -> set[tuple[int, int]]:
        """(start, end) token spans where one rule matches in ``doc``."""
        n = len(doc)
        if rule.anchor is None or rule.reach is None:
            windows = [(0, n)]
        else:
            starts = sorted(p for w in rule.anchor for p in positions.get(w, ()))
            windows = []
            for p in starts:
                a, b = max(0, p - rule.reach + 1), min(n, p + rule.reach)
                if windows and a <= windows[-1][1]:
                    windows[-1] = (windows[-1][0], max(windows[-1][1], b))
                else:
                    windows.append((a, b))
        found: set[tuple[int, int]] = set()
        for a, b in windows:
            for _key, s, e in rule.matcher(doc[a:b]):
                found.add((s + a, e + a))
        return found

    def _matches(self, doc: Any) -> list[tuple[_Rule, int, int]]:
        """Surviving (rule, start, end) matches in one doc, vetoes applied."""
        positions: dict[str, list[int]] = {}
        for i, tok in enumerate(doc):
            positions.setdefault(tok.lower_, []).append(i)
        present = positions.keys()
        candidates = set(self._unanchored)
        for word in present:
            candidates.update(self._index.get(word, ()))
        hits: list[tuple[_Rule, int, int]] = []
        vetoes: dict[str, list[tuple[int, int]]] = {}
        for i in sorted(candidates):
            rule = self._rules[i]
            if not all(not req.isdisjoint(present) for req in rule.required):
                continue
            if rule.veto:
                # Vetoes only matter for themes with a match; collect lazily below.
                continue
            hits.extend((rule, s, e) for s, e in self._run(rule, doc, positions))
        if not hits:
            return hits
        themes_hit = {rule.theme for rule, _, _ in hits}
        for i in sorted(candidates):
            rule = self._rules[i]
            if (
                rule.veto
                and rule.theme in themes_hit
                and all(not req.isdisjoint(present) for req in rule.required)
            ):
                vetoes.setdefault(rule.theme, []).extend(self._run(rule, doc, positions))
        return [
            (rule, s, e)
            for rule, s, e in sorted(hits, key=lambda h: (h[1], h[2], h[0].pattern_id))
            if not any(vs < e and s < ve for vs, ve in vetoes.get(rule.theme, ()))
        ]

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """0/1 array of shape (n_texts, n_themes), columns in ``themes_`` order."""
        self._ensure_fitted()
        texts = list(texts)
        out = np.zeros((len(texts), len(self.themes_)), dtype=int)
        column = {t: j for j, t in enumerate(self.themes_)}
        for i, doc in enumerate(_blank_nlp().pipe(texts, batch_size=batch_size)):
            for rule, _, _ in self._matches(doc):
                out[i, column[rule.theme]] = 1
        return out

    def matched_terms(self, text: str, theme: str) -> list[str]:
        """The text of each match for ``theme``: shortest non-overlapping spans, in text order."""
        self._check_theme(theme)
        doc = _blank_nlp()(text)
        spans = {(s, e) for rule, s, e in self._matches(doc) if rule.theme == theme}
        kept: list[tuple[int, int]] = []
        for start, end in sorted(spans, key=lambda se: (se[1] - se[0], se[0])):
            if not any(s < end and start < e for s, e in kept):
                kept.append((start, end))
        return [doc[s:e].text for s, e in sorted(kept)]

    def matched_patterns(self, text: str, theme: str) -> list[str]:
        """Ids of the patterns of ``theme`` that fired on ``text`` (for debugging the codebook)."""
        self._check_theme(theme)
        doc = _blank_nlp()(text)
        ids: list[str] = []
        for rule, _, _ in self._matches(doc):
            if rule.theme == theme and rule.pattern_id not in ids:
                ids.append(rule.pattern_id)
        return ids
