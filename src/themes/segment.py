"""Segment documents into passages: paragraphs, with long ones split at sentence boundaries.

Holds the project's one sentence splitter: :func:`split_sentences` (rules for review prose and raw
page text: abbreviations, bullets, headings, numbered paragraphs), run inside ``spacy.blank("en")``
as the ``review_sentences`` component, so no model is ever downloaded. Each passage keeps its document, page, character offsets and box,
and the review section (chronology, analysis, ...) that its nearest heading names.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from themes.config import SEGMENT, SegmentSettings
from themes.text import BULLET_GLYPHS
from themes.types import Document, Paragraph, Passage

# Heading words -> section. The cue earliest in the heading wins; ties go to the earlier entry.
_SECTION_CUES: tuple[tuple[str, str], ...] = (
    ("recommendation", "recommendation"),
    ("what needs to", "learning"),
    ("what we found", "analysis"),
    ("what i found", "analysis"),
    ("what happened", "chronology"),
    ("how we went about", "methodology"),
    ("how i went about", "methodology"),
    ("how the review", "methodology"),
    ("why this review", "background"),
    ("learning", "learning"),
    ("lessons", "learning"),
    ("analysis", "analysis"),
    ("findings", "analysis"),
    ("appraisal", "analysis"),
    ("key lines of enquiry", "analysis"),
    ("practice episode", "analysis"),
    ("chronology", "chronology"),
    ("case summary", "chronology"),
    ("summary of events", "chronology"),
    ("key events", "chronology"),
    ("narrative", "chronology"),
    ("timeline", "chronology"),
    ("methodology", "methodology"),
    ("review process", "methodology"),
    ("method", "methodology"),
    ("terms of reference", "background"),
    ("introduction", "background"),
    ("background", "background"),
    ("family", "background"),
    ("context", "background"),
)

_HEADING_RE = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2})?\.?\s+)?[A-Z][^.!?]{2,80}$")
# A numbered top-level heading ("5. What I found", "5 Analysis") opens a new section.
_TOP_HEADING_RE = re.compile(r"^\d{1,2}\.?\s+[A-Z]")
# Contents-page entries end in a page number ("7. Recommendations 10"): not headings.
_CONTENTS_ENTRY_RE = re.compile(r"(?:\s|\.{2,})\d{1,3}$")


# -- the sentence splitter --------------------------------------------------------------------

#: What may open a list item in raw page text: the shared bullet glyphs, plus dashes and asterisks
#: (a line starting with one and a space is an item; ingestion leaves those alone) and the Wingdings
#: private-use glyphs that ``extract_text()`` returns for bullets in some reports.
BULLETS = "".join(sorted(BULLET_GLYPHS)) + "–—-*" + "\uf06e\uf02d\uf0b7\uf0a7\uf0d8\uf0fc\uf076\uf0a8\uf097"

# Lower-cased words that end in a full stop without ending a sentence.
_ABBREVIATIONS = frozenset(
    {
        "e.g", "i.e", "eg", "ie", "mr", "mrs", "ms", "dr", "prof", "rev", "st", "no", "nos",
        "para", "paras", "p", "pp", "ch", "vol", "approx", "cf", "incl", "dept", "fig", "sec",
        "ss", "ref", "est", "vs", "v", "viz", "al", "jan", "feb", "mar", "apr", "jun", "jul",
        "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip
# "no." and "p." are abbreviations only before a number ("no. 4", "p. 12").
_NUMBER_ABBREVIATIONS = frozenset(
    {"no", "nos", "p", "pp", "para", "paras", "sec", "fig", "ch", "s"}
)

_END_RE = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_OPENER_RE = re.compile(rf"[\"'“‘(\[]?[A-Z0-9{re.escape(BULLETS)}]")
_WORD_BEFORE_RE = re.compile(r"([A-Za-z][A-Za-z.]*)\.$")
# A paragraph number or list marker at the start of a span, when a capitalised word follows.
_ENUMERATOR_RE = re.compile(
    r"(?:\(?[0-9]{1,3}(?:\.[0-9]{1,3})*[.)]?|\(?[a-z]\)|\(?[ivx]{1,4}\))\s+(?=[A-Z\"'“‘(])"
)
_LEAD_RE = re.compile(rf"^(?:[\s{re.escape(BULLETS)}]|[^\w\s\"'“‘(\[](?=\s))+")
# A line opening a numbered paragraph: "12. The", "(3) The", "4.12 The".
_NUMBERED_LINE_RE = re.compile(r"\(?\d{1,3}(?:\.\d{1,3})*[.)]\s+[A-Z]|\d{1,3}\.\d{1,3}\s+[A-Z]")


def sentence_cuts(text: str) -> list[int]:
    """Offsets where a new sentence may start in ``text`` (sorted): the rules of :func:`split_sentences`."""
    cuts: set[int] = set()

    for match in _END_RE.finditer(text):
        end = match.end()
        rest = text[end:].lstrip()
        if not rest or not _OPENER_RE.match(rest):
            continue
        if _is_abbreviation(text, match.start(), rest):
            continue
        if _is_line_enumerator(text, match.start()):
            continue
        cuts.add(end)

    lines = text.split("\n")
    reference = _reference_line_length(lines)
    offset = 0
    for i, line in enumerate(lines[:-1]):
        line_end = offset + len(line)
        nxt = lines[i + 1].lstrip()
        prev = line.strip()
        blank = not prev or not nxt  # a paragraph break
        after_short_line = (
            not blank
            and nxt[0].isupper()
            and len(prev) < 0.6 * reference
            and prev[-1] not in ",;-–(&/"
            and not prev.lower().endswith((" and", " or", " the", " of", " to", " a", " in"))
        )
        if blank or after_short_line or _is_bullet_line(nxt) or _NUMBERED_LINE_RE.match(nxt):
            cuts.add(line_end)
        offset = line_end + 1

    return sorted(cuts)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans ``(start, end)`` of ``text``, deterministic and dependency-free.

    Boundaries: ``.``, ``!`` or ``?`` followed by space and a capital, digit, quote or bullet
    (not after abbreviations such as "e.g.", "i.e.", "Mr." or "no. 4"; "4.12" has no space so
    stays whole); a blank line; a line break before a bullet glyph; a line break after a short
    line (a heading, the end of a paragraph) when the next line starts with a capital; a line
    break before a numbered paragraph ("12. The"). Spans
    exclude surrounding whitespace, leading bullet glyphs and leading paragraph numbers.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for cut in sentence_cuts(text) + [len(text)]:
        span = _trim(text, start, cut)
        if span is not None:
            spans.append(span)
        start = cut
    return spans


@Language.component("review_sentences")
def review_sentences(doc: Doc) -> Doc:
    """Sentence starts from :func:`sentence_cuts`: the one splitter, as a spaCy pipeline component.

    A sentence starts at the first non-space token at or after each cut; every other token
    continues its sentence (so bullets and paragraph numbers open the sentence they belong to).
    """
    starts: set[int] = set()
    cuts = iter(sentence_cuts(doc.text))
    cut = next(cuts, None)
    for token in doc:
        while cut is not None and token.idx >= cut and not token.is_space:
            starts.add(token.i)
            cut = next(cuts, None)
    for token in doc[1:]:
        token.is_sent_start = token.i in starts
    return doc


def _is_bullet_line(line: str) -> bool:
    """Whether a (left-stripped) line starts with a bullet glyph."""
    first = line[0]
    spaced = len(line) < 2 or line[1] in " \t"
    if first in "-–—*":
        return spaced  # "-based" continuing a hyphenated line is not a bullet
    return first in BULLETS or (spaced and unicodedata.category(first) in ("So", "Sm", "Co"))


def _is_abbreviation(text: str, dot: int, rest: str) -> bool:
    """Whether the full stop at ``dot`` closes an abbreviation rather than a sentence."""
    if text[dot] != ".":
        return False
    match = _WORD_BEFORE_RE.search(text[max(0, dot - 20) : dot + 1])
    if match is None:
        return False
    word = match.group(1).lower()
    if word in _NUMBER_ABBREVIATIONS:
        return rest[:1].isdigit()
    return word in _ABBREVIATIONS or word.rstrip(".") in _ABBREVIATIONS


def _is_line_enumerator(text: str, dot: int) -> bool:
    """Whether the stop at ``dot`` ends a paragraph number at the start of a line ("12. The")."""
    line_start = text.rfind("\n", 0, dot) + 1
    head = text[line_start : dot + 1].strip()
    return bool(re.fullmatch(r"[0-9]{1,3}(?:\.[0-9]{1,3})*\.", head))


def _reference_line_length(lines: list[str]) -> float:
    """A full line's length: the 80th percentile of non-blank line lengths (at least 40)."""
    lengths = sorted(len(line.strip()) for line in lines if line.strip())
    if not lengths:
        return 40.0
    return max(40.0, float(lengths[int(0.8 * (len(lengths) - 1))]))


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``(start, end)`` without outer whitespace, bullets and a leading paragraph number."""
    piece = text[start:end]
    lead = _LEAD_RE.match(piece)
    if lead:
        start += lead.end()
    enumerator = _ENUMERATOR_RE.match(text, start, end)
    if enumerator and enumerator.end() < end:
        start = enumerator.end()
        lead = _LEAD_RE.match(text[start:end])
        if lead:
            start += lead.end()
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


@lru_cache(maxsize=1)
def make_nlp() -> Language:
    """A blank English pipeline whose sentences come from :func:`split_sentences`' rules."""
    nlp = spacy.blank("en")
    nlp.add_pipe("review_sentences")
    return nlp


