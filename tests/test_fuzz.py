"""A small fixed-seed slice of ``benchmarks/fuzz.py``: mutated PDFs never crash or hang ingest."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def test_fuzz_mutated_pdfs_never_crash_or_hang_the_run() -> None:
    sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed; its reader function must import
    from benchmarks import fuzz

    seeds = sorted(DATA.glob("*.pdf"))
    result = fuzz.run(n=20, seed=11, seeds=seeds, timeout_s=30.0, workers=2, batch=20)
    assert result.n == 20
    assert result.crashes == []
    assert result.hangs == 0
    assert set(result.by_kind) <= set(fuzz.KINDS)
