"""The real-text dev set: sentences of real reports stored as locators, never as text.

The project may not hold any sentence of the real reports in ``../shared``, so a labelled real
sentence is stored as a :class:`Locator` (file, page, character offsets and a hash of its text)
and its text is rebuilt from ``../shared`` at evaluation time with :func:`rebuild`.

Offsets of an Ofsted locator index into ``page_text(path, page)``: pdfplumber's
``page.extract_text()`` with default arguments. Offsets of a seeds locator index into the whole
``.txt`` file read as utf-8.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import unicodedata
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from themes.agreement import cohen_kappa_by_theme, labels_by_id
from themes.config import CORE_THEMES, LABELS_DIR, shared_dir

Source = Literal["ofsted", "seeds"]
SOURCES: tuple[str, ...] = ("ofsted", "seeds")

#: Folder of real-text label files (locators and labels, no text).
REAL_LABELS_DIR = LABELS_DIR / "real"

#: Fixed seed of the candidate selection, so the dev set can be drawn again identically.
DEVSET_SEED = 20261122


# --------------------------------------------------------------------------------------------
# Locators
# --------------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces, trimmed and lower-cased: what the hash is taken of."""
    return " ".join(text.split()).lower()


def text_sha1(text: str) -> str:
    """The sha1 hex digest of :func:`normalise` of ``text``."""
    return hashlib.sha1(normalise(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Locator:
    """Where one real sentence is, and a hash to check that the rebuilt text is the same.

    Args:
        source: ``"ofsted"`` (a PDF under ``shared/ofsted``) or ``"seeds"`` (a ``.txt`` under
            ``shared/seeds``).
        file: the file name inside the source folder.
        page: 1-based page number for Ofsted PDFs; 0 for seeds text files.
        char_start: offset of the first character in the page text (or file text).
        char_end: offset one past the last character.
        sha1: sha1 of :func:`normalise` of the located text.
    """

    source: str
    file: str
    page: int
    char_start: int
    char_end: int
    sha1: str

    @property
    def id(self) -> str:
        """Stable id ``<source>-<file stem>-p<page>-<char_start>``."""
        return f"{self.source}-{Path(self.file).stem}-p{self.page}-{self.char_start}"

    @classmethod
    def of(cls, source: str, file: str, page: int, text: str, start: int, end: int) -> Locator:
        """The locator of ``text[start:end]`` (``text`` being the page or file text)."""
        return cls(source, file, page, start, end, text_sha1(text[start:end]))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Locator:
        """A locator from a mapping holding the six locator fields (extra keys are ignored)."""
        missing = [name for name in LOCATOR_FIELDS if name not in row]
        if missing:
            raise ValueError(f"Row {row.get('id', '?')!r} lacks locator fields {missing}.")
        return cls(
            source=str(row["source"]),
            file=str(row["file"]),
            page=int(row["page"]),
            char_start=int(row["char_start"]),
            char_end=int(row["char_end"]),
            sha1=str(row["sha1"]),
        )


LOCATOR_FIELDS: tuple[str, ...] = ("source", "file", "page", "char_start", "char_end", "sha1")


def page_text(path: str | Path, page: int) -> str:
    """The text of one PDF page (1-based) as the locators index it: ``extract_text()`` defaults."""
    import pdfplumber

    with pdfplumber.open(str(path)) as pdf:
        return _page_text_of(pdf, page, path)


def _page_text_of(pdf: Any, page: int, path: str | Path) -> str:
    """Text of page ``page`` of an open pdfplumber document, closing the page afterwards."""
    if not 1 <= page <= len(pdf.pages):
        raise IndexError(f"{path} has {len(pdf.pages)} pages; page {page} does not exist.")
    pdf_page = pdf.pages[page - 1]
    try:
        return pdf_page.extract_text() or ""
    finally:
        # Without close() pdfplumber keeps every parsed page: memory grows ~8 MiB a page.
        pdf_page.close()


def source_path(shared: Path, source: str, file: str) -> Path:
    """The path of ``file`` of ``source`` under the shared folder."""
    if source not in SOURCES:
        raise ValueError(f"Unknown locator source {source!r}; expected one of {SOURCES}.")
    return shared / source / file


def rebuild(locators: Sequence[Locator], shared: Path | None = None) -> list[str | None]:
    """The texts of ``locators``, or ``None`` where a text cannot be rebuilt or its hash differs.

    Each PDF is opened once and each page extracted once. A warning names the file and page of
    every failure.

    Args:
        locators: where the texts are.
        shared: the shared folder; by default :func:`themes.config.shared_dir`. When there is
            none, every text is ``None`` and one warning says so.
    """
    shared = shared if shared is not None else shared_dir()
    out: list[str | None] = [None] * len(locators)
    if shared is None:
        if locators:
            warnings.warn(
                f"Cannot rebuild {len(locators)} real-text locators: no shared folder "
                "(set THEMES_SHARED_DIR or put ../shared beside the project).",
                stacklevel=2,
            )
        return out

    by_file: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, loc in enumerate(locators):
        by_file[(loc.source, loc.file)].append(i)

    for (source, file), indices in by_file.items():
        path = source_path(shared, source, file)
        if not path.is_file():
            warnings.warn(
                f"Cannot rebuild {len(indices)} locators: {path} is missing.", stacklevel=2
            )
            continue
        if source == "seeds":
            texts = {0: path.read_text(encoding="utf-8")}
        else:
            texts = _ofsted_pages(path, sorted({locators[i].page for i in indices}))
        for i in indices:
            loc = locators[i]
            text = texts.get(loc.page)
            if text is None:
                warnings.warn(f"Cannot rebuild {loc.id}: {file} page {loc.page} unreadable.")
                continue
            if not 0 <= loc.char_start < loc.char_end <= len(text):
                warnings.warn(
                    f"Cannot rebuild {loc.id}: offsets {loc.char_start}-{loc.char_end} fall "
                    f"outside the {len(text)} characters of {file} page {loc.page}."
                )
                continue
            piece = text[loc.char_start : loc.char_end]
            if text_sha1(piece) != loc.sha1:
                warnings.warn(
                    f"Cannot rebuild {loc.id}: the text of {file} page {loc.page} at "
                    f"{loc.char_start}-{loc.char_end} does not match its hash (file changed?)."
                )
                continue
            out[i] = piece
    return out


def _ofsted_pages(path: Path, pages: Iterable[int]) -> dict[int, str]:
    """Texts of the given pages of one PDF, opened once; unreadable pages are left out."""
    import pdfplumber

    texts: dict[int, str] = {}
    try:
        with pdfplumber.open(str(path)) as pdf:
            for page in pages:
                try:
                    texts[page] = _page_text_of(pdf, page, path)
                except Exception as exc:  # noqa: BLE001 - one bad page must not lose the rest
                    warnings.warn(f"Cannot read {path.name} page {page}: {type(exc).__name__}.")
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"Cannot open {path}: {type(exc).__name__} {exc}.")
    return texts


# --------------------------------------------------------------------------------------------
# Sentence splitting
# --------------------------------------------------------------------------------------------

#: Bullet glyphs seen in real reports (Wingdings private-use glyphs included).
BULLETS = "•◦▪■□◼◻◾◽❖◆◇●○‣⁃∙·➢►▶✓✔–—-*\uf06e\uf02d\uf0b7\uf0a7\uf0d8\uf0fc\uf076\uf0a8\uf097"

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


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans ``(start, end)`` of ``text``, deterministic and dependency-free.

    Boundaries: ``.``, ``!`` or ``?`` followed by space and a capital, digit, quote or bullet
    (not after abbreviations such as "e.g.", "i.e.", "Mr." or "no. 4"; "4.12" has no space so
    stays whole); a blank line; a line break before a bullet glyph; a line break after a short
    line (a heading, the end of a paragraph) when the next line starts with a capital; a line
    break before a numbered paragraph ("12. The"). Spans
    exclude surrounding whitespace, leading bullet glyphs and leading paragraph numbers.
    """
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

    spans: list[tuple[int, int]] = []
    start = 0
    for cut in sorted(cuts) + [len(text)]:
        span = _trim(text, start, cut)
        if span is not None:
            spans.append(span)
        start = cut
    return spans


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


# --------------------------------------------------------------------------------------------
# Candidate selection
# --------------------------------------------------------------------------------------------

#: Broad topic words for the four core themes (matched lower-cased at word starts).
TOPIC_PATTERNS: dict[str, re.Pattern[str]] = {
    "weak_risk_assessment": re.compile(r"\b(?:assess|risk|decision|plan)"),
    "poor_information_sharing": re.compile(
        r"\b(?:information|shar(?:e|ed|es|ing)\b|communicat|strateg|mash\b|notif|partner)"
    ),
    "optimism_bias": re.compile(r"\b(?:optimis|hope|accept|assur|improv|progress|sustain|drift)"),
    "written_agreements": re.compile(r"\b(?:agreement|contract|safety plan|written)"),
}

_FURNITURE_RE = re.compile(
    r"(?:www\.|https?:|@|©|crown copyright|ofsted\.gov|open government licence|"
    r"^inspection of |^page \d|reference no)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Candidate:
    """A sentence proposed for labelling: its locator, its text (never stored) and why chosen.

    Args:
        locator: where the sentence is.
        text: the sentence, for annotators only; written outside the project.
        pool: ``"topic:<theme>"`` when chosen for that theme's topic words, ``"random"`` else.
    """

    locator: Locator
    text: str
    pool: str

    @property
    def id(self) -> str:
        """The locator's id."""
        return self.locator.id


@dataclass
class ScanResult:
    """Prose sentences found by a scan, and how long the scan took.

    Args:
        sentences: ``(locator, text)`` of every prose sentence found.
        files: files scanned.
        pages: pages scanned.
        seconds: wall-clock seconds of the scan.
    """

    sentences: list[tuple[Locator, str]] = field(default_factory=list)
    files: int = 0
    pages: int = 0
    seconds: float = 0.0


def topics_of(text: str) -> list[str]:
    """The core themes whose broad topic words ``text`` contains (lower-cased match)."""
    low = normalise(text)
    return [theme for theme, pattern in TOPIC_PATTERNS.items() if pattern.search(low)]


def is_prose(text: str) -> bool:
    """Whether a sentence looks like real prose: 20–400 characters, not a heading or table bit."""
    flat = " ".join(text.split())
    if not 20 <= len(flat) <= 400:
        return False
    if not (flat[0].isupper() or flat[0] in "\"'“‘("):
        return False
    if not re.search(r"[.!?][\"'”’)\]]*$", flat):
        return False  # headings, table cells and sentences running onto the next page
    words = flat.split()
    if len(words) < 5:
        return False
    letters = sum(ch.isalpha() for ch in flat)
    if letters < 0.75 * sum(not ch.isspace() for ch in flat):
        return False  # numbers, percentages, table rows
    if _FURNITURE_RE.search(flat):
        return False
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) >= 3 and sum(map(len, lines)) / len(lines) < 30:
        return False  # a column of short cells
    # Title Case headings and lists of names are not prose.
    return sum(w[0].isupper() for w in words) <= 0.6 * len(words)


