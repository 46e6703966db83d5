"""Fuzz ingestion: mutate real and sample PDFs and check that the run never crashes or hangs.

Seeds are the PDFs under ``../shared/pdf-corpus`` (under 2 MB each) plus the project's own sample
PDFs (``corpus/sample`` and ``tests/data``). Each mutated file gets one kind of damage:

- ``bitflip``: 1-32 random bits flipped;
- ``truncate``: cut at a random point between 5% and 95% of its length;
- ``duplicate_object``: one ``N G obj ... endobj`` copied to another object's place;
- ``delete_object``: one object removed;
- ``inflate_length``: one stream's ``/Length`` set to a huge or wrong value.

(A file with no plain objects to duplicate, delete or inflate, because they sit in compressed
object streams, gets a bit flip instead, and is counted as one.)

The files go through :func:`themes.ingest.ingest_many`, the same reader-process pool the pipeline
uses, in batches, with a per-document time limit. The run counts a *crash* when ingest raises or
a file comes back missing or with a status or error kind outside the contract, and a *hang* when
the pool goes longer than the time limit plus a grace period without answering. Peak memory is
the largest sum of resident memory of this process and its reader processes, sampled every 0.2 s.

Run::

    nice -n 10 .venv/bin/python benchmarks/fuzz.py               # 2,000 files
    nice -n 10 .venv/bin/python benchmarks/fuzz.py --n 200 --seed 1

Writes ``benchmarks/results/fuzz.md`` and ``fuzz.json``: files per mutation kind, statuses, peak
memory and the slowest file. Only file names and error kinds appear, never the files' text.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from themes.config import INGEST, shared_dir
from themes.ingest import ingest_many, ingest_pdf
from themes.types import ERROR_KINDS, Document

KINDS = ("bitflip", "truncate", "duplicate_object", "delete_object", "inflate_length")
_OBJECT = re.compile(rb"\d+\s+\d+\s+obj\b.*?endobj", re.DOTALL)
_LENGTH = re.compile(rb"/Length\s+\d+")
#: How much longer than the time limit the pool may stay silent before it counts as a hang.
HANG_GRACE_S = 15.0


def seed_files(max_bytes: int = 2_000_000) -> list[Path]:
    """The PDFs mutated: ../shared/pdf-corpus (when present) and the project's sample PDFs."""
    found = sorted((ROOT / "tests" / "data").glob("*.pdf")) + sorted((ROOT / "corpus" / "sample").glob("*.pdf"))
    shared = shared_dir()
    if shared is not None and (shared / "pdf-corpus").is_dir():
        found += sorted((shared / "pdf-corpus").rglob("*.pdf"))
    return [p for p in found if p.is_file() and 0 < p.stat().st_size <= max_bytes]


def _bitflip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 32)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def mutate(data: bytes, kind: str, rng: random.Random) -> tuple[bytes, str]:
    """``data`` damaged one way; returns the bytes and the kind actually applied."""
    if kind == "truncate":
        return data[: int(len(data) * rng.uniform(0.05, 0.95))], kind
    if kind == "inflate_length":
        lengths = list(_LENGTH.finditer(data))
        if lengths:
            m = rng.choice(lengths)
            value = rng.choice([2**31 - 1, 10**12, 0, int(m.group()[7:].strip() or 0) * 1000 + 7])
            return data[: m.start()] + b"/Length %d" % value + data[m.end():], kind
    elif kind in ("duplicate_object", "delete_object"):
        objects = list(_OBJECT.finditer(data))
        if objects:
            m = rng.choice(objects)
            if kind == "delete_object":
                return data[: m.start()] + data[m.end():], kind
            at = rng.choice(objects).start()
            return data[:at] + m.group() + b"\n" + data[at:], kind
    return _bitflip(data, rng), "bitflip"


def _timed_ingest(path: Path, settings: object) -> Document:
    """ingest_pdf, with its time in the child carried back on the Document (top level: picklable)."""
    started = time.monotonic()
    doc = ingest_pdf(path, settings)  # type: ignore[arg-type]
    doc.__dict__["seconds"] = time.monotonic() - started
    return doc


def _reader_func():  # type: ignore[no-untyped-def]
    """``_timed_ingest`` under a name the reader processes can import (not ``__main__``)."""
    if __name__ != "__main__":
        return _timed_ingest
    from benchmarks.fuzz import _timed_ingest as importable

    return importable


