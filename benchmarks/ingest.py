"""How fast ingestion reads the Ofsted corpus, how much memory it holds, and where the time goes.

Reads the same files four ways, each in a fresh Python process so that each has its own peak
memory: (a) a bare pdfplumber loop of ``extract_text()`` with ``page.close()``; (b) our
``ingest_pdf`` in a plain loop (one worker, in-process); (c) ``ingest_many`` with 2 (or each
``--workers``) reader processes; (d) pypdfium2's raw text extraction, the ceiling. Then times the
flow (``themes run``) twice over a subset, the second time over the unchanged corpus, and profiles
``ingest_pdf`` with cProfile on three files.

Memory: peak RSS of the measuring process (``VmHWM`` in ``/proc/self/status``), the largest
reader process (``getrusage(RUSAGE_CHILDREN).ru_maxrss``), and RSS after 25%, 50% and 100% of the
files (flat means no leak). Rates are pages per wall-clock second and per CPU second; on a shared
machine the CPU rate is the steadier of the two.

Run::

    nice .venv/bin/python benchmarks/ingest.py                 # all 401 files, 30-60 min
    nice .venv/bin/python benchmarks/ingest.py --limit 100     # the first 100 files

Writes ``benchmarks/results/ingest.md`` and ``ingest.json``. Only file names, counts and error
messages of the real reports appear in the outputs, never their text.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROJECT_DIR = Path(__file__).resolve().parent.parent
#: The modes, in the order they are run and reported.
MODES = {
    "pdfium": "(d) pypdfium2 raw text (ceiling)",
    "bare": "(a) bare pdfplumber extract_text + page.close",
    "ours": "(b) our ingest_pdf, 1 worker (in-process loop)",
    "pool": "(c) our ingest_many, {n} worker processes",
}
CHECKPOINTS = (0.25, 0.5, 1.0)


# -- measurements inside one process --------------------------------------------------------

def proc_status_kib(field_name: str, pid: int | str = "self") -> int:
    """A ``kB`` field (VmRSS, VmHWM) of ``/proc/<pid>/status``; 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def child_pids() -> list[int]:
    """Direct children of this process (every thread's children list)."""
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Checkpoint:
    """Memory after a share of the files."""

    share: float
    files: int
    rss_mib: float
    children_rss_mib: float


@dataclass
class ModeResult:
    """One way of reading the files, measured in its own process."""

    mode: str
    workers: int
    files: int
    pages: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    children_peak_rss_mib: float
    checkpoints: list[Checkpoint] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    slowest: list[tuple[str, float]] = field(default_factory=list)
    bad_pages: int = 0
    load_before: str = ""
    load_after: str = ""


def _checkpoint_at(n_files: int) -> dict[int, float]:
    """File counts at which memory is recorded, to the share they stand for."""
    return {max(1, round(share * n_files)): share for share in CHECKPOINTS}


def _read_files(files: list[Path], read_one: Callable[[Path], Any]) -> Iterator[tuple[Path, Any, float]]:
    for path in files:
        start = time.perf_counter()
        yield path, read_one(path), time.perf_counter() - start


def _bare_pdfplumber(path: Path) -> int:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        for page in pdf.pages:
            page.extract_text()
            page.close()
        return len(pdf.pages)


def _pdfium(path: Path) -> int:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            text_page = page.get_textpage()
            text_page.get_text_range()
            text_page.close()
            page.close()
        return len(pdf)
    finally:
        pdf.close()


