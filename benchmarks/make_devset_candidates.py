"""Draw the real-text dev set candidates (locators only) from ../shared, timing the scan.

Writes ``corpus/labels/real/ofsted_dev.candidates.jsonl`` and ``seeds.candidates.jsonl``
(locators, no text) and, for annotators only, the sentence texts to ``/tmp/devset/`` (outside
the project: real text is never committed).

Run: ``.venv/bin/python benchmarks/make_devset_candidates.py [--pages-per-file N] [--workers 2]``

The committed candidate files were drawn on 2026-11-23 (seed 20261122, full scan) with the
splitter of commit 9dd2b93 plus the seeds word list now in ``devset_candidates.py``; annotators
labelled exactly those. The splitter (now ``themes.segment.split_sentences``) has since learned
square bullets and numbered-paragraph breaks, so a new run draws a different set: it refuses to overwrite labelled candidates without
``--force`` (and then every label file of that set must be redone).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from devset_candidates import (
    DEVSET_SEED,
    scan_ofsted,
    select_candidates,
    select_seed_candidates,
    write_candidates,
)

from themes.config import shared_dir
from themes.devset import REAL_LABELS_DIR

TEXT_DIR = Path("/tmp/devset")


def main() -> int:
    """Scan, select and write the candidates; print counts and the scan time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=480, help="Ofsted candidates to draw.")
    parser.add_argument(
        "--pages-per-file",
        type=int,
        default=None,
        help="Scan only this many seeded pages per file (default: all pages).",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=DEVSET_SEED)
    parser.add_argument(
        "--force", action="store_true", help="Overwrite existing candidate files (labels break)."
    )
    args = parser.parse_args()

    targets = [REAL_LABELS_DIR / f"{n}.candidates.jsonl" for n in ("ofsted_dev", "seeds")]
    existing = [t for t in targets if t.exists()]
    if existing and not args.force:
        print(
            f"{existing[0]} exists and annotators label its ids; pass --force to draw anew.",
            file=sys.stderr,
        )
        return 1

    shared = shared_dir()
    if shared is None:
        print("No ../shared folder: nothing to draw candidates from.", file=sys.stderr)
        return 1

    scan = scan_ofsted(
        shared, pages_per_file=args.pages_per_file, seed=args.seed, workers=args.workers
    )
    print(
        f"scan: {scan.files} files, {scan.pages} pages, {len(scan.sentences)} prose sentences "
        f"in {scan.seconds:.1f} s ({scan.pages / max(scan.seconds, 1e-9):.1f} pages/s)"
    )
    ofsted = select_candidates(scan.sentences, n=args.n, seed=args.seed)
    write_candidates(
        ofsted,
        REAL_LABELS_DIR / "ofsted_dev.candidates.jsonl",
        TEXT_DIR / "ofsted_candidates_text.jsonl",
    )
    pools = Counter(c.pool for c in ofsted)
    files = Counter(c.locator.file for c in ofsted)
    print(
        f"ofsted: {len(ofsted)} candidates from {len(files)} files "
        f"(max {max(files.values())} per file); pools {dict(sorted(pools.items()))}"
    )

    seeds = select_seed_candidates(shared)
    write_candidates(
        seeds, REAL_LABELS_DIR / "seeds.candidates.jsonl", TEXT_DIR / "seeds_candidates_text.jsonl"
    )
    print(f"seeds: {len(seeds)} candidates from {len({c.locator.file for c in seeds})} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