def prose_sentences(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of ``text`` that :func:`is_prose` accepts."""
    return [(s, e) for s, e in split_sentences(text) if is_prose(text[s:e])]


def read_dev_files(shared: Path) -> list[str]:
    """The Ofsted files named in ``ofsted/DEV_FILES.txt`` (the only ones we may label)."""
    listing = shared / "ofsted" / "DEV_FILES.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing} is missing; it names the Ofsted files we may label.")
    return [line.strip() for line in listing.read_text().splitlines() if line.strip()]


def _scan_file(job: tuple[str, str, list[int] | None]) -> tuple[list[tuple[Locator, str]], int]:
    """Prose sentences of the given pages (all when ``None``) of one PDF, and pages read."""
    import pdfplumber

    path_str, file, pages = job
    found: list[tuple[Locator, str]] = []
    read = 0
    try:
        with pdfplumber.open(path_str) as pdf:
            numbers = pages if pages is not None else list(range(1, len(pdf.pages) + 1))
            for page in numbers:
                try:
                    text = _page_text_of(pdf, page, path_str)
                except Exception as exc:  # noqa: BLE001 - a bad page is skipped, not fatal
                    warnings.warn(f"Skipping {file} page {page}: {type(exc).__name__}.")
                    continue
                read += 1
                for s, e in prose_sentences(text):
                    found.append((Locator.of("ofsted", file, page, text, s, e), text[s:e]))
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"Cannot scan {file}: {type(exc).__name__} {exc}.")
    return found, read


def scan_ofsted(
    shared: Path,
    files: Sequence[str] | None = None,
    pages_per_file: int | None = None,
    seed: int = DEVSET_SEED,
    workers: int = 2,
) -> ScanResult:
    """Find the prose sentences of the Ofsted dev files, timed.

    Args:
        shared: the shared folder.
        files: file names under ``shared/ofsted``; by default those in ``DEV_FILES.txt``.
        pages_per_file: when set, read only this many pages per file, chosen with ``seed``
            (a faster scan); by default every page.
        seed: seed of the page choice.
        workers: processes used to extract text.
    """
    files = list(files) if files is not None else read_dev_files(shared)
    rng = random.Random(seed)
    jobs: list[tuple[str, str, list[int] | None]] = []
    for file in files:
        path = shared / "ofsted" / file
        pages: list[int] | None = None
        if pages_per_file is not None:
            import pypdfium2

            document = pypdfium2.PdfDocument(str(path))
            n_pages = len(document)
            document.close()
            # Skip the cover and the contents: page 1 and 2 hold no findings.
            body = list(range(3, n_pages + 1)) or list(range(1, n_pages + 1))
            pages = sorted(rng.sample(body, min(pages_per_file, len(body))))
        jobs.append((str(path), file, pages))

    started = time.perf_counter()
    result = ScanResult(files=len(files))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            outputs = list(pool.map(_scan_file, jobs))
    else:
        outputs = [_scan_file(job) for job in jobs]
    for found, read in outputs:
        result.sentences.extend(found)
        result.pages += read
    result.seconds = time.perf_counter() - started
    return result


def save_scan(scan: ScanResult, path: Path) -> None:
    """Cache a scan's ``(locator, text)`` pairs as JSON lines (first line: the scan's counts).

    The cache holds real text, so ``path`` must lie outside the project.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        head = {"files": scan.files, "pages": scan.pages, "seconds": scan.seconds}
        out.write(json.dumps(head) + "\n")
        for loc, text in scan.sentences:
            out.write(json.dumps({**asdict(loc), "text": text}, ensure_ascii=False) + "\n")


