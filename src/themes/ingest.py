"""Read review PDFs into Documents of clean paragraphs that keep their page, box and offsets.

The stage never raises for a bad input: a file that cannot be read comes back as a Document with
``status="error"``, an ``error_kind`` from :data:`themes.types.ERROR_KINDS` and a one-sentence
``error`` naming the file. A page that fails is listed in ``Document.bad_pages`` and the rest kept.

Cleaning, in the order it happens on each page:

1. duplicated "fake bold" characters are removed (``dedupe_chars``), ``(cid:N)`` glyphs dropped,
   private-use bullet glyphs normalised to "•";
2. ruled tables (``find_tables``) become one ``table`` paragraph each and leave the prose;
3. running headers and footers (margin-band lines repeating across pages, digits normalised) and
   bare page numbers are removed;
4. small-font notes at the page foot that start with a number become ``footnote`` paragraphs;
5. a two-column page (a vertical gutter no words cross) is read left column, then right;
6. lines are joined into paragraphs at vertical gaps, numbered paragraphs ("4.12", "1."), bullets
   and font changes; words split by a line-end hyphen are re-joined.

:func:`ingest_with_timeout` and :func:`ingest_many` run :func:`ingest_pdf` in child processes so
that a file that hangs or crashes the PDF library is killed and reported, not waited on.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import multiprocessing.connection
import os
import pickle
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from itertools import pairwise
from operator import itemgetter
from pathlib import Path
from typing import Any

from themes.config import INGEST, IngestSettings
from themes.types import REVIEW_TYPES, BBox, Document, Paragraph, ParagraphKind

log = logging.getLogger(__name__)

#: Bytes read at the start of a file to decide whether it is a PDF at all.
_SNIFF_BYTES = 1024

# --------------------------------------------------------------------------------------------
# Small text helpers
# --------------------------------------------------------------------------------------------

_CID_RE = re.compile(r"\(cid:\d+\)")
#: Glyphs used as list bullets; all become "•".
_BULLETS = set("•▪▫●◦■□◼◾➢➤►▶✓✔❖◆◇○∙·⁃‣")
_LIGATURES = {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
_SOFT_HYPHEN = "\u00ad"

#: Left parts of a line-end hyphen that mark a real compound ("multi-agency"), so the hyphen stays.
#: Kept short on purpose: "under-", "over-", "re-" and "part-" are also where ordinary words
#: break ("under-standing", "re-view", "part-nership"); compounds beyond this list keep their
#: hyphen when the document writes them hyphenated elsewhere.
KEEP_HYPHEN_PREFIXES: frozenset[str] = frozenset(
    {
        "multi", "non", "co", "self", "ex", "pre", "post", "inter", "cross", "well", "long",
        "short", "decision", "follow", "step", "anti",
    }
)  # fmt: skip

#: A numbered paragraph at the start of a line: "4.12 ...", "4.12. ...", "1. ...", "12) ...".
_NUMBERED_RE = re.compile(r"^(?:\d{1,2}(?:\.\d{1,3})+\.?|\d{1,3}[.)])(?=\s|$)")
#: Page furniture that is never content: bare page numbers and "Page N of M".
_PAGE_NUMBER_RE = re.compile(
    r"^(?:[-–—]?\s*\d{1,4}\s*[-–—]?"
    r"|page\s*\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?"
    r"|\d{1,4}\s*(?:of|/)\s*\d{1,4}"
    r"|\d{1,4}\s*\|\s*p\s*a\s*g\s*e"
    r"|p\s*a\s*g\s*e\s*\|\s*\d{1,4}"
    r"|[ivxlc]{1,7})$",
    re.IGNORECASE,
)
_PAGE_N_OF_M_RE = re.compile(r"^page\s*\d{1,4}\s*(?:of|/)\s*\d{1,4}$", re.IGNORECASE)
_TERMINAL_PUNCT = (".", "!", "?", ":", ";", "”", '"')


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
    if all(("\ue000" <= ch <= "\uf8ff") or ch in _BULLETS for ch in stripped):
        return "•"
    cleaned = clean_text(stripped)
    if cleaned and cleaned[0] in _BULLETS and len(cleaned) > 1:
        # A bullet glued to its first word ("•Parents") keeps the bullet as its own token.
        return "• " + cleaned[1:].lstrip()
    return cleaned


def _one_sentence(text: str, limit: int = 200) -> str:
    """Collapse whitespace and cut an exception message so it fits inside one sentence."""
    text = " ".join(str(text).split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# Pass 1: what is read from each page
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Word:
    """One cleaned word with its box (top-left origin), font size and boldness."""

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


# --------------------------------------------------------------------------------------------
# Pass 2: layout
# --------------------------------------------------------------------------------------------


@dataclass
class _Line:
    """A line of text (or a whole table) in reading order."""

    x0: float
    top: float
    x1: float
    bottom: float
    text: str
    size: float
    bold: bool
    kind: ParagraphKind = "body"
    #: Lines in the same column block share a key; a change of key is a change of column.
    column: int = 0

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 0.1)

    @property
    def bbox(self) -> BBox:
        return (self.x0, self.top, self.x1, self.bottom)


def _rows(words: list[_Word]) -> list[list[_Word]]:
    """Group words into rows by vertical position, each row sorted left to right."""
    rows: list[list[_Word]] = []
    ref_mid = ref_h = 0.0
    for w in sorted(words, key=lambda w: (w.mid, w.x0)):
        h = max(w.bottom - w.top, 1.0)
        if rows and abs(w.mid - ref_mid) <= 0.45 * max(h, ref_h):
            rows[-1].append(w)
        else:
            rows.append([w])
            ref_mid, ref_h = w.mid, h
    for row in rows:
        row.sort(key=lambda w: w.x0)
    return rows


def _line_of(row: list[_Word], column: int = 0, keep_superscripts: bool = False) -> _Line:
    """Make one line from a row of words; words that touch are joined without a space.

    Superscript note references (small raised digits, "it¹") are dropped from the line unless
    ``keep_superscripts`` (a footnote's own number).
    """
    if len(row) > 1 and not keep_superscripts:
        main = max(w.size for w in row)
        base = statistics.median(w.bottom for w in row if w.size >= 0.9 * main)
        row = [
            w for w in row
            if not (w.text.isdigit() and len(w.text) <= 3 and w.size < 0.8 * main
                    and w.bottom < base - 0.15 * main)
        ] or row  # fmt: skip
    parts: list[str] = []
    prev: _Word | None = None
    for w in row:
        if prev is not None:
            gap = w.x0 - prev.x1
            parts.append("" if gap < 0.12 * max(prev.size, w.size, 1.0) else " ")
        parts.append(w.text)
        prev = w
    sizes = [w.size for w in row for _ in range(max(len(w.text), 1))]
    return _Line(
        x0=min(w.x0 for w in row),
        top=min(w.top for w in row),
        x1=max(w.x1 for w in row),
        bottom=max(w.bottom for w in row),
        text="".join(parts).strip(),
        size=statistics.median(sizes) if sizes else 0.0,
        bold=all(w.bold for w in row),
        column=column,
    )


def _norm_furniture(text: str) -> str:
    """Key for spotting a running header or footer: lower case, digits normalised."""
    return " ".join(re.sub(r"\d+", "#", text.lower()).split())


def _margin_split(
    page: _PageData, band: float
) -> tuple[list[tuple[_Line, list[_Word]]], list[_Word]]:
    """Split a page into lines (with their words) in its top/bottom margin band, and its body."""
    top_limit = page.y_origin + band * page.height
    bottom_limit = page.y_origin + (1 - band) * page.height
    margin: list[_Word] = []
    body: list[_Word] = []
    for w in page.words:
        (margin if (w.mid < top_limit or w.mid > bottom_limit) else body).append(w)
    return [(_line_of(r), r) for r in _rows(margin)], body


def _find_gutter(rows: list[list[_Word]]) -> tuple[float, float] | None:
    """The x and width of a vertical gutter between two text columns, or None for one column."""
    if len(rows) < 6:
        return None
    x_left = min(w.x0 for r in rows for w in r)
    x_right = max(w.x1 for r in rows for w in r)
    width = x_right - x_left
    if width < 150:
        return None
    n = math.ceil(width) + 2
    crossing = [0] * n
    for row in rows:
        covered = bytearray(n)
        for w in row:
            a = max(int(w.x0 - x_left), 0)
            b = min(math.ceil(w.x1 - x_left) + 1, n)
            covered[a:b] = b"\x01" * (b - a)
        for i, c in enumerate(covered):
            if c:
                crossing[i] += 1
    lo, hi = int(0.3 * width), int(0.7 * width)
    # "No words cross it over most of the body": titles and centred lines may cross it.
    limit = max(2.0, 0.15 * len(rows))
    best: tuple[int, int] | None = None
    start = None
    for i in range(lo, hi + 1):
        free = crossing[i] <= limit
        if free and start is None:
            start = i
        if (not free or i == hi) and start is not None:
            end = i if free else i - 1
            if best is None or end - start > best[1] - best[0]:
                best = (start, end)
            start = None
    if best is None or best[1] - best[0] < 5:
        return None
    gutter = x_left + (best[0] + best[1]) / 2
    left_ext = []
    right_ext = []
    for row in rows:
        lw = [w for w in row if w.x1 <= gutter]
        rw = [w for w in row if w.x0 >= gutter]
        if lw:
            left_ext.append(max(w.x1 for w in lw) - min(w.x0 for w in lw))
        if rw:
            right_ext.append(max(w.x1 for w in rw) - min(w.x0 for w in rw))
    # Both sides must be real columns of text on most rows, not a column of page numbers.
    if len(left_ext) < 0.4 * len(rows) or len(right_ext) < 0.4 * len(rows):
        return None
    if statistics.median(left_ext) < 0.2 * width or statistics.median(right_ext) < 0.2 * width:
        return None
    return gutter, float(best[1] - best[0])


@dataclass
class _Item:
    """A row of words or a table, positioned for reading order."""

    x0: float
    top: float
    x1: float
    bottom: float
    words: list[_Word] | None = None
    table: _Table | None = None


def _item_lines(items: list[_Item], column: int) -> list[_Line]:
    """Lines for one column block: words re-grouped into rows, tables kept whole."""
    out: list[tuple[float, _Line]] = []
    words = [w for it in items if it.words for w in it.words]
    for row in _rows(words):
        line = _line_of(row, column)
        out.append((line.top, line))
    for it in items:
        if it.table is not None:
            x0, top, x1, bottom = it.table.bbox
            out.append(
                (top, _Line(x0, top, x1, bottom, it.table.text, 0.0, False, "table", column))
            )
    out.sort(key=lambda t: t[0])
    return [line for _, line in out]


def _row_spans(row: list[_Word], gutter: float, gutter_width: float) -> bool:
    """Whether a row runs across the gutter (a centred title) rather than sitting in columns."""
    if any(w.x0 < gutter - 1 and w.x1 > gutter + 1 for w in row):
        return True
    left = [w.x1 for w in row if w.x1 <= gutter + 1]
    right = [w.x0 for w in row if w.x0 >= gutter - 1]
    # Words either side of the gutter at ordinary word spacing belong to one line.
    size = statistics.median(w.size for w in row) or 10.0
    return bool(left and right) and min(right) - max(left) < min(0.6 * size, 0.8 * gutter_width)


def _reading_order(words: list[_Word], tables: list[_Table]) -> list[_Line]:
    """Order a page's body into lines: one column top to bottom, or left then right column."""
    rows = _rows(words)
    found = _find_gutter(rows)
    items = [_Item(min(w.x0 for w in r), min(w.top for w in r), max(w.x1 for w in r),
                   max(w.bottom for w in r), words=r) for r in rows]  # fmt: skip
    items += [_Item(*t.bbox, table=t) for t in tables]
    items.sort(key=lambda it: it.top)
    if found is None:
        return _item_lines(items, 0)
    gutter, gutter_width = found
    lines: list[_Line] = []
    block: list[_Item] = []
    column = 0

    def flush() -> None:
        nonlocal column, block
        if not block:
            return
        left, right = [], []
        for it in block:
            if it.words is not None:
                lw = [w for w in it.words if (w.x0 + w.x1) / 2 < gutter]
                rw = [w for w in it.words if (w.x0 + w.x1) / 2 >= gutter]
                if lw:
                    left.append(_Item(0, it.top, 0, it.bottom, words=lw))
                if rw:
                    right.append(_Item(0, it.top, 0, it.bottom, words=rw))
            elif it.x1 <= gutter + 2:
                left.append(it)
            else:
                right.append(it)
        lines.extend(_item_lines(left, column + 1))
        lines.extend(_item_lines(right, column + 2))
        column += 2
        block = []

    for it in items:
        spans = (
            _row_spans(it.words, gutter, gutter_width)
            if it.words is not None
            else it.x0 < gutter - 2 and it.x1 > gutter + 2
        )
        if spans:
            flush()
            column += 1
            lines.extend(_item_lines([it], column))
        else:
            block.append(it)
    flush()
    return lines


def _split_footnotes(
    words: list[_Word], page: _PageData, body_size: float
) -> tuple[list[_Word], list[_Line]]:
    """Separate small-font numbered notes at the page foot from the body words."""
    if not words or body_size <= 0:
        return words, []
    rows = _rows(words)
    block: list[list[_Word]] = []
    for row in reversed(rows):
        size = statistics.median(w.size for w in row)
        if size < 0.88 * body_size:
            block.insert(0, row)
        else:
            break
    # The notes must start with a number, sit in the lower half, and have body text above.
    while block and not re.match(r"^\d{1,3}\b", block[0][0].text):
        block.pop(0)
    if not block or len(block) == len(rows):
        return words, []
    if block[0][0].top < page.y_origin + 0.5 * page.height:
        return words, []
    if not any(abs(statistics.median(w.size for w in r) - body_size) < 0.12 * body_size
               for r in rows[: len(rows) - len(block)]):  # fmt: skip
        return words, []
    in_block = {id(w) for r in block for w in r}
    lines = [_line_of(r, keep_superscripts=True) for r in block]
    for line in lines:
        line.kind = "footnote"
    return [w for w in words if id(w) not in in_block], lines


# --------------------------------------------------------------------------------------------
# Lines into paragraphs
# --------------------------------------------------------------------------------------------


def _vocabulary(lines: Iterable[_Line]) -> set[str]:
    """Lower-cased words seen inside lines (not at a line end), for hyphen decisions."""
    vocab: set[str] = set()
    for line in lines:
        if line.kind == "table":
            continue
        tokens = line.text.split()
        for tok in tokens[:-1]:
            tok = tok.strip(".,;:()[]'\"‘’“”!?").lower()
            if tok:
                vocab.add(tok)
    return vocab


_HYPHEN_END_RE = re.compile(r"([A-Za-z]+)-$")


def join_lines(lines: list[str], vocab: set[str] | None = None) -> str:
    """Join wrapped lines into one paragraph string, re-joining words split by a line-end hyphen.

    A line-end hyphen is dropped ("assess-" + "ment" -> "assessment") when the next line starts in
    lower case, unless the left part is a known prefix ("multi-agency") or the hyphenated form
    appears elsewhere in the document and the joined form does not. Otherwise lines join with a
    space.
    """
    vocab = vocab or set()
    text = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if not text:
            text = line
            continue
        if text.endswith(_SOFT_HYPHEN):
            text = text[:-1] + line
            continue
        m = _HYPHEN_END_RE.search(text)
        if m:
            left = m.group(1)
            right = line.split()[0].strip(".,;:()[]'\"‘’“”!?")
            if line[0].islower():
                joined = (left + right).lower()
                hyphenated = f"{left}-{right}".lower()
                keep = left.lower() in KEEP_HYPHEN_PREFIXES or (
                    hyphenated in vocab and joined not in vocab
                )
                text = text + line if keep else text[:-1] + line
            else:
                # "non-" + "English", "COVID-" + "19": a real hyphen, no space.
                text = text + line
            continue
        if text.endswith(("–", "—")) and not text.endswith((" –", " —")):
            text = text + line
            continue
        text = text + " " + line
    return text


@dataclass
class _Para:
    lines: list[_Line] = field(default_factory=list)
    kind: ParagraphKind = "body"


def _starts_new(
    prev: _Line, cur: _Line, gap_unit: float, col_right: float, col_width: float
) -> bool:
    """Whether ``cur`` starts a new paragraph after ``prev`` in the same flow."""
    if cur.kind != "body" or prev.kind != "body":
        return True
    text = cur.text
    if _NUMBERED_RE.match(text) or text.startswith("•"):
        return True
    if cur.column != prev.column:
        # Text flowing from the foot of one column to the head of the next continues a sentence.
        return not (text[:1].islower() and not prev.text.endswith(_TERMINAL_PUNCT))
    size = max(prev.size, cur.size, 1.0)
    if abs(prev.size - cur.size) > 0.12 * size:
        return True
    if prev.bold != cur.bold:
        return True
    gap = cur.top - prev.bottom
    if gap < -0.5 * min(prev.height, cur.height):
        return True
    if gap > max(1.6 * gap_unit, gap_unit + 0.45 * min(prev.height, cur.height)):
        return True
    # A short line ending a sentence, followed by a capital, ends a paragraph set without gaps.
    short = col_right - prev.x1 > 0.3 * col_width
    return short and prev.text.endswith(_TERMINAL_PUNCT) and text[:1].isupper()


def _gap_unit(pages_lines: list[list[_Line]]) -> float:
    """The usual gap between consecutive lines of a paragraph, over the whole document."""
    gaps = []
    for lines in pages_lines:
        for a, b in pairwise(lines):
            if a.kind == b.kind == "body" and a.column == b.column:
                g = b.top - a.bottom
                if -0.5 < g < 1.5 * max(a.height, 1.0):
                    gaps.append(max(g, 0.0))
    if not gaps:
        return 2.0
    gaps.sort()
    return gaps[len(gaps) // 4]


def _page_paragraphs(lines: list[_Line], gap_unit: float, body_size: float) -> list[_Para]:
    """Group a page's ordered lines into paragraphs and decide each paragraph's kind."""
    cols: dict[int, tuple[float, float]] = {}
    for line in lines:
        lo, hi = cols.get(line.column, (line.x0, line.x1))
        cols[line.column] = (min(lo, line.x0), max(hi, line.x1))
    paras: list[_Para] = []
    for line in lines:
        if line.kind in ("table",):
            paras.append(_Para([line], "table"))
            continue
        if line.kind == "footnote":
            if paras and paras[-1].kind == "footnote" and not re.match(r"^\d{1,3}\b", line.text):
                paras[-1].lines.append(line)
            else:
                paras.append(_Para([line], "footnote"))
            continue
        if paras and paras[-1].kind in ("body", "heading"):
            prev = paras[-1].lines[-1]
            lo, hi = cols[line.column]
            if not _starts_new(prev, line, gap_unit, hi, max(hi - lo, 1.0)):
                paras[-1].lines.append(line)
                continue
        paras.append(_Para([line], "body"))
    for para in paras:
        if para.kind != "body":
            continue
        size = statistics.median(line.size for line in para.lines)
        text_len = sum(len(line.text) for line in para.lines)
        last = para.lines[-1].text
        if (
            body_size
            and size >= 1.18 * body_size
            and text_len <= 300
            or (
                all(line.bold for line in para.lines)
                and len(para.lines) <= 2
                and text_len <= 150
                and not last.endswith((".", ",", ";"))
            )
        ):
            para.kind = "heading"
    return paras


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------

_SMALL_WORDS = {"and", "of", "upon", "on", "the", "in", "under", "by", "le"}
_TYPE_SLUGS = {
    "lcspr": "LCSPR",
    "scr": "SCR",
    "rapid-review": "rapid review",
    "rapidreview": "rapid review",
    "rr": "rapid review",
    "annual-report": "annual report",
    "annualreport": "annual report",
    "national-review": "national review",
    "panel": "national review",
    "other": "other",
}
_SAMPLE_NAME_RE = re.compile(
    r"^(?P<year>(?:19|20)\d{2})_(?P<area>[a-z0-9-]+)_(?P<type>[a-z0-9-]+)(?:_(?P<child>[a-z0-9-]+))?$",
    re.IGNORECASE,
)
_OFSTED_NAME_RE = re.compile(
    r"^(?P<year>(?:19|20)\d{2})-\d{2}-\d{2}_(?P<area>[a-z0-9-]+)_(?P<number>\d+)$", re.IGNORECASE
)


def area_from_slug(slug: str) -> str:
    """Title-case an area slug: hyphens to spaces, "and"/"of"/"upon" kept lower case."""
    words = [w for w in slug.replace("_", "-").split("-") if w]
    out = []
    for i, w in enumerate(words):
        out.append(w.lower() if (i > 0 and w.lower() in _SMALL_WORDS) else w.capitalize())
    return " ".join(out)


def metadata_from_filename(name: str) -> dict[str, Any]:
    """Year, area and review type from our file-name conventions; empty when none matches.

    ``<year>_<area-slug>_<type-slug>_<child>.pdf`` (``2021_northmere_lcspr_child-a.pdf``) and
    Ofsted's ``<yyyy-mm-dd>_<area-slug>_<number>.pdf`` (``2016-05-16_bury_80443.pdf``).
    """
    stem = Path(name).stem
    m = _OFSTED_NAME_RE.match(stem)
    if m:
        return {"year": int(m.group("year")), "area": area_from_slug(m.group("area"))}
    m = _SAMPLE_NAME_RE.match(stem)
    if m:
        out: dict[str, Any] = {
            "year": int(m.group("year")),
            "area": area_from_slug(m.group("area")),
        }
        rtype = _TYPE_SLUGS.get(m.group("type").lower())
        if rtype:
            out["review_type"] = rtype
        return out
    m = re.search(r"(?<!\d)((?:19|20)\d{2})(?!\d)", stem)
    return {"year": int(m.group(1))} if m else {}


_AREA_WORD = r"[A-Z][\w'’.&-]*"
_AREA = rf"(?P<area>{_AREA_WORD}(?:[ \t]+(?:(?:and|of|upon|on|with|&)[ \t]+)?{_AREA_WORD})*)"
_AREA_CUES = [
    re.compile(
        rf"{_AREA}\s+(?:Local\s+)?Safeguarding\s+Children(?:['’]s)?\s+(?:Partnership|Board)"
    ),
    re.compile(rf"{_AREA}\s+Safeguarding\s+(?:Children\s+)?Partnership"),
    re.compile(rf"{_AREA}\s+(?:Local\s+)?Safeguarding\s+(?:Children\s+)?Board"),
]
_INSPECTION_RE = re.compile(
    r"Inspection\s+of\s+(?:the\s+)?(?P<area>.{2,60}?)\s+local\s+authority\s+children['’]s\s+services",
    re.IGNORECASE | re.DOTALL,
)
#: An inspection's headline judgement: "Children's services in Cheshire East require improvement".
_SERVICES_IN_RE = re.compile(
    rf"Children['’]s\s+services\s+in\s+{_AREA}\s+(?:are|is|require|requires|remain|remains|have|has)\b"
)
_LEADING_NOISE = {
    "the", "a", "an", "review", "report", "annual", "published", "by", "for", "of", "on",
    "commissioned", "inspection", "serious", "case", "local", "child", "children", "practice",
    "rapid", "learning", "this", "executive", "summary", "overview", "final", "and", "from",
    "safeguarding", "partnership", "board", "in", "to", "with", "version", "draft",
}  # fmt: skip
_AREA_PREFIXES = re.compile(
    r"^(?:the\s+)?(?:royal\s+borough\s+of|london\s+borough\s+of|metropolitan\s+borough\s+of"
    r"|borough\s+of|county\s+of|council\s+of\s+the|city\s+of(?!\s+london$))\s+",
    re.IGNORECASE,
)
#: On a cover, the line just above "Inspection of services for children ..." names the area.
_ABOVE_INSPECTION_CUE = re.compile(
    rf"^[ \t]*{_AREA}[ \t]*\n[ \t]*(?:Re-?inspection|Inspection)\s+of\s+(?:services\s+for\s+children"
    r"|children['’]s\s+(?:social\s+care\s+)?services)",
    re.MULTILINE,
)
#: A cover line that is only a borough's name: "Royal Borough of Kensington and Chelsea".
_BOROUGH_CUE = re.compile(
    rf"^[ \t]*(?:The\s+)?(?:Royal|London|Metropolitan)\s+Borough\s+of\s+{_AREA}[ \t]*$", re.MULTILINE
)
#: Last resort on a cover: "Gateshead Borough Council", "Telford and Wrekin Council".
_COUNCIL_CUE = re.compile(
    rf"^[ \t]*{_AREA}\s+(?:(?:Metropolitan\s+)?Borough\s+|County\s+|City\s+)?Council\b(?!\s+of)",
    re.MULTILINE,
)
_AREA_SUFFIXES = re.compile(
    r"\s+(?:unitary\s+authority|city\s+council|county\s+council|borough\s+council|metropolitan\s+borough\s+council"
    r"|metropolitan\s+borough|metropolitan\s+district|district\s+metropolitan|metropolitan"
    r"|district|council|city|county|borough)$",
    re.IGNORECASE,
)

#: Review-type cues, strongest first; used on the cover page, then on pages 1–3.
_TYPE_CUES: list[tuple[str, re.Pattern[str]]] = [
    ("annual report", re.compile(r"\bannual\s+report\b", re.IGNORECASE)),
    ("rapid review", re.compile(r"\brapid\s+review\b", re.IGNORECASE)),
    ("LCSPR", re.compile(r"\blocal\s+child\s+safeguarding\s+practice\s+review\b|\bLCSPR\b", re.IGNORECASE)),
    ("SCR", re.compile(r"\bserious\s+case\s+review\b|\bSCR\b", re.IGNORECASE)),
    ("other", re.compile(r"\binspection\s+of\b.{0,80}?\bchildren['’]s\s+(?:social\s+care\s+)?services\b"
                         r"|\binspection\s+of\s+services\s+for\s+children\b",
                         re.IGNORECASE | re.DOTALL)),
    ("national review", re.compile(
        r"\bchild\s+safeguarding\s+practice\s+review\s+panel\b|\bnational\s+review\b", re.IGNORECASE)),
]  # fmt: skip
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
#: "Report published: 13 February 2017", "Date of publication: March 2021": the year a review is
#: filed under, which can differ from the year its events or inspection took place.
_PUBLISHED_RE = re.compile(
    rf"\b(?:published(?:\s+on)?|publication\s+date|date\s+of\s+publication)\s*:?\s*"
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?\s+)?(?:(?:{_MONTHS})\s+)?((?:19|20)\d{{2}})\b",
    re.IGNORECASE,
)
_MONTH_YEAR_RE = re.compile(rf"\b(?:{_MONTHS})\s+((?:19|20)\d{{2}})\b", re.IGNORECASE)
_YEAR_RE = re.compile(r"(?<![\d.,/])((?:19[89]|20[0-4])\d)(?![\d.,/])")


#: Words a cover line can hold on its own that name no place ("Doncaster Metropolitan / Borough").
_NOT_AN_AREA = frozenset({"borough", "council", "county", "city", "district", "metropolitan"})


def _tidy_area(raw: str) -> str | None:
    words = raw.split()
    while words and words[0].lower().strip(",.") in _LEADING_NOISE:
        words.pop(0)
    # A single capital letter left at the front is a child's pseudonym ("Child A Northmere").
    while len(words) > 1 and len(words[0]) == 1:
        words.pop(0)
    while words and (words[-1].lower() in _SMALL_WORDS or words[-1].lower() == "local"):
        words.pop()
    area = _AREA_PREFIXES.sub("", " ".join(words))
    while (shorter := _AREA_SUFFIXES.sub("", area)) != area:  # "X Metropolitan District Council"
        area = shorter
    area = area.strip(" ,.-")
    if not area or len(area) > 60 or not area[0].isupper() or area.lower() in _NOT_AN_AREA:
        return None
    return area


def area_from_text(text: str, cover: bool = True) -> str | None:
    """The partnership's area named in cover text, or None.

    Args:
        text: the text to search.
        cover: whether ``text`` is a cover page, where a line naming a council ("Gateshead
            Borough Council") also names the area; elsewhere that is too often another body
            ("Children in Care Council").
    """
    for strong in (_INSPECTION_RE, _SERVICES_IN_RE):
        m = strong.search(text)
        area = _tidy_area(" ".join(m.group("area").split())) if m else None
        if area:
            return area
    best: tuple[int, str] | None = None
    for cue in _AREA_CUES:
        for m in cue.finditer(text):
            area = _tidy_area(m.group("area"))
            if area and (best is None or m.start() < best[0]):
                best = (m.start(), area)
                break
    if best is not None:
        return best[1]
    if not cover:
        return None
    for cue in (_ABOVE_INSPECTION_CUE, _BOROUGH_CUE, _COUNCIL_CUE):
        m = cue.search(text)
        area = _tidy_area(m.group("area")) if m else None
        if area:
            return area
    return None


def review_type_from_text(cover: str, first_pages: str) -> str | None:
    """Review type from the cover page's cues (by strength), else the earliest cue on pages 1–3."""
    for rtype, cue in _TYPE_CUES:
        if cue.search(cover):
            return rtype
    earliest: tuple[int, str] | None = None
    for rtype, cue in _TYPE_CUES:
        m = cue.search(first_pages)
        if m and (earliest is None or m.start() < earliest[0]):
            earliest = (m.start(), rtype)
    return earliest[1] if earliest else None


def year_from_text(cover: str, first_pages: str) -> int | None:
    """Year of the review: its publication date, else a "Month YYYY" on the cover, else any year
    on the cover or pages 1–3."""
    for pattern in (_PUBLISHED_RE, _MONTH_YEAR_RE, _YEAR_RE):
        for text in (cover, first_pages):
            m = pattern.search(text)
            if m:
                return int(m.group(1))
    return None


def _pdf_title(metadata: Mapping[str, Any]) -> str | None:
    title = metadata.get("Title")
    if not isinstance(title, str):
        return None
    title = " ".join(title.split())
    low = title.lower()
    junk = (
        not title
        or low.startswith(("microsoft word", "untitled", "document", "slide"))
        or low.endswith((".doc", ".docx", ".pdf", ".indd", ".rtf"))
        or len(title) < 4
    )
    return None if junk else title


def _cover_title(lines: list[_Line], body_size: float) -> str | None:
    """The largest-font text on page 1 (consecutive lines of that size), when it is larger than
    the body text."""
    sized = [ln for ln in lines if ln.kind == "body" and ln.size > 0 and len(ln.text) >= 2]
    if not sized:
        return None
    top = max(ln.size for ln in sized)
    if body_size and top < 1.1 * body_size:
        return None
    picked: list[str] = []
    started = False
    for ln in lines:
        if ln.kind == "body" and ln.size >= top - 0.5:
            picked.append(ln.text)
            started = True
        elif started:
            break
    title = " ".join(" ".join(picked).split())
    if len(title) < 3:
        return None
    return title if len(title) <= 200 else title[:199] + "…"


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------

MANIFEST_NAME = "manifest.csv"
_MANIFEST_FIELDS = ("title", "area", "year", "review_type")


def load_manifest(folder: Path) -> dict[str, dict[str, str]]:
    """Rows of ``manifest.csv`` in ``folder`` keyed by file name; empty when there is none.

    Columns: file, title, area, year, review_type. Blank cells are left out, so they never
    override what was read from the file.
    """
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return {}
    rows: dict[str, dict[str, str]] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            name = (row.get("file") or "").strip()
            if not name:
                continue
            rows[Path(name).name] = {
                k: v.strip() for k in _MANIFEST_FIELDS if (v := row.get(k)) and v.strip()
            }
    return rows


def apply_manifest(doc: Document, row: Mapping[str, str]) -> Document:
    """Override a document's metadata with a manifest row's non-blank cells; returns ``doc``."""
    if row.get("title"):
        doc.title = row["title"].strip()
    if row.get("area"):
        doc.area = row["area"].strip()
    year = (row.get("year") or "").strip()
    if year:
        try:
            doc.year = int(float(year))
        except ValueError:
            log.warning("manifest year %r for %s is not a year; ignored", year, doc.file)
    rtype = (row.get("review_type") or "").strip()
    if rtype:
        match = next((t for t in REVIEW_TYPES if t.lower() == rtype.lower()), None)
        if match is None:
            log.warning("manifest review_type %r for %s is not one of %s; ignored",
                        rtype, doc.file, ", ".join(REVIEW_TYPES))  # fmt: skip
        else:
            doc.review_type = match  # type: ignore[assignment]
    return doc


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def doc_id_of(path: Path | str) -> str:
    """The sha256 hex digest of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _error(doc: Document, kind: str, message: str) -> Document:
    doc.status = "error"
    doc.error_kind = kind  # type: ignore[assignment]
    doc.error = message
    doc.paragraphs = []
    return doc


def _not_pdf_reason(head: bytes) -> str | None:
    """Why the first bytes of a file show it is not a PDF, or None when they look like one."""
    if b"%PDF" in head:
        return None
    low = head.lstrip().lower()
    if low.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "it is an HTML or XML page"
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive"
    return "it does not start with %PDF"


def _classify_open_error(name: str, exc: BaseException) -> tuple[str, str]:
    """Error kind and message for an exception raised while opening a PDF."""
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError

    inner = exc
    if (
        type(exc).__name__ == "PdfminerException"
        and exc.args
        and isinstance(exc.args[0], BaseException)
    ):
        inner = exc.args[0]
    if (
        isinstance(inner, (PDFEncryptionError, PDFPasswordIncorrect))
        or "password" in type(inner).__name__.lower()
    ):
        return "encrypted", f"{name} is encrypted; needs a password."
    if isinstance(inner, PDFSyntaxError) and "/Root" in str(inner):
        return "not_pdf", f"{name} is not a readable PDF (it has no /Root object)."
    detail = _one_sentence(str(inner)) or "no message"
    return "corrupt", f"{name} could not be read as a PDF ({type(inner).__name__}: {detail})."


def ingest_pdf(
    path: Path | str,
    settings: IngestSettings = INGEST,
    overrides: Mapping[str, str] | None = None,
) -> Document:
    """Read one PDF into a Document of clean paragraphs with provenance; never raises.

    Args:
        path: the PDF file.
        settings: ingestion knobs (margin band, repeat share, page and size limits).
        overrides: a manifest row (title, area, year, review_type) whose non-blank cells replace
            what was read; by default the row for this file in a ``manifest.csv`` beside it.
    """
    path = Path(path)
    doc = Document(doc_id="", file=path.name)
    try:
        doc.doc_id = doc_id_of(path)
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        return _error(doc, "corrupt", f"{path.name} could not be read ({type(exc).__name__}: "
                      f"{_one_sentence(exc.strerror or str(exc))}).")  # fmt: skip
    for key, value in metadata_from_filename(path.name).items():
        setattr(doc, key, value)
    if overrides is None:
        try:
            overrides = load_manifest(path.parent).get(path.name)
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            log.warning("manifest beside %s could not be read: %s", path.name, exc)
    try:
        if size == 0:
            _error(doc, "not_pdf", f"{path.name} is empty (0 bytes), not a PDF.")
        elif (reason := _not_pdf_reason(head)) is not None:
            _error(doc, "not_pdf", f"{path.name} is not a PDF ({reason}).")
        elif size > settings.max_file_mb * 1024 * 1024:
            _error(doc, "corrupt", f"{path.name} is too large to be a review "
                   f"({size / 2**20:.0f} MB, over the {settings.max_file_mb:g} MB limit).")  # fmt: skip
        else:
            _ingest_into(doc, path, settings)
            if doc.error_kind == "no_text_layer" and settings.ocr:
                _ocr_into(doc, path, settings)
    except MemoryError:
        doc.paragraphs = []  # free what was read before reporting
        _error(doc, "too_large", _too_large_message(path.name, settings))
    except Exception as exc:  # the stage must never raise for a bad input
        if _out_of_memory(exc):
            return _error(doc, "too_large", _too_large_message(path.name, settings))
        log.debug("unexpected failure on %s", path.name, exc_info=True)
        detail = _one_sentence(str(exc)) or "no message"
        _error(doc, "corrupt",
               f"{path.name} could not be read as a PDF ({type(exc).__name__}: {detail}).")  # fmt: skip
    if overrides:
        apply_manifest(doc, overrides)
    return doc


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is, or wraps, a MemoryError (pdfplumber wraps pdfminer's errors)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        if isinstance(e, MemoryError):
            return True
        seen.add(id(e))
        todo += [e.__cause__, e.__context__, *e.args]
    return False


def _too_large_message(name: str, settings: IngestSettings) -> str:
    return (f"{name} needed more than {settings.max_memory_mb} MiB of memory to read (a "
            "decompression bomb or an oversized image); raise ingest.max_memory_mb to read it.")


def _ingest_into(doc: Document, path: Path, settings: IngestSettings, name: str = "") -> None:
    """Open the PDF, read its pages, and fill ``doc`` with paragraphs and metadata.

    ``name`` is the file name used in error messages; ``path.name`` by default.
    """
    import pdfplumber

    name = name or path.name
    try:
        pdf = pdfplumber.open(path)
    except MemoryError:
        raise  # a decompression bomb: the whole file is refused, not one page
    except Exception as exc:  # pdfminer raises anything on a broken file
        if _out_of_memory(exc):
            raise MemoryError from exc
        kind, message = _classify_open_error(name, exc)
        _error(doc, kind, message)
        return
    with pdf:
        try:
            pages = pdf.pages
            n_pages = len(pages)
        except MemoryError:
            raise
        except Exception as exc:  # a broken page tree raises anything
            if _out_of_memory(exc):
                raise MemoryError from exc
            kind, message = _classify_open_error(name, exc)
            _error(doc, kind, message)
            return
        doc.pages = n_pages
        if n_pages == 0:
            _error(doc, "no_pages", f"{name} opens with 0 pages.")
            return
        if n_pages > settings.max_pages:
            log.warning("%s has %d pages; only the first %d are read", name, n_pages,
                        settings.max_pages)  # fmt: skip
        page_data: list[_PageData] = []
        first_exc: BaseException | None = None
        for index in range(min(n_pages, settings.max_pages)):
            page = None
            try:
                page = pages[index]
                page_data.append(_read_page(page, index + 1))
            except MemoryError:
                raise
            except Exception as exc:  # one bad page must not lose the rest
                if _out_of_memory(exc):
                    raise MemoryError from exc
                log.warning("%s page %d could not be read: %s: %s", name, index + 1,
                            type(exc).__name__, _one_sentence(str(exc)))  # fmt: skip
                doc.bad_pages.append(index + 1)
                first_exc = first_exc or exc
            finally:
                if page is not None:
                    page.close()
        metadata = dict(pdf.metadata or {})
    if not page_data and first_exc is not None:
        kind, message = _classify_open_error(name, first_exc)
        if kind == "corrupt":
            message = (f"{name} could not be read: every page failed ({type(first_exc).__name__}: "
                       f"{_one_sentence(str(first_exc)) or 'no message'}).")  # fmt: skip
        _error(doc, kind, message)
        return
    n_chars = sum(p.n_chars for p in page_data)
    if n_chars == 0:
        _error(doc, "no_text_layer", f"{name} has no text layer ({n_pages} pages); OCR needed{_OCR_HINT}.")
        return
    page_lines = _layout(page_data, settings)
    _fill_paragraphs(doc, page_data, page_lines)
    if not doc.paragraphs:
        _error(doc, "no_text_layer", f"{name} has no usable text layer ({n_pages} pages; its "
               f"{n_chars} characters are unmapped glyphs or page furniture); OCR needed{_OCR_HINT}.")  # fmt: skip
        return
    _fill_metadata(doc, page_lines, metadata, _body_size(page_data))


#: How to get text out of a scan, appended to its error.
_OCR_HINT = " (themes run --ocr, with ocrmypdf and tesseract installed)"


def _ocr_into(doc: Document, path: Path, settings: IngestSettings) -> None:
    """Read a scan through OCRmyPDF: OCR a temporary copy and fill ``doc`` from it.

    ``doc`` keeps its id, file name and file-name metadata and gets ``ocr=True``; when OCR is not
    installed, fails or finds no text, ``doc`` stays a ``no_text_layer`` error saying why.
    """
    scan = f"{path.name} has no text layer ({doc.pages} pages)"
    exe = shutil.which("ocrmypdf")
    if exe is None:
        doc.error = (f"{scan} and cannot be OCRed: ocrmypdf is not on PATH (pip install "
                     "'themes[ocr]' and install tesseract).")  # fmt: skip
        return
    command = [exe, "--force-ocr", "--output-type", "pdf", "--quiet", "-l", settings.ocr_language]
    with tempfile.TemporaryDirectory(prefix="themes-ocr-") as tmp:
        ocred = Path(tmp) / "ocr.pdf"
        try:
            done = subprocess.run([*command, str(path), str(ocred)], capture_output=True, text=True,
                                  timeout=settings.ocr_timeout_s, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            doc.error = f"{scan} and OCR took longer than {settings.ocr_timeout_s:g} s."
            return
        if done.returncode != 0 or not ocred.is_file():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            doc.error = (f"{scan} and OCR failed (ocrmypdf exit code {done.returncode}: "
                         f"{_one_sentence(last)}).")  # fmt: skip
            return
        # ``doc`` holds only what the file name said and the page count: start from that.
        fresh = replace(doc, status="ok", error_kind=None, error=None, bad_pages=[])
        _ingest_into(fresh, ocred, settings, name=path.name)
    if fresh.status != "ok":
        doc.error = f"{scan} and OCR found no text in it."
        return
    for attr in fields(Document):
        setattr(doc, attr.name, getattr(fresh, attr.name))
    doc.ocr = True


def _body_size(page_data: list[_PageData]) -> float:
    """The most common font size over the document, weighted by characters."""
    counts: Counter[float] = Counter()
    for page in page_data:
        for w in page.words:
            counts[round(w.size, 1)] += len(w.text)
    return counts.most_common(1)[0][0] if counts else 0.0


def _layout(page_data: list[_PageData], settings: IngestSettings) -> list[list[_Line]]:
    """Ordered lines for every page, with running headers, footers and page numbers removed."""
    body_size = _body_size(page_data)
    splits = [_margin_split(p, settings.margin_band) for p in page_data]
    seen: Counter[str] = Counter()
    for margin_lines, _ in splits:
        seen.update({_norm_furniture(ln.text) for ln, _ in margin_lines})
    threshold = max(2, math.ceil(settings.repeat_share * len(page_data)))
    out: list[list[_Line]] = []
    for page, (margin_lines, body) in zip(page_data, splits, strict=True):
        words = list(body)
        for ln, line_words in margin_lines:
            key = _norm_furniture(ln.text)
            if seen[key] >= threshold or _PAGE_NUMBER_RE.match(ln.text.strip()) or not key:
                continue
            # A margin line that does not repeat is content (a cover title near the top).
            words.extend(line_words)
        words = [w for w in words if w.text]
        words, notes = _split_footnotes(words, page, body_size)
        lines = _reading_order(words, page.tables) if (words or page.tables) else []
        lines = [ln for ln in lines if not _PAGE_N_OF_M_RE.match(ln.text)]
        out.append(lines + notes)
    return out


def _fill_paragraphs(
    doc: Document, page_data: list[_PageData], page_lines: list[list[_Line]]
) -> None:
    """Build the document's paragraphs with offsets into ``Document.text``."""
    body_size = _body_size(page_data)
    gap_unit = _gap_unit(page_lines)
    vocab = _vocabulary(ln for lines in page_lines for ln in lines)
    offset = 0
    sep = len(Document.PARAGRAPH_SEPARATOR)
    paragraphs: list[Paragraph] = []
    for page, lines in zip(page_data, page_lines, strict=True):
        for para in _page_paragraphs(lines, gap_unit, body_size):
            if para.kind == "table":
                text = para.lines[0].text.strip()
            else:
                text = join_lines([ln.text for ln in para.lines], vocab)
            text = text.strip()
            if not text:
                continue
            bbox = (
                round(min(ln.x0 for ln in para.lines), 2),
                round(min(ln.top for ln in para.lines), 2),
                round(max(ln.x1 for ln in para.lines), 2),
                round(max(ln.bottom for ln in para.lines), 2),
            )
            start = offset + (sep if paragraphs else 0)
            paragraphs.append(Paragraph(doc.doc_id, page.number, text, bbox, start,
                                        start + len(text), para.kind))  # fmt: skip
            offset = start + len(text)
    doc.paragraphs = paragraphs


def _fill_metadata(
    doc: Document, page_lines: list[list[_Line]], metadata: Mapping[str, Any], body_size: float
) -> None:
    """Title, area, year and review type from the cover, the first pages and the file name."""
    # Paragraphs, not lines: a cover heading wrapped over two lines ("Royal Borough of Kensington
    # and / Chelsea") is one name.
    prose = [p for p in doc.paragraphs if p.kind != "table"]
    cover = "\n".join(p.text for p in prose if p.page == 1)
    first = "\n".join(p.text for p in prose if p.page <= 3)
    doc.title = (_cover_title(page_lines[0], body_size) if page_lines else None) or _pdf_title(
        metadata
    )
    area = area_from_text(cover) or area_from_text(first, cover=False)
    if area:
        doc.area = area
    if doc.year is None:
        doc.year = year_from_text(cover, first)
    if doc.review_type is None:
        rtype = review_type_from_text(cover, first)
        if rtype is not None:
            doc.review_type = rtype  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------
# Child processes: time limits and a pool
# --------------------------------------------------------------------------------------------
#
# Workers are fresh interpreters (``python -c ...``), like multiprocessing's "spawn", so a
# multi-threaded parent (Prefect) is never forked. Unlike multiprocessing they never re-import the
# parent's ``__main__``: that breaks under ``python -`` and costs a Prefect or CLI import per file.
# Each worker reads many files in turn; one that overruns its time limit is killed and replaced.

IngestFunc = Callable[[Path, IngestSettings], Document]

#: The worker's first message is the parent's sys.path, read before ``themes`` is imported so a
#: parent that found ``themes`` through its own path finds it in the worker too.
_WORKER_CODE = """
import os, pickle, struct, sys
def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            raise SystemExit(0)
        data += chunk
    return data
(size,) = struct.unpack("!Q", read(8))
sys.path[:] = list(dict.fromkeys(pickle.loads(read(size)) + sys.path))
from themes.ingest import _worker_main
_worker_main()
"""
#: A worker is replaced after this many files, so a slow leak in the PDF library stays bounded.
_FILES_PER_WORKER = 50
_HEADER = struct.Struct("!Q")


def _send(stream: Any, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: Any, n: int) -> bytes:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError("worker closed its output")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _receive(stream: Any) -> Any:
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return pickle.loads(_read_exact(stream, size))


def _limit_memory(max_mb: int) -> None:
    """Cap this process's address space at ``max_mb`` MiB (soft limit; 0 lifts it).

    Set per file in the reader process itself, so the pool and the single-file path both get it.
    Only the soft limit moves, so a later file with a higher setting can raise it again.
    """
    try:
        import resource
    except ImportError:  # not POSIX: no limit, as before
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = int(max_mb) * 2**20 if max_mb and max_mb > 0 else hard
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ValueError, OSError):
        log.warning("could not set the reader's memory limit to %s MiB", max_mb)