def measure(mode: str, files: list[Path], pages: int, workers: int = 1) -> ModeResult:
    """Read ``files`` one way in this process and measure time and memory."""
    from themes.config import INGEST
    from themes.ingest import ingest_many, ingest_pdf

    marks = _checkpoint_at(len(files))
    checkpoints: list[Checkpoint] = []
    statuses: Counter[str] = Counter()
    errors: list[dict[str, str]] = []
    timings: list[tuple[str, float]] = []
    bad_pages = 0
    load_before = _load()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()

    def after(done: int) -> None:
        if done in marks:
            kids = sum(proc_status_kib("VmRSS", pid) for pid in child_pids())
            checkpoints.append(Checkpoint(marks[done], done, proc_status_kib("VmRSS") / 1024,
                                          kids / 1024))

    if mode in ("bare", "pdfium"):
        reader = _bare_pdfplumber if mode == "bare" else _pdfium
        for done, path in enumerate(files, start=1):
            start = time.perf_counter()
            try:
                reader(path)
                statuses["ok"] += 1
            except Exception as exc:  # noqa: BLE001 - a baseline counts failures, never stops
                statuses[f"error: {type(exc).__name__}"] += 1
            timings.append((path.name, time.perf_counter() - start))
            after(done)
    else:
        if mode == "ours":
            documents: Iterator[Any] = (
                doc for _, doc, _ in _timed(files, ingest_pdf, timings)
            )
        else:
            documents = ingest_many(files, workers=workers, settings=INGEST)
        for done, doc in enumerate(documents, start=1):
            statuses["ok" if doc.status == "ok" else f"error: {doc.error_kind}"] += 1
            bad_pages += len(doc.bad_pages)
            if doc.status != "ok":
                errors.append({"file": doc.file, "kind": str(doc.error_kind), "error": str(doc.error)})
            after(done)
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds() - cpu0
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return ModeResult(
        mode=mode, workers=workers, files=len(files), pages=pages, wall_s=wall, cpu_s=cpu,
        peak_rss_mib=proc_status_kib("VmHWM") / 1024, children_peak_rss_mib=children_peak,
        checkpoints=checkpoints, statuses=dict(statuses), errors=errors,
        slowest=sorted(timings, key=lambda t: -t[1])[:5], bad_pages=bad_pages,
        load_before=load_before, load_after=_load(),
    )


def _timed(files: list[Path], func: Callable[[Path], Any], timings: list[tuple[str, float]]):
    for path, result, seconds in _read_files(files, func):
        timings.append((path.name, seconds))
        yield path, result, seconds


# -- paired comparisons -----------------------------------------------------------------------

def paired(files: list[Path]) -> dict[str, Any]:
    """Ratios that drift in the machine's load cannot bias: ours and the bare loop alternate file
    by file (which goes first alternates too), then ``ingest_many`` with 1 and 2 workers back to
    back on the same files."""
    from themes.ingest import ingest_many, ingest_pdf

    totals = {"bare": [0.0, 0.0], "ours": [0.0, 0.0]}
    readers: dict[str, Callable[[Path], Any]] = {"bare": _bare_pdfplumber, "ours": ingest_pdf}
    for i, path in enumerate(files):
        for name in ("bare", "ours") if i % 2 == 0 else ("ours", "bare"):
            wall, cpu = time.perf_counter(), time.process_time()
            readers[name](path)
            totals[name][0] += time.perf_counter() - wall
            totals[name][1] += time.process_time() - cpu
    pool: dict[int, float] = {}
    loads: dict[int, str] = {}
    for workers in (1, 2):
        loads[workers] = _load()
        start = time.perf_counter()
        for _ in ingest_many(files, workers=workers):
            pass
        pool[workers] = time.perf_counter() - start
    return {
        "files": [f.name for f in files],
        "bare_wall_s": totals["bare"][0], "bare_cpu_s": totals["bare"][1],
        "ours_wall_s": totals["ours"][0], "ours_cpu_s": totals["ours"][1],
        "pool_wall_s": {str(k): v for k, v in pool.items()},
        "pool_load": {str(k): v for k, v in loads.items()},
    }


# -- orchestration ----------------------------------------------------------------------------

def page_counts(files: list[Path]) -> dict[str, int]:
    """Pages per file by pypdfium2 (0 when it cannot open the file)."""
    import pypdfium2 as pdfium

    counts = {}
    for path in files:
        try:
            pdf = pdfium.PdfDocument(path)
            counts[path.name] = len(pdf)
            pdf.close()
        except Exception:  # noqa: BLE001 - counted as 0 pages
            counts[path.name] = 0
    return counts