def load_scan(path: Path) -> ScanResult:
    """A scan cached by :func:`save_scan`."""
    rows = read_jsonl(path)
    if not rows or "pages" not in rows[0]:
        raise ValueError(f"{path} is not a scan cache: its first line lacks the scan counts.")
    head, body = rows[0], rows[1:]
    return ScanResult(
        sentences=[(Locator.from_row(row), str(row["text"])) for row in body],
        files=int(head["files"]),
        pages=int(head["pages"]),
        seconds=float(head["seconds"]),
    )


def _round_robin(
    queues: dict[str, list[int]], quotas: dict[str, int], take: Callable[[int, str], bool], kind: str
) -> None:
    """Offer each theme's queue to ``take`` in turn, one accepted sentence per theme per round, until
    every quota is met or queue used up; ``take`` gets the pool name ``<kind>:<theme>``.

    Round-robin so that no theme uses up a file's allowance before the others.
    """
    got = dict.fromkeys(queues, 0)
    cursors = dict.fromkeys(queues, 0)
    while any(got[t] < quotas[t] and cursors[t] < len(queues[t]) for t in queues):
        for theme, queue in queues.items():
            while got[theme] < quotas[theme] and cursors[theme] < len(queue):
                index = queue[cursors[theme]]
                cursors[theme] += 1
                if take(index, f"{kind}:{theme}"):
                    got[theme] += 1
                    break


