"""Read one page: its words (cleaned, with box, size and boldness) and its ruled tables.

Cleaning happens here, word by word: duplicated "fake bold" characters are removed, ``(cid:N)``
glyphs and private-use characters dropped, ligatures undone and bullet glyphs
(:data:`themes.text.BULLET_GLYPHS`) turned into "•". Words inside a ruled table are left out of the
prose; the table is kept whole, cells joined by " | ".
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from themes.text import BULLET_GLYPHS
from themes.types import BBox

_CID_RE = re.compile(r"\(cid:\d+\)")
_LIGATURES = {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}


def clean_text(text: str) -> str:
    """Drop ``(cid:N)`` glyph runs and private-use glyphs, and undo ligatures, in one string."""
    text = _CID_RE.sub("", text)
    out = []
    for ch in text:
        if "\ue000" <= ch <= "\uf8ff":
            continue
        out.append(_LIGATURES.get(ch, ch))
    return "".join(out).replace("\u00a0", " ")


def _clean_word(text: str) -> str:
    """Clean one extracted word; a word that is only a bullet glyph becomes "•"."""
    stripped = _CID_RE.sub("", text)
    if not stripped:
        return ""
    if all(("\ue000" <= ch <= "\uf8ff") or ch in BULLET_GLYPHS for ch in stripped):
        return "•"
    cleaned = clean_text(stripped)
    if cleaned and cleaned[0] in BULLET_GLYPHS and len(cleaned) > 1:
        # A bullet glued to its first word ("•Parents") keeps the bullet as its own token.
        return "• " + cleaned[1:].lstrip()
    return cleaned


@dataclass(slots=True)
class _TextBox:
    """Text with its box (top-left origin), font size and boldness: a word, or a line of words."""

    x0: float
    top: float
    x1: float
    bottom: float
    text: str
    size: float
    bold: bool

    @property
    def mid(self) -> float:
        return (self.top + self.bottom) / 2


class _Word(_TextBox):
    """One cleaned word as read from the page."""

    __slots__ = ()


@dataclass(slots=True)
class _Table:
    """A ruled table found on a page: its box and its text, cells by " | ", rows by newline."""

    bbox: BBox
    text: str


@dataclass
class _PageData:
    """Everything kept from one page after it is closed."""

    number: int
    width: float
    height: float
    x_origin: float
    y_origin: float
    n_chars: int
    words: list[_Word]
    tables: list[_Table]


def _is_bold(fontname: str) -> bool:
    name = fontname.lower()
    return any(k in name for k in ("bold", "black", "heavy", "semibold", ",b"))


def _table_text(rows: list[list[str | None]]) -> str:
    lines = []
    for row in rows:
        cells = [" ".join(clean_text(c or "").split()) for c in row]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _find_tables(page: Any) -> list[_Table]:
    """Ruled tables with at least two rows and two columns (a lone box is not a table)."""
    tables = []
    for table in page.find_tables():
        rows = table.extract()
        filled = [r for r in rows if any((c or "").strip() for c in r)]
        n_cols = max((len(r) for r in filled), default=0)
        n_cells = sum(1 for r in filled for c in r if (c or "").strip())
        if len(filled) < 2 or n_cols < 2 or n_cells < 3:
            continue
        x0, top, x1, bottom = (float(v) for v in table.bbox)
        tables.append(_Table((x0, top, x1, bottom), _table_text(filled)))
    return tables


def _inside(word: _Word, box: BBox) -> bool:
    cx, cy = (word.x0 + word.x1) / 2, word.mid
    return box[0] - 1 <= cx <= box[2] + 1 and box[1] - 1 <= cy <= box[3] + 1


def _chains(objs: list[dict], attr: str, tolerance: float) -> Iterator[list[dict]]:
    """``objs`` sorted by ``attr`` and cut wherever the next value is more than ``tolerance`` on."""
    objs = sorted(objs, key=itemgetter(attr))
    chain = [objs[0]]
    for obj in objs[1:]:
        if obj[attr] <= chain[-1][attr] + tolerance:
            chain.append(obj)
        else:
            yield chain
            chain = [obj]
    yield chain


def _dedupe_chars(page: Any, tolerance: float = 1.0) -> Any:
    """The page without "fake bold" duplicates: same glyph, font and size within ``tolerance``.

    Same rule as pdfplumber's ``Page.dedupe_chars`` (cluster by ``doctop``, then by ``x0``, keep the
    top-left char of each cluster), which restores the order with ``list.index`` and so takes
    quadratic time. Here a glyph seen once on the page, or never twice on one line, costs nothing.
    """
    chars = page.chars
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for char in chars:
        groups[(char["upright"], char["text"], char["fontname"], char["size"])].append(char)
    drop: set[int] = set()
    for group in groups.values():
        if len(group) < 2:
            continue
        for line in _chains(group, "doctop", tolerance):
            if len(line) < 2:
                continue
            for cluster in _chains(line, "x0", tolerance):
                if len(cluster) > 1:
                    kept = min(cluster, key=itemgetter("doctop", "x0"))
                    drop.update(id(c) for c in cluster if c is not kept)
    if not drop:
        return page
    return page.filter(lambda obj: obj.get("object_type") != "char" or id(obj) not in drop)


def _read_page(page: Any, number: int) -> _PageData:
    """Read the words and tables of one pdfplumber page (the caller closes it)."""
    x_origin, y_origin = float(page.bbox[0]), float(page.bbox[1])
    deduped = _dedupe_chars(page)
    n_chars = len(deduped.chars)
    tables = _find_tables(deduped) if n_chars else []
    words: list[_Word] = []
    if n_chars:
        # A tolerance relative to the font size splits words that tight justified text (LaTeX)
        # sets less than pdfplumber's fixed 3 pt apart.
        raw = deduped.extract_words(
            extra_attrs=["size", "fontname"], keep_blank_chars=False, x_tolerance_ratio=0.15
        )
        for w in raw:
            text = _clean_word(w["text"])
            if not text or not text.strip():
                continue
            word = _Word(
                float(w["x0"]),
                float(w["top"]),
                float(w["x1"]),
                float(w["bottom"]),
                text,
                float(w.get("size") or 0.0),
                _is_bold(str(w.get("fontname") or "")),
            )
            if any(_inside(word, t.bbox) for t in tables):
                continue
            words.append(word)
    return _PageData(
        number=number,
        width=float(page.width),
        height=float(page.height),
        x_origin=x_origin,
        y_origin=y_origin,
        n_chars=n_chars,
        words=words,
        tables=tables,
    )