def run_mode_in_child(mode: str, files: list[Path], pages: int, workers: int) -> ModeResult:
    """Run :func:`measure` in a fresh interpreter so its peak memory is its own."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        spec = Path(tmp) / "spec.json"
        result = Path(tmp) / "result.json"
        spec.write_text(json.dumps({"mode": mode, "files": [str(f) for f in files], "pages": pages,
                                    "workers": workers}))
        subprocess.run([sys.executable, __file__, "--child", str(spec), str(result)], check=True)
        data = json.loads(result.read_text())
    data["checkpoints"] = [Checkpoint(**c) for c in data["checkpoints"]]
    data["slowest"] = [tuple(s) for s in data["slowest"]]
    return ModeResult(**data)


def profile_ingest(files: list[Path], top: int = 15) -> dict[str, Any]:
    """cProfile ``ingest_pdf`` over ``files``: the top functions by cumulative time, and own time
    grouped by library."""
    from themes.ingest import ingest_pdf

    profiler = cProfile.Profile()
    profiler.enable()
    for path in files:
        ingest_pdf(path)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(top)
    by_library: Counter[str] = Counter()
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_library[_library_of(filename)] += tottime
        total += tottime
    table = stream.getvalue()
    table = table[table.find("   ncalls"):] if "   ncalls" in table else table
    return {
        "files": [f.name for f in files],
        "total_s": total,
        "cumulative_top": _shorten_paths(table).rstrip(),
        "own_time_by_library": {k: v for k, v in by_library.most_common()},
    }


def _library_of(filename: str) -> str:
    """Which library a profiled function's file belongs to."""
    for name in ("pdfminer", "pdfplumber", "pypdfium2", "themes", "PIL", "charset_normalizer"):
        if f"/{name}/" in filename:
            return name
    if filename.startswith(("~", "<")):
        return "Python built-ins (C)"
    if "/lib/python3" in filename and "site-packages" not in filename:
        return "Python standard library"
    return "other"


def _shorten_paths(text: str) -> str:
    return re.sub(r"\S*/(?:site-packages|src|lib/python3\.\d+)/", "", text)


def time_flow_twice(files: list[Path], workers: int) -> dict[str, Any]:
    """Run ``themes run`` over a copy of ``files``, then again over the unchanged copy."""
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        corpus, out = Path(tmp) / "corpus", Path(tmp) / "out"
        corpus.mkdir()
        for f in files:
            shutil.copy2(f, corpus / f.name)
        # A private Prefect home; `themes run` sets the rest (themes.config.prefect_environment).
        env = {**os.environ, "PREFECT_HOME": str(Path(tmp) / "prefect"),
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        env.pop("PREFECT_API_URL", None)
        runs = []
        for label in ("first", "rerun"):
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "themes.cli", "run", "--corpus", str(corpus), "--out", str(out),
                 "--workers", str(workers)],
                env=env, capture_output=True, text=True, cwd=PROJECT_DIR, check=False,
            )
            wall = time.perf_counter() - start
            log = proc.stdout + proc.stderr
            if proc.returncode != 0:
                raise RuntimeError(f"themes run ({label}) failed with code {proc.returncode}:\n{log[-3000:]}")
            runs.append({"run": label, "wall_s": wall, "read_s": _read_phase_seconds(log),
                         "cached": log.count("(cached)")})
        return {"files": len(files), "workers": workers, "runs": runs}


_LOG_TIME_RE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \|", re.MULTILINE)


def _read_phase_seconds(log: str) -> float | None:
    """Seconds from the flow's "Found N PDF file(s)" line to its last "[i/N]" document line."""
    start = end = None
    for line in log.splitlines():
        m = _LOG_TIME_RE.match(line)
        if not m:
            continue
        h, mi, s, ms = (int(x) for x in m.groups())
        t = h * 3600 + mi * 60 + s + ms / 1000
        if "Found " in line and "PDF file" in line:
            start = t
        elif re.search(r"\[\d+/\d+\]", line):
            end = t
    if start is None or end is None:
        return None
    return (end - start) % 86400


# -- report -----------------------------------------------------------------------------------

def _rate(r: ModeResult) -> tuple[float, float]:
    return r.pages / r.wall_s, r.pages / r.cpu_s if r.cpu_s else float("nan")