def select_candidates(
    sentences: Sequence[tuple[Locator, str]],
    n: int = 480,
    topic_share: float = 0.55,
    max_per_file: int = 4,
    min_files: int = 100,
    seed: int = DEVSET_SEED,
) -> list[Candidate]:
    """Draw about ``n`` candidates: ``topic_share`` by topic words (even over the four core
    themes), the rest at random from all prose sentences; at most ``max_per_file`` per file.

    Sentences found in three or more files (boilerplate) are left out; so are repeats.

    Returns candidates ordered by file, page and offset. Raises ``ValueError`` when fewer than
    ``min_files`` files are represented.
    """
    rng = random.Random(seed)
    # Boilerplate (the same sentence in three or more reports) is not findings prose.
    files_of_hash: dict[str, set[str]] = defaultdict(set)
    for loc, _ in sentences:
        files_of_hash[loc.sha1].add(loc.file)
    order = [i for i, (loc, _) in enumerate(sentences) if len(files_of_hash[loc.sha1]) < 3]
    rng.shuffle(order)
    per_file: dict[str, int] = defaultdict(int)
    chosen: dict[int, str] = {}
    seen_hashes: set[str] = set()

    def take(index: int, pool: str) -> bool:
        loc, _ = sentences[index]
        if index in chosen or per_file[loc.file] >= max_per_file or loc.sha1 in seen_hashes:
            return False
        chosen[index] = pool
        per_file[loc.file] += 1
        seen_hashes.add(loc.sha1)  # boilerplate repeats across reports: keep one copy
        return True

    n_topic = round(n * topic_share)
    themes = list(TOPIC_PATTERNS)
    queues = {
        theme: [i for i in order if TOPIC_PATTERNS[theme].search(normalise(sentences[i][1]))]
        for theme in themes
    }
    quota = {
        theme: n_topic // len(themes) + (k < n_topic % len(themes))
        for k, theme in enumerate(themes)
    }
    _round_robin(queues, quota, take, "topic")
    for index in order:
        if len(chosen) >= n:
            break
        take(index, "random")

    files = {sentences[i][0].file for i in chosen}
    if len(files) < min_files:
        raise ValueError(
            f"The candidates come from {len(files)} files; at least {min_files} are required "
            "(scan more files or pages)."
        )
    picked = sorted(
        chosen,
        key=lambda i: (sentences[i][0].file, sentences[i][0].page, sentences[i][0].char_start),
    )
    return [Candidate(sentences[i][0], sentences[i][1], chosen[i]) for i in picked]


