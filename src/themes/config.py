"""One home for paths and defaults.

Where things live depends on how themes is installed:

- **from a source checkout** (``make install``, ``pip install -e .``): everything is under the
  project root, the folder holding ``pyproject.toml``, as before;
- **from a wheel** (``pip install .``): the codebook, the default model and the sample PDFs are
  read from the package's own data (``themes/bundled_*``), and everything the tool *writes*
  (``out/``, ``.prefect/``, label decisions in ``corpus/labels``, trained models) goes under
  ``THEMES_HOME``, or the current folder when that is unset, never into site-packages.

Setting ``THEMES_HOME`` overrides both: a codebook or ``models/DEFAULT`` found there is used
instead of the bundled one. ``../shared`` material is found through ``THEMES_SHARED_DIR`` and is
optional: anything that needs it must skip cleanly when :func:`shared_dir` returns ``None``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parents[1]
#: The source checkout this package runs from, or None when it is installed from a wheel.
SOURCE_ROOT: Path | None = _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() and (
    _CHECKOUT / "src" / "themes"
).is_dir() else None


def _home() -> Path:
    """Where the tool reads and writes its working files: THEMES_HOME, the checkout, or cwd."""
    if os.environ.get("THEMES_HOME"):
        return Path(os.environ["THEMES_HOME"]).expanduser().resolve()
    return SOURCE_ROOT if SOURCE_ROOT is not None else Path.cwd().resolve()


#: Root of everything the tool writes by default (see the module docstring).
PROJECT_ROOT = _home()


def _first_existing(*candidates: Path) -> Path:
    return next((c for c in candidates if c.exists()), candidates[-1])

CORE_THEMES: tuple[str, ...] = (
    "optimism_bias",
    "weak_risk_assessment",
    "poor_information_sharing",
    "written_agreements",
)

# What ships with the code: corpus/ and models/ of the checkout, or their copies in a wheel.
_BUNDLED_CORPUS = SOURCE_ROOT / "corpus" if SOURCE_ROOT else PACKAGE_DIR / "bundled_corpus"
_BUNDLED_MODELS = SOURCE_ROOT / "models" if SOURCE_ROOT else PACKAGE_DIR / "bundled_models"

CORPUS_DIR = PROJECT_ROOT / "corpus"
SAMPLE_DIR = _first_existing(CORPUS_DIR / "sample", _BUNDLED_CORPUS / "sample")
LABELS_DIR = CORPUS_DIR / "labels"
#: The held-out document-evaluation set: review-style PDFs with document-level truth for every
#: theme (``expected/<stem>.json``), never trained on and never counted by ``make run``. The
#: presence rule and the error rates behind corrected shares are measured here (issue 13).
DOC_EVAL_DIR = CORPUS_DIR / "doc-eval"
CODEBOOK_PATH = _first_existing(CORPUS_DIR / "codebook.yaml", _BUNDLED_CORPUS / "codebook.yaml")
#: Read-only bundled models are used until a ``models/DEFAULT`` exists under the home folder.
MODELS_DIR = _first_existing(PROJECT_ROOT / "models" / "DEFAULT", _BUNDLED_MODELS / "DEFAULT").parent
DEFAULT_OUT_DIR = PROJECT_ROOT / "out"


def writable_models_dir(models_dir: Path) -> Path:
    """``models_dir``, or the home folder's ``models/`` when it is the copy inside an installed wheel.

    Training and promoting write here, so a wheel install never writes into site-packages.
    """
    bundled = PACKAGE_DIR / "bundled_models"
    if SOURCE_ROOT is None and Path(models_dir).resolve() == bundled.resolve():
        return PROJECT_ROOT / "models"
    return Path(models_dir)


#: Seconds Prefect waits for its temporary local API to start (its default is 20). On a busy
#: 2-core machine 120 s was not always enough for the retrain flow, which got 180; a longer wait
#: never slows a healthy start, it only delays the error when the API cannot start at all.
PREFECT_STARTUP_TIMEOUT_S = 180


def prefect_environment() -> dict[str, str]:
    """The Prefect settings every entry point runs with: local, offline, quiet, patient.

    The database and server log go under the home folder (never into site-packages), analytics
    are off and ``DO_NOT_TRACK=1``, and the temporary API gets :data:`PREFECT_STARTUP_TIMEOUT_S`.
    """
    return {
        "PREFECT_HOME": str(PROJECT_ROOT / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(PREFECT_STARTUP_TIMEOUT_S),
        "PREFECT_LOGGING_LEVEL": "INFO",
    }


def apply_prefect_environment() -> None:
    """Set :func:`prefect_environment` in ``os.environ``, keeping any variable the user set.

    Must run before Prefect is imported (it reads its settings once), so importing ``themes`` or
    ``flows`` calls it: the CLI, the flows called from Python, ``make server``, the tests and the
    notebooks all get it, and child processes inherit it.
    """
    for name, value in prefect_environment().items():
        os.environ.setdefault(name, value)


def shared_dir() -> Path | None:
    """The ``../shared`` folder beside the project, or ``None`` when it is absent."""
    default = (SOURCE_ROOT or PROJECT_ROOT).parent / "shared"
    path = Path(os.environ.get("THEMES_SHARED_DIR", default))
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


@dataclass(frozen=True)
class DedupSettings:
    """Knobs for finding boilerplate repeated across documents (:mod:`themes.dedup`)."""

    #: Words per shingle.
    shingle_words: int = 5
    #: Jaccard similarity of shingle sets at or above which two passages are near-duplicates.
    threshold: float = 0.8
    #: A cluster spanning at least this many documents is boilerplate.
    min_documents: int = 3
    #: Shorter passages (fewer shingles) are never boilerplate: a short heading repeats by chance.
    min_shingles: int = 5
    #: LSH bands; ``bands * rows`` MinHash functions are used.
    bands: int = 20
    #: MinHash values per band. With 20 x 6, a pair at Jaccard 0.8 becomes a candidate with
    #: probability 0.998 and a pair at 0.3 with probability 0.015.
    rows: int = 6
    #: Seed of the hash functions (results do not depend on it beyond that 0.2%).
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}.")
        if self.min_documents < 2:
            raise ValueError(f"min_documents must be at least 2 (a repeat needs two documents), got {self.min_documents}.")
        if self.shingle_words < 1 or self.bands < 1 or self.rows < 1:
            raise ValueError("shingle_words, bands and rows must each be at least 1.")


@dataclass(frozen=True)
class ClassifySettings:
    """Knobs for classifying passages."""

    #: Passages an encoder model scores at once, one onnxruntime thread each (:mod:`themes.encoder`).
    #: A run classifies after its readers have finished, so 0 (the default) means every core this
    #: process may use.
    threads: int = 0

    def resolved_threads(self) -> int:
        """``threads``, or the cores this process may run on when it is 0."""
        if self.threads > 0:
            return self.threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


INGEST = IngestSettings()
CLASSIFY = ClassifySettings()
AGGREGATE = AggregateSettings()
SEGMENT = SegmentSettings()
DEDUP = DedupSettings()
