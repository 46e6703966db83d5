"""Join a document's ordered lines into paragraphs with their kind, box and text offsets.

A new paragraph starts at a vertical gap, a numbered paragraph ("4.12", "1."), a bullet, a change of
font size or weight, or a short line ending a sentence; text flowing from one column's foot to the
next column's head continues its sentence. Words split by a line-end hyphen are re-joined unless
the hyphen is real ("multi-agency").
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from themes.ingest.layout import _body_size, _Line
from themes.ingest.pages import _PageData
from themes.types import Document, Paragraph, ParagraphKind

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
_TERMINAL_PUNCT = (".", "!", "?", ":", ";", "”", '"')


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