#: Criticism cues of the targeted dev set: a sentence holding one may report a failing.
CRITICISM_RE = re.compile(
    r"\b(?:not|no|too|lack\w*|insufficient\w*|inconsistent\w*|weak\w*|poor\w*|limited|"
    r"delay\w*|drift\w*|variable|rarely|over-reliance|without)\b"
)

#: Topic words of the targeted dev set: :data:`TOPIC_PATTERNS` widened for optimism and
#: narrowed for written agreements (whose failing needs a written plan or agreement).
TARGETED_TOPIC_PATTERNS: dict[str, re.Pattern[str]] = {
    "optimism_bias": re.compile(
        TOPIC_PATTERNS["optimism_bias"].pattern[:-1]
        + r"|over-optimis|start again|fresh start|short-lived|not sustained|closed too early|"
        r"step(?:s|ped|ping)? down|step-down)"
    ),
    "weak_risk_assessment": TOPIC_PATTERNS["weak_risk_assessment"],
    "poor_information_sharing": TOPIC_PATTERNS["poor_information_sharing"],
    "written_agreements": TOPIC_PATTERNS["written_agreements"],
}

#: Phrases that name a core theme's failing more closely than its topic words; sentences
#: holding one are drawn first, so that the set finds as many real positives as exist.
STRONG_TOPIC_PATTERNS: dict[str, re.Pattern[str]] = {
    "optimism_bias": re.compile(
        r"\b(?:over-optimis|optimis|overly positive|hope|face value|self-report|start again|"
        r"fresh start|short-lived|not sustained|sustained change|sustainab|closed too|"
        r"prematur|step(?:s|ped|ping)? down|step-down|re-referr|repeat|second or subsequent|"
        r"subsequent (?:period|plan)|disguised|reassur|too early|too soon|too quickly)"
    ),
    "weak_risk_assessment": re.compile(
        r"\b(?:risk assessment|assessments? of risk|analys|histor|chronolog|contingenc|"
        r"threshold|reassess|re-assess|not updated|cumulative|risks? (?:is|are|were|was) not)"
    ),
    "poor_information_sharing": re.compile(
        r"\b(?:information[- ]shar|shar\w* (?:of )?(?:relevant |key )?information|"
        r"information (?:is|was|are|were) (?:not )?(?:shared|passed|exchanged)|"
        r"exchange of information|strategy (?:discussion|meeting)|notif|mash\b|"
        r"communication between|gps?\b|police)"
    ),
    "written_agreements": re.compile(
        r"\b(?:written agreement|working agreement|safety plan|contract|agreements?\b|"
        r"family plan|expectations? (?:letter|document))"
    ),
}


