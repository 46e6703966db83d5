"""The whole job: ``themes run`` end to end on the Ofsted reports, against a bare pdfplumber loop.

Each measurement is a fresh ``themes run`` process (as a user would start it) over a folder of
links to the chosen reports, with a new output folder:

1. the bare pdfplumber loop (``extract_text`` + ``page.close``) over the same files, in a child
   process, in the same benchmark run (``benchmarks/ingest.py``'s helper);
2. ``themes run --workers N`` for each N (default 1 and 2): wall time, pages per second, seconds
   per stage (read, segment, classify, aggregate, report, from ``--summary-json``) and the peak
   memory of the whole process tree (the sum of the RSS of ``themes run`` and every descendant,
   sampled every 0.2 s);
3. on the last worker count's output: the unchanged re-run, with Prefect and with ``--no-prefect``
   (their difference is Prefect's start-up), and adding one new PDF (held out of the first run) to
   the processed corpus, beside that PDF's own bare reading time;
4. scale-out: the flow on a ``distributed.LocalCluster`` of 2 single-threaded workers through
   ``--dask-address``, and a projection for a 1,400-review, 70,000-page corpus on 4 and 16 workers.

Run::

    nice .venv/bin/python benchmarks/pipeline.py               # all reports in ../shared/ofsted
    nice .venv/bin/python benchmarks/pipeline.py --limit 40    # the first 40

Writes ``benchmarks/results/pipeline.md`` and ``pipeline.json``; only counts and timings of the
real reports appear there, never their text. The machine is shared: the load average is recorded
before and after every timed step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import _load, page_counts, run_mode_in_child

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROJECT_DIR = Path(__file__).resolve().parent.parent
#: The scale-out projection's corpus.
PROJECTED_PAGES = 70_000
PROJECTED_WORKERS = (4, 16)


def tree_memory_kib(root: int) -> tuple[int, int]:
    """(RSS, PSS) of ``root`` and all its descendants, in KiB (from /proc).

    The RSS sum counts pages shared between processes (libraries, the readers' common imports)
    once per process; PSS divides each shared page among its sharers, so its sum is the memory the
    tree really holds.
    """
    rss = pss = 0
    stack, seen = [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            for task in Path(f"/proc/{pid}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return rss, pss


def themes_run(corpus: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``themes run`` in a fresh process; its summary, wall seconds and peak tree memory."""
    summary = out.parent / f"{out.name}-summary-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "themes.cli", "run", "--corpus", str(corpus), "--out", str(out),
           "--no-progress", "--summary-json", str(summary), *extra]
    load_before = _load()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            cwd=PROJECT_DIR)
    peak = peak_pss = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_pss
        while not stop.is_set():
            rss, pss = tree_memory_kib(proc.pid)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"themes run failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    result = json.loads(summary.read_text())
    result.pop("prevalence", None)
    return {"wall_s": wall, "peak_tree_mib": peak / 1024, "peak_tree_pss_mib": peak_pss / 1024,
            "load_before": load_before,
            "load_after": _load(), "args": list(extra), **result}


