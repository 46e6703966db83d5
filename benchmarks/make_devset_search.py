"""Draw the third real-text set (locators only): every way inspectors state each core failing.

The first two sets (``ofsted_dev``, ``ofsted_targeted``) found 18 real positives for optimism bias,
44 for poor information sharing and 4 for written agreements: too few to train or measure a
classifier on real prose. This set searches the whole scan of the Ofsted dev files for the
phrasings inspectors use when they state a failing ("over-optimistic", "not always shared",
"risk is not fully understood", "contracts of expectation", ...), and adds the same themes'
topic sentences without such a phrase (real hard negatives) and a random draw (the check on what
the search favours). Sentences already in an earlier set, boilerplate (in three or more reports)
and repeats are left out; at most ``--max-per-file`` sentences come from one report, so that no
report dominates.

Pools: ``phrase:<theme>``, ``topic:<theme>`` and ``random``. Themes draw in round-robin order,
written agreements first (they are rarest).

Writes ``corpus/labels/real/ofsted_search.candidates.jsonl`` (locators, no text) and, for
annotators only, the texts to ``/tmp/devset/ofsted_search_text.jsonl``. Reuses the scan cache of
``make_devset_targeted.py`` (``/tmp/devset2/scan.jsonl``), or scans and writes it.

Run: ``.venv/bin/python benchmarks/make_devset_search.py [--workers 2] [--force]``

The committed candidates were drawn on 2026-12-05 (seed 20261122, full scan of the 267 dev
files); annotators labelled exactly those, so the script refuses to overwrite them without
``--force``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from devset_candidates import (
    DEVSET_SEED,
    TARGETED_TOPIC_PATTERNS,
    Candidate,
    Draw,
    cached_scan,
    draw_refusal,
    round_robin,
    write_candidates,
)

from themes.config import CORE_THEMES, shared_dir
from themes.devset import REAL_LABELS_DIR, Locator, normalise, read_jsonl

TEXT_PATH = Path("/tmp/devset/ofsted_search_text.jsonl")
CACHE_PATH = Path("/tmp/devset2/scan.jsonl")
EARLIER_SETS = ("ofsted_dev", "ofsted_targeted")

#: How inspectors state each failing. A hit is a likely positive, not a label: annotators decide.
PHRASES: dict[str, re.Pattern[str]] = {
    "optimism_bias": re.compile(
        r"over-?optimis|overly optimis|too optimis|unduly optimis|unrealistic|optimism|"
        r"overly positive|too positive|face value|too readily|accept(?:s|ed|ing)? (?:parents?'?s?|"
        r"the parents?'?s?|carers?'?) (?:account|explanation|assurance|word|view)|"
        r"not sustained|unsustain|sustain\w* (?:change|improvement)|short-lived|fresh start|"
        r"start again|clos\w* (?:too|prematurely|before)|prematur\w*|"
        r"step\w* down (?:too|before|prematurely|without)|too (?:quickly|soon|early)|"
        r"without (?:evidence|testing|checking)|re-?referr|repeat(?:ed)? referral|drift|"
        r"disguised compliance|self-report|reassur|hopeful|benefit of the doubt"
    ),
    "weak_risk_assessment": re.compile(
        r"risks? (?:is|are|was|were|has|have) not (?:\w+ )?(?:understood|assessed|identified|"
        r"analysed|considered|recognised|reduced|addressed)|assessments? (?:do|does|did) not|"
        r"assessments? (?:are|were|is|was) (?:not|too|weak|poor|superficial|variable|"
        r"inconsistent|of variable)|(?:lack|absence) of (?:\w+ )?analysis|"
        r"(?:insufficient|limited|little|weak|poor) (?:\w+ )?analysis|histor\w* (?:is|was|are|"
        r"were) not|not (?:fully |always |sufficiently |consistently )?(?:assessed|analysed|"
        r"updated|reviewed|considered|recognised)|cumulative|contingency|"
        r"(?:weak|poor|inconsistent|variable) (?:risk )?assessments?|poorly (?:assessed|"
        r"analysed|understood)|superficial|decision-?making (?:is|was) (?:not|weak|poor|"
        r"inconsistent|slow)|decisions (?:are|were) not"
    ),
    "poor_information_sharing": re.compile(
        r"information (?:is|was|are|were|has|have) not (?:\w+ )?(?:shared|passed|exchanged|"
        r"sought|communicated)|not (?:always |routinely |consistently |effectively |"
        r"systematically )?(?:shared|sharing)|(?:weak|poor|inconsistent|limited|variable|"
        r"delay\w*|gaps?) (?:in )?(?:information[- ]sharing|sharing of information|"
        r"communication|exchange of information)|information[- ]sharing (?:is|was|are|were) "
        r"(?:not|weak|poor|inconsistent|variable|limited|slow)|strategy (?:discussions?|"
        r"meetings?) (?:do|does|did|are|were|is|was) not|(?:police|health|schools?|gps?|"
        r"partners?|agencies|midwi\w+|probation) (?:are|were|is|was|do|does|did) not (?:always "
        r"|routinely |consistently )?(?:invited|involved|present|represented|informed|notified|"
        r"consulted|attend|share|contribute)|without (?:input|information|contribution)s? from|"
        r"notifications? (?:are|were|is|was) not|not (?:always )?(?:notified|informed|told)|"
        r"do not (?:always )?(?:communicate|share)"
    ),
    "written_agreements": re.compile(
        r"written agreement|working agreement|safety agreement|contracts? of expectation|"
        r"expectations? (?:letter|agreement|document)|(?:signed|written) (?:safety )?plan|"
        r"signed (?:agreement|contract)|agreements? with (?:parents|families|carers)|"
        r"parents? (?:signed|sign|to sign)|family agreement|\bcontracts?\b|written undertaking"
    ),
}

#: Inspectors seldom put a sharing failure in one phrase ("police do not attend strategy
#: discussions", "delays in ... information from health"), so a sharing topic word together with a
#: criticism cue also counts as a phrase hit for that theme.
SHARING_TOPIC = re.compile(
    r"shar|exchang|communicat|notif|strategy (?:discussion|meeting)|multi-agency|partner agenc|"
    r"\bpolice\b|\bgps?\b|health visit|midwi|attend"
)
CUE = re.compile(
    r"\b(?:not|no|too|lack\w*|insufficient\w*|inconsistent\w*|weak\w*|poor\w*|limited|"
    r"delay\w*|variable|rarely|without|gaps?)\b"
)

#: What each theme's topic sentences are drawn from: the targeted set's topic words.
TOPICS = TARGETED_TOPIC_PATTERNS


def phrase_hit(theme: str, flat: str) -> bool:
    """Whether a normalised sentence holds one of the theme's failing phrasings."""
    if PHRASES[theme].search(flat):
        return True
    return theme == "poor_information_sharing" and bool(SHARING_TOPIC.search(flat) and CUE.search(flat))