class _MemorySampler(threading.Thread):
    """Largest RSS sum of this process and all its descendants, sampled every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._halt.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._halt.wait(0.2)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


@dataclass
class Result:
    n: int = 0
    crashes: list[str] = field(default_factory=list)
    hangs: int = 0
    by_kind: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)  # (kind, status or error_kind)
    slowest: tuple[float, str] = (0.0, "")
    longest_silence_s: float = 0.0
    peak_rss: int = 0
    wall_s: float = 0.0


def _check(doc: Document, result: Result, kind: str) -> None:
    outcome = doc.status if doc.status == "ok" else str(doc.error_kind)
    if doc.status not in ("ok", "error") or (doc.status == "error" and doc.error_kind not in ERROR_KINDS):
        result.crashes.append(f"{doc.file}: status={doc.status} error_kind={doc.error_kind}")
    if doc.status == "error" and not doc.error:
        result.crashes.append(f"{doc.file}: error with no message")
    result.statuses[(kind, outcome)] += 1
    seconds = doc.__dict__.get("seconds")
    if seconds is not None and seconds > result.slowest[0]:
        result.slowest = (float(seconds), doc.file)


def run(
    n: int = 2000,
    seed: int = 0,
    seeds: Sequence[Path] | None = None,
    timeout_s: float = 30.0,
    workers: int = 2,
    batch: int = 100,
    max_memory_mb: int = INGEST.max_memory_mb,
) -> Result:
    """Mutate ``n`` files from ``seeds`` and ingest them; never raises for a bad file."""
    rng = random.Random(seed)
    seeds = list(seeds if seeds is not None else seed_files())
    if not seeds:
        raise SystemExit("no seed PDFs found")
    settings = replace(INGEST, timeout_s=timeout_s, max_memory_mb=max_memory_mb)
    result = Result()
    sampler = _MemorySampler()
    sampler.start()
    started = time.monotonic()
    try:
        for first in range(0, n, batch):
            with tempfile.TemporaryDirectory(prefix="themes-fuzz-") as tmp:
                kinds: dict[str, str] = {}
                paths = []
                for i in range(first, min(n, first + batch)):
                    source = rng.choice(seeds)
                    data, kind = mutate(source.read_bytes(), KINDS[i % len(KINDS)], rng)
                    path = Path(tmp) / f"fuzz-{i:05d}-{kind}-{source.stem[:40]}.pdf"
                    path.write_bytes(data)
                    kinds[path.name] = kind
                    result.by_kind[kind] += 1
                    paths.append(path)
                _ingest_batch(paths, kinds, settings, workers, result)
    finally:
        result.peak_rss = sampler.stop()
        result.wall_s = time.monotonic() - started
    return result


def _ingest_batch(
    paths: list[Path], kinds: dict[str, str], settings: object, workers: int, result: Result
) -> None:
    seen: set[str] = set()
    last = time.monotonic()
    try:
        for doc in ingest_many(paths, workers=workers, settings=settings, func=_reader_func()):  # type: ignore[arg-type]
            now = time.monotonic()
            silence, last = now - last, now
            result.longest_silence_s = max(result.longest_silence_s, silence)
            if silence > settings.timeout_s + HANG_GRACE_S:  # type: ignore[attr-defined]
                result.hangs += 1
            seen.add(doc.file)
            result.n += 1
            _check(doc, result, kinds.get(doc.file, "?"))
    except Exception as exc:  # noqa: BLE001 - a crash of the run is what we are counting
        result.crashes.append(f"ingest_many raised {type(exc).__name__}: {exc}")
    missing = set(kinds) - seen
    if missing:
        result.crashes.append(f"{len(missing)} files never came back, e.g. {min(missing)}")


def table(result: Result) -> str:
    """The Markdown report: files per kind by outcome, then the run's totals."""
    outcomes = sorted({o for _, o in result.statuses})
    lines = ["| mutation | files | " + " | ".join(outcomes) + " |",
             "|---|---:|" + "---:|" * len(outcomes)]  # fmt: skip
    for kind in KINDS:
        cells = [str(result.statuses.get((kind, o), 0)) for o in outcomes]
        lines.append(f"| {kind} | {result.by_kind.get(kind, 0)} | " + " | ".join(cells) + " |")
    total = [str(sum(v for (_, o), v in result.statuses.items() if o == out)) for out in outcomes]
    lines.append(f"| **all** | {result.n} | " + " | ".join(total) + " |")
    lines += [
        "",
        f"- crashes of the run: {len(result.crashes)}" + (f" ({result.crashes[:3]})" if result.crashes else ""),
        f"- hangs past the per-document time limit (+{HANG_GRACE_S:g} s grace): {result.hangs}",
        f"- longest wait for any answer from the pool: {result.longest_silence_s:.1f} s",
        f"- peak memory of the whole run (this process + readers, RSS): {result.peak_rss / 2**20:.0f} MiB",
        f"- slowest file that finished: {result.slowest[1]} ({result.slowest[0]:.1f} s)",
        f"- wall time: {result.wall_s:.0f} s",
    ]
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="mutated files (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0, help="per-document limit, s")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-memory-mb", type=int, default=INGEST.max_memory_mb)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(list(argv) if argv is not None else None)
    seeds = seed_files()
    result = run(args.n, args.seed, seeds, args.timeout, args.workers, max_memory_mb=args.max_memory_mb)
    report = (f"# Ingest fuzzing\n\n{result.n} mutated files from {len(seeds)} seed PDFs, seed "
              f"{args.seed}, {args.workers} reader processes, {args.timeout:g} s per document, "
              f"{args.max_memory_mb} MiB address space per reader.\n\n{table(result)}\n")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.md").write_text(report, encoding="utf-8")
    summary = {
        "n": result.n, "seed": args.seed, "n_seeds": len(seeds), "crashes": result.crashes,
        "hangs": result.hangs, "peak_rss_mib": round(result.peak_rss / 2**20), "wall_s": round(result.wall_s),
        "slowest": {"file": result.slowest[1], "seconds": round(result.slowest[0], 2)},
        "by_kind": dict(result.by_kind),
        "statuses": {f"{k}/{o}": v for (k, o), v in sorted(result.statuses.items())},
    }
    (args.out / "fuzz.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(report)
    return 1 if result.crashes or result.hangs else 0


if __name__ == "__main__":
    raise SystemExit(main())