def to_markdown(info: dict[str, Any], results: list[ModeResult], flow: dict | None,
                profile: dict | None, pairs: dict | None = None) -> str:
    """The benchmark's results as a Markdown page."""
    by_mode = {(r.mode, r.workers): r for r in results}
    lines = [
        "# Ingestion benchmark",
        "",
        (f"Run {info['when']} on {info['cpus']} CPUs (load average {info['load_before']} before, "
        f"{info['load_after']} after; other jobs shared the machine). Corpus: `{info['corpus']}`, "
        f"{info['files']} files, {info['pages']} pages (first {info['files']} of "
        f"{info['corpus_files']} in name order). Command: `{info['command']}`."),
        "",
        "## Speed and memory",
        "",
        ("| reader | pages/s (wall) | pages/s (CPU) | wall s | peak RSS MiB | largest reader MiB "
        "| RSS MiB after 25% / 50% / 100% | load avg before → after |"),
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        wall_rate, cpu_rate = _rate(r)
        label = MODES[r.mode].format(n=r.workers)
        growth = " / ".join(
            f"{c.rss_mib:.0f}" + (f" (+{c.children_rss_mib:.0f} readers)" if r.mode == "pool" else "")
            for c in r.checkpoints
        )
        kids = f"{r.children_peak_rss_mib:.0f}" if r.mode == "pool" else "–"
        lines.append(f"| {label} | {wall_rate:.1f} | {cpu_rate:.1f} | {r.wall_s:.0f} | "
                     f"{r.peak_rss_mib:.0f} | {kids} | {growth} | {r.load_before.split()[0]} → "
                     f"{r.load_after.split()[0]} |")
    bare, ours = by_mode.get(("bare", 1)), by_mode.get(("ours", 1))
    lines += ["", ("Targets (the rows above ran one after another, so a change in other jobs' load "
              "between rows moves these ratios; the paired figures below do not drift):"), ""]
    if bare and ours:
        lines.append(f"- ours (1 worker) / bare pdfplumber: {_rate(ours)[0] / _rate(bare)[0]:.2f}× wall, "
                     f"{_rate(ours)[1] / _rate(bare)[1]:.2f}× CPU (target ≥ 0.8×).")
    for r in results:
        if r.mode == "pool" and ours:
            lines.append(f"- {r.workers} workers / 1 worker: {_rate(r)[0] / _rate(ours)[0]:.2f}× wall "
                         f"(target ≥ 1.7× for 2).")
    if pairs:
        pool = pairs["pool_wall_s"]
        lines += [
            (f"- Paired, on {len(pairs['files'])} files spread over the corpus: ours / bare "
            f"{pairs['bare_wall_s'] / pairs['ours_wall_s']:.2f}× wall, "
            f"{pairs['bare_cpu_s'] / pairs['ours_cpu_s']:.2f}× CPU (files alternate between the two "
            f"readers); ingest_many 2 workers / 1 worker {pool['1'] / pool['2']:.2f}× wall "
            f"({pool['1']:.0f} s → {pool['2']:.0f} s, run back to back; load average "
            f"{pairs['pool_load']['1'].split()[0]} and {pairs['pool_load']['2'].split()[0]} at their "
            "starts)."),
        ]
    peak = max([r.peak_rss_mib for r in results] + [r.peak_rss_mib + r.children_peak_rss_mib * r.workers
                                                     for r in results if r.mode == "pool"])
    lines.append(f"- Peak memory: {peak:.0f} MiB at most (pool: parent plus workers × largest "
                 "reader), target < 1024 MiB.")
    status_source = ours or next((r for r in results if r.mode == "pool"), None)
    if status_source:
        lines += ["", f"## Files per status ({MODES[status_source.mode].format(n=status_source.workers)})",
                  "", "| status | files |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(status_source.statuses.items())]
        lines.append(f"\n{status_source.bad_pages} unreadable page(s) inside otherwise readable files.")
        if status_source.errors:
            lines += ["", "Errors:", ""]
            lines += [f"- `{e['file']}`: {e['kind']} — {e['error']}" for e in status_source.errors[:30]]
        for r in results:
            if r.mode in ("bare", "pdfium") and set(r.statuses) != {"ok"}:
                lines.append(f"\n{MODES[r.mode]}: {r.statuses}")
        if ours:
            lines += ["", "Slowest files for ours (1 worker): "
                      + ", ".join(f"`{n}` {s:.1f} s" for n, s in ours.slowest)]
    if flow:
        first, rerun = flow["runs"]
        lines += [
            "", (f"## Re-run over an unchanged corpus (`themes run`, {flow['files']} files, "
            f"--workers {flow['workers']})"), "",
            "| run | wall s | reading phase s | documents from cache |", "|---|---:|---:|---:|",
        ]
        for run in flow["runs"]:
            read = f"{run['read_s']:.1f}" if run["read_s"] is not None else "?"
            lines.append(f"| {run['run']} | {run['wall_s']:.1f} | {read} | {run['cached']} |")
        ratio = rerun["wall_s"] / first["wall_s"]
        read_ratio = (rerun["read_s"] / first["read_s"]
                      if first["read_s"] and rerun["read_s"] is not None else float("nan"))
        lines += ["", (f"Re-run / first run: {ratio:.0%} of the wall time, {read_ratio:.1%} of the "
                  "reading phase (target ≤ 5%). The re-run still starts Prefect, loads the model, "
                  "classifies every passage and writes the report; only parsing is skipped.")]
    if profile:
        lines += [
            "", (f"## Where the time goes (cProfile of ingest_pdf on {len(profile['files'])} files, "
            f"{profile['total_s']:.1f} s profiled)"), "",
            "Own time by library:", "",
            "| library | own s | share |", "|---|---:|---:|",
        ]
        for lib, secs in profile["own_time_by_library"].items():
            lines.append(f"| {lib} | {secs:.1f} | {secs / profile['total_s']:.0%} |")
        lines += ["", "Top 15 functions by cumulative time:", "", "```", profile["cumulative_top"], "```"]
    return "\n".join(lines) + "\n"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    from themes.config import shared_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=None, help="folder of PDFs (default ../shared/ofsted)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N files in name order")
    parser.add_argument("--workers", default="2", help="comma-separated worker counts for ingest_many")
    parser.add_argument("--modes", default="pdfium,bare,ours,pool", help="which readers to run")
    parser.add_argument("--flow-files", type=int, default=40, help="files for the re-run timing (0: skip)")
    parser.add_argument("--flow-workers", type=int, default=2)
    parser.add_argument("--profile-files", type=int, default=3, help="files to profile (0: skip)")
    parser.add_argument("--paired-files", type=int, default=20,
                        help="files spread over the corpus for the paired comparisons (0: skip)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for ingest.md/.json")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        spec = json.loads(args.child[0].read_text())
        result = measure(spec["mode"], [Path(f) for f in spec["files"]], spec["pages"], spec["workers"])
        args.child[1].write_text(json.dumps(asdict(result)))
        return 0

    corpus = args.corpus or ((shared_dir() or Path("/nonexistent")) / "ofsted")
    if not corpus.is_dir():
        parser.error(f"corpus folder {corpus} does not exist; pass --corpus DIR")
    all_files = sorted(p for p in corpus.iterdir() if p.suffix.lower() == ".pdf")
    files = all_files[: args.limit] if args.limit else all_files
    counts = page_counts(files)
    pages = sum(counts.values())
    info = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
            "load_before": _load(), "corpus": str(corpus), "corpus_files": len(all_files),
            "files": len(files), "pages": pages,
            "command": "python benchmarks/ingest.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(f"{len(files)} files, {pages} pages; load {info['load_before']}", flush=True)

    results: list[ModeResult] = []
    for mode in args.modes.split(","):
        for workers in ([int(w) for w in args.workers.split(",")] if mode == "pool" else [1]):
            r = run_mode_in_child(mode, files, pages, workers)
            results.append(r)
            print(f"{MODES[mode].format(n=workers)}: {_rate(r)[0]:.1f} pages/s wall, "
                  f"{_rate(r)[1]:.1f} pages/s CPU, {r.wall_s:.0f} s, peak {r.peak_rss_mib:.0f} MiB, "
                  f"checkpoints {[round(c.rss_mib) for c in r.checkpoints]}, {r.statuses}", flush=True)

    pairs = None
    if args.paired_files:
        step = max(1, len(files) // args.paired_files)
        pairs = paired(files[::step][: args.paired_files])
        print(f"paired: {pairs}", flush=True)
    flow = None
    if args.flow_files:
        flow = time_flow_twice(files[: args.flow_files], args.flow_workers)
        print(f"flow: {flow}", flush=True)
    profile = None
    if args.profile_files:
        profile = profile_ingest(files[: args.profile_files])
        print(f"where the time goes ({profile['files']}):\n{profile['cumulative_top']}", flush=True)
        print(profile["own_time_by_library"], flush=True)

    info["load_after"] = _load()
    markdown = to_markdown(info, results, flow, profile, pairs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest.md").write_text(markdown, encoding="utf-8")
    (args.out / "ingest.json").write_text(json.dumps(
        {"info": info, "results": [asdict(r) for r in results], "flow": flow, "profile": profile,
         "paired": pairs},
        indent=1), encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
