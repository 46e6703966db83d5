"""The dataclasses that the stages pass to each other.

Every unit of text keeps its source: document id (sha256 of the file bytes), page number
(1-based), character offsets into the document's text, and a bounding box on the page, so any
theme can be traced back to the lines it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: Bounding box in PDF points, pdfplumber's convention: (x0, top, x1, bottom), origin top-left.
BBox = tuple[float, float, float, float]

ReviewType = Literal["LCSPR", "SCR", "rapid review", "annual report", "national review", "other"]
REVIEW_TYPES: tuple[str, ...] = (
    "LCSPR",
    "SCR",
    "rapid review",
    "annual report",
    "national review",
    "other",
)

Status = Literal["ok", "error"]
ErrorKind = Literal[
    "not_pdf", "encrypted", "no_pages", "no_text_layer", "timeout", "corrupt", "too_large",
    "reader_crashed",
]
ERROR_KINDS: tuple[str, ...] = (
    "not_pdf",
    "encrypted",
    "no_pages",
    "no_text_layer",
    "timeout",
    "corrupt",
    #: Reading it needed more memory than ``ingest.max_memory_mb`` (a decompression bomb).
    "too_large",
    #: The reader process was killed from outside (the OOM killer, a user's kill).
    "reader_crashed",
)
#: Error kinds that say something about this run, not the file: never cached, retried next run.
TRANSIENT_ERROR_KINDS: tuple[str, ...] = ("timeout", "reader_crashed")

#: What a paragraph is on the page. Tables and footnotes are kept apart from body prose.
ParagraphKind = Literal["body", "heading", "table", "footnote"]

#: Section of a review a passage sits in, when the headings tell us.
SECTIONS: tuple[str, ...] = (
    "background",
    "methodology",
    "chronology",
    "analysis",
    "learning",
    "recommendation",
)


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of cleaned text on one page.

    Args:
        doc_id: sha256 of the source file's bytes.
        page: 1-based page number.
        text: cleaned text (headers, footers and page numbers removed, hyphens re-joined).
        bbox: the union of the boxes of the lines it was built from.
        char_start: offset of the first character in ``Document.text``.
        char_end: offset one past the last character in ``Document.text``.
        kind: body, heading, table or footnote.
    """

    doc_id: str
    page: int
    text: str
    bbox: BBox
    char_start: int
    char_end: int
    kind: ParagraphKind = "body"


@dataclass
class Document:
    """One input file: its metadata, its paragraphs, or the reason it could not be read.

    ``Document.text`` is the paragraphs joined by a blank line; paragraph offsets index into it.
    """

    doc_id: str
    file: str
    status: Status = "ok"
    error_kind: ErrorKind | None = None
    error: str | None = None
    pages: int = 0
    title: str | None = None
    area: str | None = None
    year: int | None = None
    review_type: ReviewType | None = None
    paragraphs: list[Paragraph] = field(default_factory=list)
    #: Pages that could not be read although the rest of the document could (1-based).
    bad_pages: list[int] = field(default_factory=list)
    #: The text came from OCR (the file is a scan), so expect recognition errors.
    ocr: bool = False

    PARAGRAPH_SEPARATOR = "\n\n"

    @property
    def text(self) -> str:
        return self.PARAGRAPH_SEPARATOR.join(p.text for p in self.paragraphs)


@dataclass(frozen=True)
class Passage:
    """The unit that is classified: a paragraph, or a sentence-bounded piece of a long one."""

    passage_id: str
    doc_id: str
    page: int
    char_start: int
    char_end: int
    bbox: BBox
    text: str
    section: str | None = None
    kind: ParagraphKind = "body"


@dataclass(frozen=True)
class PassageScores:
    """Calibrated per-theme scores for one passage and the themes over their thresholds."""

    passage_id: str
    scores: dict[str, float]
    themes: list[str]
    model_version: str