def _worker_main() -> None:
    """Loop in a worker process: read (path, settings, func) jobs, answer with Documents."""
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    parent = os.getppid()

    def watch_parent() -> None:
        # A worker stuck in a hung file must not outlive a parent that was killed.
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    while True:
        try:
            path, settings, func = _receive(inp)
        except EOFError:
            return
        _limit_memory(getattr(settings, "max_memory_mb", 0))
        try:
            doc = func(path, settings)
        except MemoryError:
            doc = _error(Document(doc_id="", file=path.name), "too_large",
                         _too_large_message(path.name, settings))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - func should not raise; report, do not die
            doc = Document(doc_id="", file=path.name, status="error", error_kind="corrupt",
                           error=f"{path.name} could not be read ({type(exc).__name__}: "
                           f"{_one_sentence(str(exc)) or 'no message'}).")  # fmt: skip
        _send(out, doc)


class _Worker:
    """One worker process and the file it is reading, if any."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.done = 0
        self.path: Path | None = None
        self.deadline = 0.0
        _send(self.proc.stdin, list(sys.path))

    def start(self, path: Path, settings: IngestSettings, func: IngestFunc) -> None:
        self.path = path
        extra = settings.ocr_timeout_s if settings.ocr else 0.0  # a scan may need OCR first
        self.deadline = time.monotonic() + settings.timeout_s + extra
        _send(self.proc.stdin, (path, settings, func))

    def stop(self) -> None:
        """End the process: politely when idle, by kill when busy or stuck."""
        try:
            if self.path is None and self.proc.stdin:
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


def _safe_doc_id(path: Path) -> str:
    try:
        return doc_id_of(path)
    except OSError:
        return ""


def _failed(path: Path, kind: str, message: str) -> Document:
    doc = Document(doc_id=_safe_doc_id(path), file=path.name)
    for key, value in metadata_from_filename(path.name).items():
        setattr(doc, key, value)
    return _error(doc, kind, message)


def _start(worker: _Worker, path: Path, settings: IngestSettings, func: IngestFunc) -> bool:
    """Hand ``path`` to ``worker``; False (and the worker stopped) if its process has gone."""
    try:
        worker.start(path, settings, func)
        return True
    except OSError:
        worker.path = None
        worker.stop()
        return False


def _started(idle: _Worker | None, path: Path, settings: IngestSettings, func: IngestFunc) -> _Worker | None:
    """A worker reading ``path``: the idle one if it is still alive, else a fresh one.

    An idle worker can have died between files (the OOM killer, a user's kill); that says nothing
    about the next file, so it gets a fresh process. None if a fresh process cannot take it either.
    """
    if idle is not None and _start(idle, path, settings, func):
        return idle
    try:
        fresh = _Worker()
    except OSError:
        return None
    return fresh if _start(fresh, path, settings, func) else None


def ingest_many(
    paths: Iterable[Path | str],
    workers: int = 1,
    settings: IngestSettings = INGEST,
    func: IngestFunc = ingest_pdf,
) -> Iterator[Document]:
    """Ingest files in worker processes, ``workers`` at a time, yielding Documents as they finish.

    A file still being read after ``settings.timeout_s`` seconds has its worker killed and comes
    back as a ``timeout`` error; a file whose worker dies is tried once more on a fresh worker, and
    comes back as ``reader_crashed`` if that one dies too. Either way the other files go on. A
    worker is given its next file as soon as it hands one back, before the caller sees it.

    Args:
        paths: the PDF files.
        workers: how many files are read at once.
        settings: ingestion knobs; ``timeout_s`` is the per-file wall-clock limit.
        func: what a worker runs on each file, a picklable top-level function; ``ingest_pdf``.
    """
    pending = deque(Path(p) for p in paths)
    retried: set[Path] = set()
    idle: list[_Worker] = []
    busy: list[_Worker] = []
    n_workers = max(1, int(workers))

    def fill() -> Iterator[Document]:
        """Start pending files on free readers; a file no reader will take comes back failed."""
        while pending and len(busy) < n_workers:
            path = pending.popleft()
            started = _started(idle.pop() if idle else None, path, settings, func)
            if started is None:
                yield _failed(path, "reader_crashed", f"{path.name} could not be sent to a reader "
                              "process (it exited at start).")  # fmt: skip
                continue
            busy.append(started)

    try:
        while pending or busy:
            yield from fill()
            if not busy:
                continue
            wait_for = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = multiprocessing.connection.wait([w.proc.stdout for w in busy], wait_for)
            for worker in list(busy):
                path = worker.path
                assert path is not None
                doc: Document | None = None
                if worker.proc.stdout in ready:
                    try:
                        doc = _receive(worker.proc.stdout)
                    except (EOFError, OSError, pickle.UnpicklingError):
                        code = worker.proc.wait()
                        worker.path = None
                        worker.stop()
                        busy.remove(worker)
                        # A reader can die for reasons outside its file (the OOM killer, a user's
                        # kill while it had just started the next file): one more try on a fresh one.
                        if path not in retried:
                            retried.add(path)
                            pending.appendleft(path)
                            yield from fill()
                            continue
                        doc = _failed(path, "reader_crashed", f"{path.name} crashed the reader "
                                      f"process twice (exit code {code}).")  # fmt: skip
                        yield from fill()
                        yield doc
                        continue
                elif time.monotonic() >= worker.deadline:
                    worker.stop()
                    worker.path = None
                    doc = _failed(path, "timeout", f"{path.name} took longer than "
                                  f"{settings.timeout_s:g} s to read and was stopped.")  # fmt: skip
                if doc is None:
                    continue
                busy.remove(worker)
                if worker.path is not None:
                    worker.path = None
                    worker.done += 1
                    # After a MemoryError the process's heap is suspect: start a fresh one.
                    if worker.done >= _FILES_PER_WORKER or doc.error_kind == "too_large":
                        worker.stop()
                    else:
                        idle.append(worker)
                # Give the freed reader its next file before the caller gets this one: what the
                # caller does with a document (segmenting, caching) must not leave a core idle.
                yield from fill()
                yield doc
    finally:
        for worker in busy + idle:
            worker.stop()


def ingest_with_timeout(
    path: Path | str, settings: IngestSettings = INGEST, func: IngestFunc = ingest_pdf
) -> Document:
    """Ingest one file in a worker process killed after ``settings.timeout_s`` seconds.

    Returns the file's Document, or a ``timeout`` error Document carrying the file's doc_id.
    """
    return next(ingest_many([path], workers=1, settings=settings, func=func))
