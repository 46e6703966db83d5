"""Segment documents into passages: paragraphs, with long ones split at sentence boundaries.

Uses ``spacy.blank("en")`` with the rule-based sentencizer and a few tokenizer special cases, so
no model is ever downloaded. Each passage keeps its document, page, character offsets and box,
and the review section (chronology, analysis, ...) that its nearest heading names.
"""

from __future__ import annotations

import re
from functools import lru_cache

import spacy
from spacy.language import Language
from spacy.symbols import ORTH

from themes.config import SEGMENT, SegmentSettings
from themes.types import Document, Paragraph, Passage

# Abbreviations that the sentencizer would otherwise treat as sentence ends.
_ABBREVIATIONS = (
    "para.", "paras.", "no.", "nos.", "p.", "pp.", "ch.", "vol.", "approx.", "cf.", "incl.",
    "dept.", "fig.", "sec.", "s.", "ss.", "etc.", "vs.", "ref.", "est.",
)

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


@lru_cache(maxsize=1)
def make_nlp() -> Language:
    """A blank English pipeline with a sentencizer that knows review abbreviations."""
    nlp = spacy.blank("en")
    for abbreviation in _ABBREVIATIONS:
        for form in (abbreviation, abbreviation.capitalize()):
            nlp.tokenizer.add_special_case(form, [{ORTH: form}])
    nlp.add_pipe("sentencizer")
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