def select_targeted(
    sentences: Sequence[tuple[Locator, str]],
    exclude: Iterable[Locator] = (),
    per_theme: int = 80,
    praise: int = 80,
    max_per_file: int = 3,
    seed: int = DEVSET_SEED,
) -> list[Candidate]:
    """Draw a targeted dev set: likely positives and the praise that looks like them.

    For each core theme, up to ``per_theme`` sentences holding the theme's topic words
    (:data:`TARGETED_TOPIC_PATTERNS`) and a criticism cue (:data:`CRITICISM_RE`), pool
    ``"cue:<theme>"``; then ``praise`` sentences holding topic words and no cue, pool
    ``"praise:<theme>"`` (even over the themes). In each pool, sentences holding one of the
    theme's :data:`STRONG_TOPIC_PATTERNS` come first, in seeded random order, then the rest.

    Boilerplate (the same sentence in three or more files), repeats and sentences that overlap
    an ``exclude`` locator (an earlier dev set) are left out; at most ``max_per_file`` a file.

    Returns candidates ordered by file, page and offset.
    """
    rng = random.Random(seed)
    files_of_hash: dict[str, set[str]] = defaultdict(set)
    for loc, _ in sentences:
        files_of_hash[loc.sha1].add(loc.file)
    excluded_spans: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    excluded_hashes: set[str] = set()
    for loc in exclude:
        excluded_spans[(loc.file, loc.page)].append((loc.char_start, loc.char_end))
        excluded_hashes.add(loc.sha1)

    def allowed(loc: Locator) -> bool:
        if len(files_of_hash[loc.sha1]) >= 3 or loc.sha1 in excluded_hashes:
            return False
        spans = excluded_spans.get((loc.file, loc.page), [])
        return not any(s < loc.char_end and loc.char_start < e for s, e in spans)

    order = [i for i, (loc, _) in enumerate(sentences) if allowed(loc)]
    rng.shuffle(order)
    flats = {i: normalise(sentences[i][1]) for i in order}
    per_file: dict[str, int] = defaultdict(int)
    chosen: dict[int, str] = {}
    seen_hashes: set[str] = set()

    def take(index: int, pool: str) -> bool:
        loc, _ = sentences[index]
        if index in chosen or per_file[loc.file] >= max_per_file or loc.sha1 in seen_hashes:
            return False
        chosen[index] = pool
        per_file[loc.file] += 1
        seen_hashes.add(loc.sha1)
        return True

    def queue(theme: str, cue: bool) -> list[int]:
        topical = [
            i
            for i in order
            if TARGETED_TOPIC_PATTERNS[theme].search(flats[i])
            and bool(CRITICISM_RE.search(flats[i])) == cue
        ]
        strong = [i for i in topical if STRONG_TOPIC_PATTERNS[theme].search(flats[i])]
        strong_set = set(strong)
        return strong + [i for i in topical if i not in strong_set]

    themes = list(CORE_THEMES)
    # Written agreements are rarest: they choose first so that no other pool takes them.
    themes.sort(key=lambda t: t != "written_agreements")

    def draw(kind: str, quotas: dict[str, int]) -> None:
        _round_robin({t: queue(t, kind == "cue") for t in themes}, quotas, take, kind)

    draw("cue", dict.fromkeys(themes, per_theme))
    draw(
        "praise",
        {t: praise // len(themes) + (k < praise % len(themes)) for k, t in enumerate(themes)},
    )
    picked = sorted(
        chosen,
        key=lambda i: (sentences[i][0].file, sentences[i][0].page, sentences[i][0].char_start),
    )
    return [Candidate(sentences[i][0], sentences[i][1], chosen[i]) for i in picked]


#: Words that mark a seeds sentence as speaking about a core theme or its absence, beyond
#: :data:`TOPIC_PATTERNS`.
_SEED_EXTRA_RE = re.compile(
    r"\b(?:optimistic|hopeful|face value|reassur|analys|critical|fault line|exchange|"
    r"judgement|escalat|challenge|curios|overly|stubborn|theme|histor|explor|track|joined.up|"
    r"minimis|changed|worked well|seamless|together)"
)


def select_seed_candidates(shared: Path) -> list[Candidate]:
    """Every sentence of ``shared/seeds/*.txt`` that speaks about a core theme's topic.

    Topic words are those of :data:`TOPIC_PATTERNS` plus words the press uses for the themes
    or their absence ("optimistic", "exchange", "analysis", "history", "not tracked", "joined
    up", "working together"). Sentences that mention a topic
    without its failing are kept as hard negatives.
    """
    out: list[Candidate] = []
    for path in sorted((shared / "seeds").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for s, e in split_sentences(text):
            piece = text[s:e]
            flat = normalise(piece)
            if len(flat) < 20 or len(flat.split()) < 4:
                continue
            topics = topics_of(piece)
            if not topics and not _SEED_EXTRA_RE.search(flat):
                continue
            pool = f"topic:{topics[0]}" if topics else "topic:other"
            out.append(Candidate(Locator.of("seeds", path.name, 0, text, s, e), piece, pool))
    return out


def write_candidates(candidates: Sequence[Candidate], locator_path: Path, text_path: Path) -> None:
    """Write locators (no text) to ``locator_path`` and id + text to ``text_path``.

    ``text_path`` is for annotators only and must lie outside the project.
    """
    locator_path.parent.mkdir(parents=True, exist_ok=True)
    text_path.parent.mkdir(parents=True, exist_ok=True)
    with locator_path.open("w", encoding="utf-8") as out:
        for cand in candidates:
            row = {"id": cand.id, **asdict(cand.locator), "pool": cand.pool}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    with text_path.open("w", encoding="utf-8") as out:
        for cand in candidates:
            out.write(json.dumps({"id": cand.id, "text": cand.text}, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file; a bad line raises naming file and line."""
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {number} is not valid JSON: {exc.msg}.") from exc
    return rows


#: Which label file of a real set counts, best first: the adjudicated gold file, else annotator a's.
LABEL_FILE_PREFERENCE = ("gold", "a")


def real_label_file(stem: str) -> str:
    """The label file of a real set to use: ``<stem>.gold`` when adjudicated, else ``<stem>.a``."""
    for suffix in LABEL_FILE_PREFERENCE:
        if (REAL_LABELS_DIR / f"{stem}.{suffix}.jsonl").is_file():
            return f"{stem}.{suffix}"
    raise FileNotFoundError(f"No label file for the real set {stem!r} in {REAL_LABELS_DIR}.")


def load_real_labels(name: str, shared: Path | None = None) -> pd.DataFrame:
    """A real-text label file with its texts rebuilt from the shared folder.

    Args:
        name: the file stem under ``corpus/labels/real``, e.g. ``"ofsted_dev.a"`` or ``"seeds.a"``.
        shared: the shared folder; by default :func:`themes.config.shared_dir`.

    Returns:
        Columns ``id, text, labels`` (a list), the locator fields and ``annotator``; rows whose
        text cannot be rebuilt are dropped with one warning giving their count.
    """
    path = REAL_LABELS_DIR / f"{name}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"No real label file {path}; expected e.g. 'ofsted_dev.a'.")
    rows = read_jsonl(path)
    locators = [Locator.from_row(row) for row in rows]
    texts = rebuild(locators, shared)
    records = []
    for row, loc, text in zip(rows, locators, texts, strict=True):
        if text is None:
            continue
        records.append(
            {
                "id": row.get("id", loc.id),
                "text": text,
                "labels": list(row.get("labels", [])),
                **asdict(loc),
                "annotator": row.get("annotator", ""),
            }
        )
    dropped = len(rows) - len(records)
    if dropped:
        warnings.warn(f"{name}: dropped {dropped} of {len(rows)} rows whose text was not rebuilt.")
    columns = ["id", "text", "labels", *LOCATOR_FIELDS, "annotator"]
    return pd.DataFrame.from_records(records, columns=columns)


# --------------------------------------------------------------------------------------------
# Adjudication: two annotators' labels and an adjudicator's decisions make one gold file
# --------------------------------------------------------------------------------------------

#: The adjudicator's decisions on the rows where annotators a and b disagree, one file per set:
#: ``{"id", "labels", "rule", "chose"}`` (no text). Rules are written out in the codebook.
ADJUDICATION_DIR = REAL_LABELS_DIR / "adjudication"


def build_gold(
    a_rows: Sequence[Mapping[str, Any]],
    b_rows: Sequence[Mapping[str, Any]],
    decisions: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One gold row per item: the agreed labels where a and b agree, the decision where they differ.

    Rows keep annotator a's locator fields and order and get ``annotator: "gold"``.

    Raises:
        ValueError: when the two files do not hold the same ids, or a disagreement has no decision.
    """
    a = {str(r["id"]): r for r in a_rows}
    b = labels_by_id(b_rows)
    if set(a) != set(b):
        raise ValueError(f"Annotators a and b labelled different items ({len(set(a) ^ set(b))} differ).")
    decided = {str(d["id"]): sorted(d["labels"]) for d in decisions}
    gold = []
    for item_id, row in a.items():
        agreed = set(row["labels"]) == b[item_id]
        if not agreed and item_id not in decided:
            raise ValueError(f"Item {item_id!r}: annotators disagree and there is no adjudication decision.")
        labels = sorted(row["labels"]) if agreed else decided[item_id]
        unknown = set(labels) - set(CORE_THEMES)
        if unknown:
            raise ValueError(f"Item {item_id!r}: decision names non-core themes {sorted(unknown)}.")
        gold.append({**{k: row[k] for k in ("id", *LOCATOR_FIELDS)}, "labels": labels, "annotator": "gold"})
    return gold


def write_gold(stem: str) -> Path:
    """Write ``<stem>.gold.jsonl`` from ``<stem>.a``, ``<stem>.b`` and ``adjudication/<stem>.jsonl``."""
    gold = build_gold(
        read_jsonl(REAL_LABELS_DIR / f"{stem}.a.jsonl"),
        read_jsonl(REAL_LABELS_DIR / f"{stem}.b.jsonl"),
        read_jsonl(ADJUDICATION_DIR / f"{stem}.jsonl"),
    )
    path = REAL_LABELS_DIR / f"{stem}.gold.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in gold), encoding="utf-8")
    tmp.replace(path)
    return path


def agreement(stem: str) -> pd.DataFrame:
    """Per core theme: Cohen's kappa a–b (before adjudication) and a–gold, b–gold (after)."""
    rows = {who: read_jsonl(REAL_LABELS_DIR / f"{stem}.{who}.jsonl") for who in ("a", "b", "gold")}
    pairs = {"a-b": ("a", "b"), "a-gold": ("a", "gold"), "b-gold": ("b", "gold")}
    table = {name: cohen_kappa_by_theme(rows[x], rows[y]) for name, (x, y) in pairs.items()}
    out = pd.DataFrame(table).T.round(2)
    out.insert(0, "n", len(rows["gold"]))
    out["positives (gold)"] = sum(bool(r["labels"]) for r in rows["gold"])
    return out