def link_corpus(folder: Path, files: Sequence[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).symlink_to(f.resolve())
    return folder


def scale_out(corpus: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """The flow on a 2-worker LocalCluster through ``--dask-address``.

    The cluster's workers and the ``themes run`` process get the benchmark's environment
    (``PYTHONPATH`` to this checkout): without it they imported whichever ``themes`` package was
    installed, not the code under test.
    """
    from distributed import LocalCluster

    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PREFECT_HOME")}
    os.environ.update({k: env[k] for k in saved if k in env})  # the worker processes inherit it
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            return themes_run(corpus, out, "--dask-address", cluster.scheduler_address, env=env)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def running_server(tmp: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A ``prefect server start`` (what ``make server`` runs) for the duration; yields ``env`` with
    ``PREFECT_API_URL`` pointing at it, so ``themes run`` reports there instead of starting its own."""
    from flows.serve import HOST, free_port, start_server, stop_processes, wait_healthy

    saved = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = env["PREFECT_HOME"]  # the server's database lives in the benchmark's folder
    port = free_port(None, HOST)
    server = start_server(HOST, port, tmp / "server.log")
    try:
        url = f"http://{HOST}:{port}/api"
        wait_healthy(f"{url}/health", 120, server)
        yield {**env, "PREFECT_API_URL": url}
    finally:
        stop_processes(server)
        if saved is None:
            os.environ.pop("PREFECT_HOME", None)
        else:
            os.environ["PREFECT_HOME"] = saved


def projection(one: dict, two: dict | None, rerun: dict) -> dict[str, Any]:
    """Time for :data:`PROJECTED_PAGES` pages on 4 and 16 workers, from the measured per-page cost.

    Reading: the 1-worker run's read seconds per page (one reader process), divided by the number
    of workers and by the parallel efficiency measured at 2 workers (speed-up / 2), assumed to
    hold on more cores. The in-process stages (segment, classify, aggregate, report) do not shrink
    with workers: their fixed part is what they took in the unchanged re-run (model card, report
    writing over cached predictions), the rest scales linearly in pages from the 2-worker (else
    1-worker) run.
    """
    t = one["timings"]
    read_per_page = t["read_s"] / max(one["pages"], 1)
    efficiency = 1.0
    if two:
        efficiency = min(1.0, (t["read_s"] / two["timings"]["read_s"]) / 2)
    base = two or one
    stages = ("segment_s", "classify_s", "aggregate_s", "report_s")
    fixed = sum(rerun["timings"][k] for k in stages)
    serial_per_page = max(0.0, sum(base["timings"][k] for k in stages) - fixed) / max(base["pages"], 1)
    rows = {}
    for w in PROJECTED_WORKERS:
        read = PROJECTED_PAGES * read_per_page / (w * efficiency)
        serial = fixed + PROJECTED_PAGES * serial_per_page
        rows[w] = {"read_s": read, "serial_s": serial, "total_s": read + serial}
    return {"read_s_per_page": read_per_page, "efficiency_at_2": efficiency, "serial_fixed_s": fixed,
            "serial_s_per_page": serial_per_page, "workers": rows}


def to_markdown(info: dict, bare: dict, runs: list[dict], rerun: dict, add_one: dict,
                dask: dict | None, proj: dict, add_one_np: dict | None = None,
                add_one_server: dict | None = None) -> str:
    lines = [
        "# Pipeline benchmark: `themes run` end to end",
        "",
        (f"{info['when']}, {info['cpus']} CPUs (shared machine: load average before "
        f"{info['load_before']}, after {info['load_after']}). {info['files']} of "
        f"{info['corpus_files']} reports in `{info['corpus']}`, {info['pages']} pages. "
        f"Command: `{info['command']}`."),
        "",
        ("| run | wall s | pages/s | × bare loop | read s | segment s | classify s | aggregate s "
        "| report s | peak tree RSS / PSS MiB | load before → after |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        (f"| bare pdfplumber loop | {bare['wall_s']:.1f} | {bare['pages_per_s']:.1f} | 1.00 | | | | | "
        f"| {bare['peak_mib']:.0f} | {bare['load_before']} → {bare['load_after']} |"),
    ]
    for r in [*runs, *([dask] if dask else [])]:
        t = r["timings"]
        rate = r["pages"] / r["wall_s"]
        lines.append(
            f"| {r['label']} | {r['wall_s']:.1f} | {rate:.1f} | {rate / bare['pages_per_s']:.2f} "
            f"| {t['read_s']:.1f} | {t['segment_s']:.1f} | {t['classify_s']:.1f} "
            f"| {t['aggregate_s']:.1f} | {t['report_s']:.1f} | {r['peak_tree_mib']:.0f} / "
            f"{r.get('peak_tree_pss_mib', float('nan')):.0f} "
            f"| {r['load_before']} → {r['load_after']} |")
    if len(runs) >= 2:
        lines += ["", (f"2-worker speed-up over 1 worker (wall): "
                      f"**{runs[0]['wall_s'] / runs[1]['wall_s']:.2f}×**.")]
    first = runs[-1]
    lines += [
        "",
        "## Re-runs",
        "",
        ("| run | wall s | share of first run | passages classified | pages read | outputs kept "
        "| stages s (read/segment/classify/aggregate/report) |"),
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for key, label in (("prefect", "unchanged, Prefect flow"), ("no_prefect", "unchanged, --no-prefect")):
        r = rerun[key]
        stages = "/".join(f"{r['timings'][k]:.1f}" for k in ("read_s", "segment_s", "classify_s",
                                                              "aggregate_s", "report_s"))
        lines.append(f"| {label} | {r['wall_s']:.1f} | {r['wall_s'] / first['wall_s']:.1%} "
                     f"| {r['passages_classified']} | {r['pages_read']} | {r.get('outputs_kept', '')} "
                     f"| {stages} |")
    lines += [
        "",
        (f"Prefect's share of the unchanged re-run (flow minus --no-prefect): "
        f"{rerun['prefect']['wall_s'] - rerun['no_prefect']['wall_s']:.1f} s (starting the temporary "
        "local API, registering the flow and task runs). It is avoided with `--no-prefect`, or by "
        "pointing `PREFECT_API_URL` at a running server (`make server`). The rest of the "
        "unchanged re-run is starting Python and importing Prefect and pandas, hashing every "
        "file and loading the cached passages and predictions."),
        "",
        (f"Adding one PDF (`{add_one['file']}`, {add_one['pdf_pages']} pages) to the processed "
        f"corpus: {add_one['wall_s']:.1f} s with Prefect ({add_one['passages_classified']} passages "
        f"classified); that PDF alone takes {add_one['bare_s']:.1f} s in the bare pdfplumber loop, "
        f"so the overhead beyond reading it is {add_one['wall_s'] - add_one['bare_s']:.1f} s."),
    ]
    if add_one_np:
        lines += ["", (
            f"Adding another (`{add_one_np['file']}`, {add_one_np['pdf_pages']} pages) with `--no-prefect`: "
            f"{add_one_np['wall_s']:.1f} s ({add_one_np['passages_classified']} passages classified; "
            f"bare reading {add_one_np['bare_s']:.1f} s, overhead "
            f"{add_one_np['wall_s'] - add_one_np['bare_s']:.1f} s).")]
    if add_one_server:
        lines += ["", (
            f"Adding a third (`{add_one_server['file']}`, {add_one_server['pdf_pages']} pages) with the flow "
            f"reporting to a running Prefect server (`make server`; the server's own start is not counted): "
            f"{add_one_server['wall_s']:.1f} s ({add_one_server['passages_classified']} passages classified; "
            f"bare reading {add_one_server['bare_s']:.1f} s, overhead "
            f"{add_one_server['wall_s'] - add_one_server['bare_s']:.1f} s).")]
    for label, a in (("flow", add_one), ("--no-prefect", add_one_np), ("flow, running server", add_one_server)):
        if a and a.get("timings"):
            stages = "/".join(f"{a['timings'][k]:.1f}" for k in ("read_s", "segment_s", "classify_s",
                                                                 "aggregate_s", "report_s"))
            lines += ["", f"Add one ({label}), stages s (read/segment/classify/aggregate/report): {stages}."]
    lines += [
        "",
        "## Scale-out",
        "",
    ]
    if dask:
        lines.append(f"Flow on a `LocalCluster` of 2 single-threaded worker processes "
                     f"(`--dask-address`): {dask['wall_s']:.1f} s, "
                     f"{dask['pages'] / dask['wall_s']:.1f} pages/s (row above).")
    lines += [
        "",
        (f"Projection for a 1,400-review, {PROJECTED_PAGES:,}-page corpus: read cost "
        f"{proj['read_s_per_page']:.3f} s/page per reader (1-worker run), divided by the workers and "
        f"by the parallel efficiency measured at 2 workers ({proj['efficiency_at_2']:.2f}), assumed "
        f"to hold on more cores; segment + classify + aggregate + report run in one process: "
        f"{proj['serial_fixed_s']:.1f} s fixed (their time in the unchanged re-run) plus "
        f"{proj['serial_s_per_page']:.4f} s/page. Worker start-up, cluster "
        "networking and shared-filesystem reads are not in it."),
        "",
        "| workers | read | serial stages | total |",
        "|---:|---:|---:|---:|",
    ]
    for w, row in proj["workers"].items():
        lines.append(f"| {w} | {row['read_s'] / 60:.0f} min | {row['serial_s'] / 60:.1f} min "
                     f"| {row['total_s'] / 60:.0f} min |")
    lines += ["", "## Targets (issue 14)", "", "| target | measured | met |", "|---|---|---|"]
    two = next((r for r in runs if r["args"][1:2] == ["2"]), None)
    if two:
        ratio = two["pages"] / two["wall_s"] / bare["pages_per_s"]
        lines.append(f"| 2 workers ≥ 1.6× the bare loop | {ratio:.2f}× | {'yes' if ratio >= 1.6 else 'no'} |")
    peak = max(r["peak_tree_mib"] for r in runs)
    peak_pss = max(r.get("peak_tree_pss_mib", float("nan")) for r in runs)
    lines.append(f"| peak memory < 1 GiB | {peak:.0f} MiB RSS sum, {peak_pss:.0f} MiB PSS sum "
                 f"| {'yes' if peak < 1024 else ('PSS only' if peak_pss < 1024 else 'no')} |")
    startup = max(0.0, rerun["prefect"]["wall_s"] - rerun["no_prefect"]["wall_s"])
    limit = 0.05 * first["wall_s"] + startup
    lines.append(f"| unchanged re-run ≤ 5% of first + Prefect start-up ({limit:.1f} s) "
                 f"| {rerun['prefect']['wall_s']:.1f} s | {'yes' if rerun['prefect']['wall_s'] <= limit else 'no'} |")
    for label, a in (("flow, temporary local API", add_one), ("--no-prefect", add_one_np),
                     ("flow, running server", add_one_server)):
        if a:
            add_limit = 15 + a["bare_s"]
            lines.append(f"| add one PDF < 15 s + its reading ({label}: {add_limit:.1f} s) | {a['wall_s']:.1f} s "
                         f"| {'yes' if a['wall_s'] < add_limit else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from themes.config import shared_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=None, help="folder of PDFs (default ../shared/ofsted)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N files in name order")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--no-dask", action="store_true", help="skip the LocalCluster scale-out run")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for pipeline.md/.json")
    parser.add_argument("--render", type=Path, help="only re-write pipeline.md from this pipeline.json")
    args = parser.parse_args(argv)
    if args.render:
        d = json.loads(args.render.read_text())
        d["projection"]["workers"] = {int(k): v for k, v in d["projection"]["workers"].items()}
        markdown = to_markdown(d["info"], d["bare"], d["runs"], d["rerun"], d["add_one"], d["dask"],
                               d["projection"], d.get("add_one_no_prefect"), d.get("add_one_server"))
        (args.out / "pipeline.md").write_text(markdown, encoding="utf-8")
        print(markdown)
        return 0

    corpus = args.corpus or ((shared_dir() or Path("/nonexistent")) / "ofsted")
    if not corpus.is_dir():
        print(f"corpus folder {corpus} does not exist; pass --corpus DIR (skipped)")
        return 0
    all_files = sorted(p for p in corpus.iterdir() if p.suffix.lower() == ".pdf")
    files = all_files[: args.limit] if args.limit else all_files
    counts = page_counts(files)
    pages = sum(counts.values())
    # The last three files are held out of the first runs, to be added to the processed corpus
    # later: one with the Prefect flow on its temporary local API, one with --no-prefect, and one
    # with the flow reporting to a running Prefect server (`make server`), as a team would use it.
    base, spares = files[:-3], files[-3:]
    info = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
            "load_before": _load(), "corpus": str(corpus), "corpus_files": len(all_files),
            "files": len(base), "pages": pages - sum(counts[s.name] for s in spares),
            "command": "python benchmarks/pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(f"{len(base)} files (+3 to add), {info['pages']} pages; load {info['load_before']}", flush=True)
    workers = [int(w) for w in args.workers.split(",")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_DIR / "src"), str(PROJECT_DIR),
                                                         os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp_name:
        tmp = Path(tmp_name)
        env["PREFECT_HOME"] = str(tmp / "prefect")
        env.pop("PREFECT_API_URL", None)
        link = link_corpus(tmp / "corpus", base)

        r = run_mode_in_child("bare", base, info["pages"], 1)
        bare = {"wall_s": r.wall_s, "pages_per_s": r.pages / r.wall_s, "peak_mib": r.peak_rss_mib,
                "load_before": r.load_before, "load_after": r.load_after}
        print(f"bare: {bare}", flush=True)
        runs = []
        for w in workers:
            run = themes_run(link, tmp / f"out-{w}", "--workers", str(w), env=env)
            run["label"] = f"themes run, {w} worker{'s' if w > 1 else ''}"
            runs.append(run)
            print(f"{run['label']}: {run['wall_s']:.1f} s, {run['timings']}, "
                  f"peak {run['peak_tree_mib']:.0f} MiB", flush=True)
        out = tmp / f"out-{workers[-1]}"
        rerun = {"prefect": themes_run(link, out, "--workers", str(workers[-1]), env=env),
                 "no_prefect": themes_run(link, out, "--workers", str(workers[-1]), "--no-prefect", env=env)}
        print(f"re-runs: {[(k, round(v['wall_s'], 1)) for k, v in rerun.items()]}", flush=True)
        adds = []
        for spare, mode in zip(spares, ("flow", "no_prefect", "server")):
            spare_bare = run_mode_in_child("bare", [spare], counts[spare.name], 1)
            (link / spare.name).symlink_to(spare.resolve())
            extra = ["--no-prefect"] if mode == "no_prefect" else []
            with running_server(tmp, env) if mode == "server" else nullcontext(env) as run_env:
                added = themes_run(link, out, "--workers", str(workers[-1]), *extra, env=run_env)
            adds.append({"file": spare.name, "pdf_pages": counts[spare.name], "bare_s": spare_bare.wall_s,
                         "wall_s": added["wall_s"], "passages_classified": added["passages_classified"],
                         "pages_read": added["pages_read"], "timings": added["timings"],
                         "prefect": mode != "no_prefect", "mode": mode})
            print(f"add one: {adds[-1]}", flush=True)
        add_one, add_one_np, add_one_server = adds
        for spare in spares:
            (link / spare.name).unlink()
        dask = None
        if not args.no_dask:
            try:
                dask = scale_out(link, tmp / "out-dask", env)
            except Exception as exc:  # noqa: BLE001 - keep the hour of measurements above
                print(f"dask scale-out failed: {exc}", flush=True)
                info["dask_error"] = str(exc)[-2000:]
            else:
                dask["label"] = "themes run --dask-address (LocalCluster, 2 workers)"
                print(f"dask: {dask['wall_s']:.1f} s", flush=True)
    one = next((r for r in runs if "--workers" in r["args"] and r["args"][1] == "1"), runs[0])
    two = next((r for r in runs if r["args"][1] == "2"), None)
    proj = projection(one, two if two is not one else None, rerun["no_prefect"])
    info["load_after"] = _load()
    markdown = to_markdown(info, bare, runs, rerun, add_one, dask, proj, add_one_np, add_one_server)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pipeline.md").write_text(markdown, encoding="utf-8")
    (args.out / "pipeline.json").write_text(json.dumps(
        {"info": info, "bare": bare, "runs": runs, "rerun": rerun, "add_one": add_one,
         "add_one_no_prefect": add_one_np, "add_one_server": add_one_server, "dask": dask,
         "projection": proj}, indent=1, default=str),
        encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
