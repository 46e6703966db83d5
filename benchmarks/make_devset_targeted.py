"""Draw the targeted real-text dev set (locators only): likely positives and look-alike praise.

The first dev set (``ofsted_dev``) drew its sentences partly at random and holds too few
real positives for optimism bias, information sharing and written agreements to measure a
classifier per theme. This one draws, from the Ofsted dev files only, for each core theme
about 80 sentences holding the theme's topic words and a criticism cue, plus about 80 topic
sentences with no cue (praise: real hard negatives); none already in ``ofsted_dev``, at most
three a file, fixed seed (see ``select_targeted`` in ``devset_candidates.py``).

Writes ``corpus/labels/real/ofsted_targeted.candidates.jsonl`` (locators, no text) and, for
annotators only, the texts to ``/tmp/devset/ofsted_targeted_text.jsonl``. The scan's
``(locator, text)`` pairs are cached in ``/tmp/devset2/scan.jsonl`` (outside the project: they
hold real text); a second run reuses the cache.

Run: ``.venv/bin/python benchmarks/make_devset_targeted.py [--workers 2] [--force]``

The committed candidates were drawn on 2026-11-23 (seed 20261122, full scan of the 267 dev
files); annotators labelled exactly those, so the script refuses to overwrite them without
``--force``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from devset_candidates import (
    DEVSET_SEED,
    load_scan,
    save_scan,
    scan_ofsted,
    select_targeted,
    write_candidates,
)

from themes.config import shared_dir
from themes.devset import REAL_LABELS_DIR, Locator, read_jsonl

TEXT_PATH = Path("/tmp/devset/ofsted_targeted_text.jsonl")
CACHE_PATH = Path("/tmp/devset2/scan.jsonl")


def main() -> int:
    """Scan (or load the cached scan), select and write the candidates; print counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-theme", type=int, default=80, help="Cue sentences per theme.")
    parser.add_argument("--praise", type=int, default=80, help="Praise sentences in all.")
    parser.add_argument("--max-per-file", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=DEVSET_SEED)
    parser.add_argument("--cache", type=Path, default=CACHE_PATH)
    parser.add_argument(
        "--force", action="store_true", help="Overwrite existing candidates (labels break)."
    )
    args = parser.parse_args()

    target = REAL_LABELS_DIR / "ofsted_targeted.candidates.jsonl"
    if target.exists() and not args.force:
        print(f"{target} exists and annotators label its ids; pass --force.", file=sys.stderr)
        return 1
    shared = shared_dir()
    if shared is None:
        print("No ../shared folder: nothing to draw candidates from.", file=sys.stderr)
        return 1

    if args.cache.is_file():
        scan = load_scan(args.cache)
        print(f"scan loaded from {args.cache}")
    else:
        scan = scan_ofsted(shared, workers=args.workers)
        save_scan(scan, args.cache)
    print(
        f"scan: {scan.files} files, {scan.pages} pages, {len(scan.sentences)} prose sentences "
        f"in {scan.seconds:.1f} s ({scan.pages / max(scan.seconds, 1e-9):.1f} pages/s)"
    )

    previous = [
        Locator.from_row(row) for row in read_jsonl(REAL_LABELS_DIR / "ofsted_dev.candidates.jsonl")
    ]
    candidates = select_targeted(
        scan.sentences,
        exclude=previous,
        per_theme=args.per_theme,
        praise=args.praise,
        max_per_file=args.max_per_file,
        seed=args.seed,
    )
    write_candidates(candidates, target, TEXT_PATH)
    pools = Counter(c.pool for c in candidates)
    files = Counter(c.locator.file for c in candidates)
    print(
        f"targeted: {len(candidates)} candidates from {len(files)} files "
        f"(max {max(files.values())} per file); pools {dict(sorted(pools.items()))}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
