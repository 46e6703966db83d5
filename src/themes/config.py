"""One home for paths and defaults.

Paths are relative to the project root (the folder holding ``pyproject.toml``) unless given
absolutely. ``../shared`` material is found through ``SHARED_DIR`` and is optional: anything that
needs it must skip cleanly when :func:`shared_dir` returns ``None``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CORE_THEMES: tuple[str, ...] = (
    "optimism_bias",
    "weak_risk_assessment",
    "poor_information_sharing",
    "written_agreements",
)

CORPUS_DIR = PROJECT_ROOT / "corpus"
SAMPLE_DIR = CORPUS_DIR / "sample"
LABELS_DIR = CORPUS_DIR / "labels"
CODEBOOK_PATH = CORPUS_DIR / "codebook.yaml"
MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_OUT_DIR = PROJECT_ROOT / "out"


def shared_dir() -> Path | None:
    """The ``../shared`` folder beside the project, or ``None`` when it is absent."""
    path = Path(os.environ.get("THEMES_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
    return path if path.is_dir() else None


@dataclass(frozen=True)
class IngestSettings:
    """Knobs for PDF ingestion."""

    #: Wall-clock limit for one document; past it the document ends as ``timeout``.
    timeout_s: float = 120.0
    #: Files larger than this are refused as too big to be a review.
    max_file_mb: float = 200.0
    #: Pages beyond this are not read (a review is 20–80 pages; annual reports ~150).
    max_pages: int = 400
    #: Address-space limit of each reader process, in MiB; a file needing more (a decompression
    #: bomb) ends as ``too_large`` and the run goes on. 0 turns the limit off.
    max_memory_mb: int = 2048
    #: Share of the page height treated as header / footer band.
    margin_band: float = 0.09
    #: A line in the margin band repeating on at least this share of pages is a running header.
    repeat_share: float = 0.4
    #: Give scans (no text layer) one with OCRmyPDF + Tesseract, when installed (``themes run --ocr``).
    ocr: bool = False
    #: Extra wall-clock time a document may take when it has to be OCRed.
    ocr_timeout_s: float = 900.0
    #: Tesseract language(s) for OCR, ``+``-joined.
    ocr_language: str = "eng"


@dataclass(frozen=True)
class SegmentSettings:
    """Knobs for passage segmentation."""

    #: Paragraphs longer than this many characters are split at sentence boundaries.
    max_chars: int = 900
    #: Passages shorter than this are merged into a neighbour or dropped when alone (page furniture).
    min_chars: int = 25


@dataclass(frozen=True)
class AggregateSettings:
    """How passage tags become document-level presence."""

    #: A theme is present in a document when at least this many of its passages are tagged. One
    #: stray passage is weak evidence that a review found a failing; on the sample reviews the
    #: any-passage rule (1) called 17 of 48 document-theme pairs wrong, all of them false presences.
    min_passages: int = 2


INGEST = IngestSettings()
AGGREGATE = AggregateSettings()
SEGMENT = SegmentSettings()
