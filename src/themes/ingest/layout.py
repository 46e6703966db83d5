"""Lay a document's pages out as lines in reading order, without page furniture.

Per page, in this order: running headers and footers (margin-band lines repeating across pages,
digits normalised) and bare page numbers are removed; small-font notes at the page foot that start
with a number become ``footnote`` lines; a two-column page (a vertical gutter no words cross) is
read left column, then right; a ruled table stays one ``table`` line where it stood.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from themes.config import IngestSettings
from themes.ingest.pages import _PageData, _Table, _TextBox, _Word
from themes.types import BBox, ParagraphKind

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


@dataclass(slots=True)
class _Line(_TextBox):
    """A line of text (or a whole table) in reading order."""

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
