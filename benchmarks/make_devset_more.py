"""Draw the fourth real-text set (locators only): more sharing and optimism failings.

After the first three sets the real training and held-out sentences held 369 positives for
weak risk assessment but only 124 for poor information sharing and 32 for optimism bias (issue 12
asks for 150 of each where the reports contain them). This set draws, from the sentences of the
Ofsted dev files that no earlier set holds, more of the same failing phrasings for those two themes
(``make_devset_search.PHRASES``), a few of their topic sentences without such a phrase (real hard
negatives) and a small random draw (the check on what the search favours). Boilerplate and repeats
are left out; at most ``--max-per-file`` sentences come from one report.

Writes ``corpus/labels/real/ofsted_more.candidates.jsonl`` (locators, no text) and, for
annotators only, the texts to ``/tmp/devset/ofsted_more_text.jsonl``. Reuses the scan cache
``/tmp/devset2/scan.jsonl`` of the earlier draws, or scans and writes it.

Run: ``.venv/bin/python benchmarks/make_devset_more.py [--workers 2] [--force]``
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from devset_candidates import DEVSET_SEED, cached_scan, draw_refusal, write_candidates
from make_devset_search import CACHE_PATH, select_search

from themes.config import shared_dir
from themes.devset import REAL_LABELS_DIR, Locator, read_jsonl

TEXT_PATH = Path("/tmp/devset/ofsted_more_text.jsonl")
EARLIER_SETS = ("ofsted_dev", "ofsted_targeted", "ofsted_search")


def earlier_locators() -> list[Locator]:
    """Locators of every sentence already in an earlier real set."""
    out = []
    for name in EARLIER_SETS:
        out += [Locator.from_row(row) for row in read_jsonl(REAL_LABELS_DIR / f"{name}.candidates.jsonl")]
    return out


def main() -> int:
    """Scan (or load the cached scan), select and write the candidates; print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sharing", type=int, default=170)
    parser.add_argument("--optimism", type=int, default=90)
    parser.add_argument("--topic", type=int, default=15, help="Topic sentences per theme.")
    parser.add_argument("--random", type=int, default=30)
    parser.add_argument("--max-per-file", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=DEVSET_SEED + 4)
    parser.add_argument("--cache", type=Path, default=CACHE_PATH)
    parser.add_argument("--force", action="store_true", help="Overwrite existing candidates.")
    args = parser.parse_args()

    target = REAL_LABELS_DIR / "ofsted_more.candidates.jsonl"
    refusal = draw_refusal(target, args.force)
    if refusal:
        print(refusal, file=sys.stderr)
        return 1
    scan = cached_scan(shared_dir(), args.cache, args.workers)
    quotas = {"optimism_bias": args.optimism, "poor_information_sharing": args.sharing,
              "weak_risk_assessment": 0, "written_agreements": 0}
    # Topic sentences of the two themes only: the other two already have plenty of real negatives.
    candidates = select_search(scan.sentences, earlier_locators(), quotas, args.topic, args.random,
                               args.max_per_file, args.seed)
    candidates = [c for c in candidates if not c.pool.startswith(("topic:weak", "topic:written"))]
    write_candidates(candidates, target, TEXT_PATH)
    print(f"{len(candidates)} candidates from {len({c.locator.file for c in candidates})} files")
    for pool, n in sorted(Counter(c.pool for c in candidates).items()):
        print(f"  {pool}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