def earlier_locators() -> list[Locator]:
    """Locators of every sentence already in an earlier real set."""
    out = []
    for name in EARLIER_SETS:
        rows = read_jsonl(REAL_LABELS_DIR / f"{name}.candidates.jsonl")
        out += [Locator.from_row(row) for row in rows]
    return out


def select_search(
    sentences: list[tuple[Locator, str]],
    exclude: list[Locator],
    phrase_quota: dict[str, int],
    topic_quota: int,
    n_random: int,
    max_per_file: int,
    seed: int,
) -> list[Candidate]:
    """Phrase hits per theme, topic sentences without a phrase hit, then a random draw."""
    draw = Draw(sentences, max_per_file, seed, exclude)
    order, flat, take = draw.order, draw.flat, draw.take
    themes = sorted(CORE_THEMES, key=lambda t: t != "written_agreements")

    any_phrase = {i for i in order if any(phrase_hit(t, flat[i]) for t in themes)}
    round_robin({t: [i for i in order if phrase_hit(t, flat[i])] for t in themes},
                 phrase_quota, take, "phrase")
    round_robin({t: [i for i in order if TOPICS[t].search(flat[i]) and i not in any_phrase]
                  for t in themes}, dict.fromkeys(themes, topic_quota), take, "topic")
    drawn = 0
    for i in order:
        if drawn >= n_random:
            break
        drawn += take(i, "random")
    return draw.candidates()


def main() -> int:
    """Scan (or load the cached scan), select and write the candidates; print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimism", type=int, default=380)
    parser.add_argument("--sharing", type=int, default=380)
    parser.add_argument("--risk", type=int, default=260)
    parser.add_argument("--agreements", type=int, default=250)
    parser.add_argument("--topic", type=int, default=90, help="Topic sentences per theme.")
    parser.add_argument("--random", type=int, default=800)
    parser.add_argument("--max-per-file", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=DEVSET_SEED)
    parser.add_argument("--cache", type=Path, default=CACHE_PATH)
    parser.add_argument("--force", action="store_true", help="Overwrite existing candidates.")
    args = parser.parse_args()

    target = REAL_LABELS_DIR / "ofsted_search.candidates.jsonl"
    refusal = draw_refusal(target, args.force)
    if refusal:
        print(refusal, file=sys.stderr)
        return 1
    scan = cached_scan(shared_dir(), args.cache, args.workers)
    quotas = {"optimism_bias": args.optimism, "poor_information_sharing": args.sharing,
              "weak_risk_assessment": args.risk, "written_agreements": args.agreements}
    candidates = select_search(scan.sentences, earlier_locators(), quotas, args.topic,
                               args.random, args.max_per_file, args.seed)
    write_candidates(candidates, target, TEXT_PATH)
    available = Counter()
    for _, text in scan.sentences:
        for theme in PHRASES:
            available[theme] += phrase_hit(theme, normalise(text))
    print(f"scan: {scan.files} files, {scan.pages} pages, {len(scan.sentences)} prose sentences")
    print("phrase hits in the scan:", dict(available))
    print(f"{len(candidates)} candidates from {len({c.locator.file for c in candidates})} files")
    for pool, n in sorted(Counter(c.pool for c in candidates).items()):
        print(f"  {pool}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