def section_of_heading(text: str) -> str | None:
    """The review section a heading names, or ``None`` when the text is not such a heading."""
    line = text.strip()
    if "\n" in line or not _HEADING_RE.match(line) or _CONTENTS_ENTRY_RE.search(line):
        return None
    lowered = line.lower()
    # The cue that comes first wins: "Findings and recommendations" is a findings section.
    found = [(lowered.find(cue), i, section) for i, (cue, section) in enumerate(_SECTION_CUES) if cue in lowered]
    return min(found)[2] if found else None


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    doc = make_nlp()(text)
    return [(s.start_char, s.end_char) for s in doc.sents]


def _split_long(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Character spans covering ``text`` in pieces of at most ``max_chars`` where sentences allow."""
    if len(text) <= max_chars:
        return [(0, len(text))]
    pieces: list[tuple[int, int]] = []
    start = end = 0
    for s_start, s_end in _sentence_spans(text):
        if end > start and s_end - start > max_chars:
            pieces.append((start, end))
            start = s_start
        end = s_end
    if end > start:
        pieces.append((start, end))
    # Strip whitespace at the edges so offsets point at text.
    spans = []
    for a, b in pieces:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            spans.append((a, b))
    return spans


def passage_id(doc_id: str, char_start: int) -> str:
    """A passage id that is stable across runs: the document hash prefix and the start offset."""
    return f"{doc_id[:16]}:{char_start}"


def segment(document: Document, settings: SegmentSettings = SEGMENT) -> list[Passage]:
    """Cut one ingested document into passages that keep their provenance.

    Args:
        document: an ingested document; error documents give no passages.
        settings: maximum passage length and the shortest passage kept.
    """
    if document.status != "ok":
        return []
    passages: list[Passage] = []
    section: str | None = None
    for paragraph in document.paragraphs:
        heading_section = section_of_heading(paragraph.text)
        if paragraph.kind == "heading" or heading_section:
            if heading_section:
                section = heading_section
            elif paragraph.kind == "heading" and _TOP_HEADING_RE.match(paragraph.text.strip()):
                section = None  # a new top-level section we cannot name: do not inherit the last one
            if paragraph.kind == "heading":
                continue
        passages.extend(_passages_of(paragraph, section, settings))
    return passages


def _passages_of(paragraph: Paragraph, section: str | None, settings: SegmentSettings) -> list[Passage]:
    if len(paragraph.text.strip()) < settings.min_chars:
        return []
    spans = (
        [(0, len(paragraph.text))]
        if paragraph.kind == "table"
        else _split_long(paragraph.text, settings.max_chars)
    )
    out = []
    for a, b in spans:
        start = paragraph.char_start + a
        out.append(
            Passage(
                passage_id=passage_id(paragraph.doc_id, start),
                doc_id=paragraph.doc_id,
                page=paragraph.page,
                char_start=start,
                char_end=paragraph.char_start + b,
                bbox=paragraph.bbox,
                text=paragraph.text[a:b],
                section=section,
                kind=paragraph.kind,
            )
        )
    return out
