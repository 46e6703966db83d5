"""Drawing real-text sentences for labelling: a one-off, kept to redraw or extend the dev sets.

The package (:mod:`themes.devset`) only locates, rebuilds and reads labelled sentences; this module
is how they were chosen: scan the Ofsted dev files for prose sentences (split by the project's one
splitter, :func:`themes.segment.split_sentences`), then draw candidates by topic words, criticism
cues and phrasings, never more than a few a report. Used by ``make_devset_candidates.py``,
``make_devset_targeted.py`` and ``make_devset_search.py`` beside it.
"""

from __future__ import annotations

import json
import random
import re
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from themes.config import CORE_THEMES, shared_dir
from themes.devset import Locator, normalise, page_text_of, read_jsonl
from themes.segment import split_sentences

#: Fixed seed of the candidate selection, so the dev set can be drawn again identically.
DEVSET_SEED = 20261122


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
                    text = page_text_of(pdf, page, path_str)
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


def cached_scan(shared: Path, cache: Path, workers: int = 2) -> ScanResult:
    """The scan cached at ``cache``, or a new scan of the dev files written there."""
    if cache.is_file():
        return load_scan(cache)
    scan = scan_ofsted(shared, workers=workers)
    save_scan(scan, cache)
    return scan


def draw_refusal(target: Path, force: bool) -> str | None:
    """Why a draw must not run (labelled candidates would be overwritten, or no ../shared), or None."""
    if target.exists() and not force:
        return f"{target} exists and has been labelled; pass --force to draw again."
    if shared_dir() is None:
        return "../shared is absent: the Ofsted reports are needed."
    return None


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


class Draw:
    """What every draw shares: which sentences may be drawn, in seeded order, and who was taken.

    Left out: boilerplate (the same sentence in three or more files) and sentences of an earlier
    set (``exclude``: same hash, or overlapping one of its spans). :meth:`take` keeps at most
    ``max_per_file`` sentences a file and one copy of each sentence.

    Args:
        sentences: ``(locator, text)`` pairs of a scan.
        max_per_file: most sentences drawn from one file.
        seed: seed of the order.
        exclude: locators of earlier sets.
    """

    def __init__(
        self,
        sentences: Sequence[tuple[Locator, str]],
        max_per_file: int,
        seed: int,
        exclude: Iterable[Locator] = (),
    ) -> None:
        self.sentences = sentences
        self.max_per_file = max_per_file
        files_of_hash: dict[str, set[str]] = defaultdict(set)
        for loc, _ in sentences:
            files_of_hash[loc.sha1].add(loc.file)
        spans: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
        hashes: set[str] = set()
        for loc in exclude:
            spans[(loc.file, loc.page)].append((loc.char_start, loc.char_end))
            hashes.add(loc.sha1)

        def allowed(loc: Locator) -> bool:
            if len(files_of_hash[loc.sha1]) >= 3 or loc.sha1 in hashes:
                return False
            return not any(s < loc.char_end and loc.char_start < e for s, e in spans.get((loc.file, loc.page), []))

        self.order = [i for i, (loc, _) in enumerate(sentences) if allowed(loc)]
        random.Random(seed).shuffle(self.order)
        self.flat = {i: normalise(sentences[i][1]) for i in self.order}
        self.per_file: dict[str, int] = defaultdict(int)
        self.chosen: dict[int, str] = {}
        self.seen: set[str] = set()

    def take(self, index: int, pool: str) -> bool:
        """Draw sentence ``index`` into ``pool`` unless taken, its file is full or its text was drawn."""
        loc = self.sentences[index][0]
        if index in self.chosen or self.per_file[loc.file] >= self.max_per_file or loc.sha1 in self.seen:
            return False
        self.chosen[index] = pool
        self.per_file[loc.file] += 1
        self.seen.add(loc.sha1)  # boilerplate repeats across reports: keep one copy
        return True

    def candidates(self) -> list[Candidate]:
        """The drawn sentences as candidates, ordered by file, page and offset."""
        def key(i: int) -> tuple[str, int, int]:
            loc = self.sentences[i][0]
            return (loc.file, loc.page, loc.char_start)

        return [Candidate(self.sentences[i][0], self.sentences[i][1], self.chosen[i])
                for i in sorted(self.chosen, key=key)]


def round_robin(
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
    draw = Draw(sentences, max_per_file, seed)
    n_topic = round(n * topic_share)
    themes = list(TOPIC_PATTERNS)
    queues = {theme: [i for i in draw.order if TOPIC_PATTERNS[theme].search(draw.flat[i])] for theme in themes}
    quota = {
        theme: n_topic // len(themes) + (k < n_topic % len(themes))
        for k, theme in enumerate(themes)
    }
    round_robin(queues, quota, draw.take, "topic")
    for index in draw.order:
        if len(draw.chosen) >= n:
            break
        draw.take(index, "random")

    files = {sentences[i][0].file for i in draw.chosen}
    if len(files) < min_files:
        raise ValueError(
            f"The candidates come from {len(files)} files; at least {min_files} are required "
            "(scan more files or pages)."
        )
    return draw.candidates()


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
    draw = Draw(sentences, max_per_file, seed, exclude)

    def queue(theme: str, cue: bool) -> list[int]:
        flats = draw.flat
        topical = [
            i
            for i in draw.order
            if TARGETED_TOPIC_PATTERNS[theme].search(flats[i])
            and bool(CRITICISM_RE.search(flats[i])) == cue
        ]
        strong = [i for i in topical if STRONG_TOPIC_PATTERNS[theme].search(flats[i])]
        strong_set = set(strong)
        return strong + [i for i in topical if i not in strong_set]

    themes = list(CORE_THEMES)
    # Written agreements are rarest: they choose first so that no other pool takes them.
    themes.sort(key=lambda t: t != "written_agreements")

    def pools(kind: str, quotas: dict[str, int]) -> None:
        round_robin({t: queue(t, kind == "cue") for t in themes}, quotas, draw.take, kind)

    pools("cue", dict.fromkeys(themes, per_theme))
    pools(
        "praise",
        {t: praise // len(themes) + (k < praise % len(themes)) for k, t in enumerate(themes)},
    )
    return draw.candidates()


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


