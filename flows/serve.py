"""A local Prefect server that serves the project's flows: ``make server`` (``python -m flows.serve``).

Starts ``prefect server start`` on 127.0.0.1, then serves these deployments from this process:

- ``themes-run/pipeline``: the pipeline over a folder of PDFs (parameters: corpus, out, model,
  workers, dask, dask_address, sections, ocr), publishing the prevalence table and a run summary as artifacts;
- ``<flow>/retrain`` for the retrain flow, when ``flows/retrain.py`` exists.

Optional: ``--interval S`` schedules an incremental pipeline run every S seconds; ``--watch S``
polls the corpus folder every S seconds and triggers a run when its PDFs change (the pipeline
caches documents by content hash, so only new or changed files are read). Stopping (Ctrl-C,
SIGTERM to the pid in ``$PREFECT_HOME/server.pid``, as ``make server-stop`` does) stops every
process this one started.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from prefect import flow

from flows.local import find_pdfs
from flows.pipeline import run
from themes.config import DEFAULT_OUT_DIR, MODELS_DIR, PROJECT_ROOT, SAMPLE_DIR
from themes.errors import ArgumentError, Errors, PortError, ServerError, ThemesError, error_line

PIPELINE_FLOW = "themes-run"
PIPELINE_DEPLOYMENT = "pipeline"
RETRAIN_DEPLOYMENT = "retrain"
DEFAULT_PORT = 4200
HOST = "127.0.0.1"
#: Set by ``main`` for the flow runs it serves (they inherit it): the roots that served path
#: parameters must lie under, and the Dask schedulers a run may be sent to.
ALLOW_ENV = "THEMES_SERVE_ALLOW"
ALLOW_DASK_ENV = "THEMES_SERVE_ALLOW_DASK"
#: Most documents a served run may read at once.
MAX_SERVED_WORKERS = 8


def _under(path: str, roots: list[Path]) -> Path | None:
    resolved = Path(path).expanduser().resolve()  # follows symlinks and ".." before comparing
    return resolved if any(resolved.is_relative_to(r.resolve()) for r in roots) else None


def served_roots() -> list[Path]:
    """The folders served runs may read and write under: ``--allow`` roots, else the home folder."""
    raw = os.environ.get(ALLOW_ENV)
    return [Path(p) for p in raw.split(os.pathsep) if p] if raw else [PROJECT_ROOT]


def check_served_parameters(
    corpus: str, out: str, model: str | None, workers: int, dask_address: str | None
) -> None:
    """Refuse served parameters that point outside the allowed roots; one sentence per refusal.

    The server has no authentication, so anyone who can reach it chooses these values: paths must
    lie under the ``--allow`` roots named when the server started (the bundled sample corpus may
    also be read, and models/ is always allowed for ``model``), and ``dask_address`` must be one
    that ``--allow-dask`` named.

    Raises:
        ArgumentError (a ValueError), E703-E707: naming the parameter, its value and what is allowed.
    """
    roots = served_roots()
    allowed = ", ".join(str(r) for r in roots)
    if _under(corpus, roots + [SAMPLE_DIR]) is None:
        raise ArgumentError(Errors.E703.format(value=corpus, allowed=allowed))
    if _under(out, roots) is None:
        raise ArgumentError(Errors.E704.format(value=out, allowed=allowed))
    looks_like_path = model and ("/" in model or os.sep in model or model.startswith("."))
    if looks_like_path and _under(model, roots + [MODELS_DIR]) is None:  # type: ignore[arg-type]
        raise ArgumentError(Errors.E705.format(value=model, models_dir=MODELS_DIR, allowed=allowed))
    if not 1 <= int(workers) <= MAX_SERVED_WORKERS:
        raise ArgumentError(Errors.E706.format(value=workers, limit=MAX_SERVED_WORKERS))
    if dask_address:
        permitted = [a for a in os.environ.get(ALLOW_DASK_ENV, "").split(",") if a]
        if dask_address not in permitted:
            raise ArgumentError(Errors.E707.format(value=dask_address))


@flow(name=PIPELINE_FLOW, log_prints=True)
def themes_run(
    corpus: str = str(SAMPLE_DIR),
    out: str = str(DEFAULT_OUT_DIR),
    model: str | None = None,
    workers: int = 0,
    dask: bool = False,
    dask_address: str | None = None,
    sections: Literal["all", "findings"] = "all",
    ocr: bool = False,
) -> dict:
    """Run the themes pipeline over a folder of PDFs (per-document progress is in its subflow's logs).

    Args:
        corpus: folder searched recursively for PDFs.
        out: output folder; a re-run over the same folder reads only new or changed PDFs.
        model: model version or folder; empty for models/DEFAULT.
        workers: documents read at once (reader processes, or local Dask worker processes with
            ``dask``); 0 for the number of cores.
        dask: read documents on a temporary local Dask cluster of ``workers`` processes.
        dask_address: scheduler of a running Dask cluster (``tcp://HOST:8786``) to read on instead.
        sections: "all" counts every review section; "findings" only analysis and learning.
        ocr: OCR scanned PDFs (no text layer); needs ocrmypdf and tesseract on the server.
    """
    check_served_parameters(corpus, out, model, workers, dask_address)
    return run(
        corpus,
        out,
        model or None,
        workers or None,
        dask=dask,
        dask_address=dask_address or None,
        sections=sections,
        ocr=ocr,
    )


def deployments(corpus: str, out: str, interval: float | None = None) -> list:
    """The deployments to serve: the pipeline, and the retrain flow when ``flows/retrain.py`` exists.

    Args:
        corpus: default corpus folder of the pipeline deployment.
        out: default output folder of the pipeline deployment.
        interval: seconds between scheduled incremental pipeline runs; ``None`` for no schedule.
    """
    from prefect.deployments.runner import EntrypointType

    # Flow runs load their flow by module path (flows.serve.themes_run), wherever they start.
    pipeline_flow = importlib.import_module("flows.serve").themes_run
    served = [
        pipeline_flow.to_deployment(
            PIPELINE_DEPLOYMENT,
            parameters={"corpus": corpus, "out": out},
            interval=interval,
            description="Ingest, segment, classify and aggregate a folder of review PDFs.",
            tags=["themes"],
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
    ]
    retrain = retrain_flow()
    if retrain is not None:
        served.append(
            retrain.to_deployment(
                RETRAIN_DEPLOYMENT, tags=["themes"], entrypoint_type=EntrypointType.MODULE_PATH
            )
        )
    return served


def retrain_flow():
    """The Prefect flow defined in ``flows/retrain.py``, or ``None`` when there is none yet."""
    from prefect import Flow

    if importlib.util.find_spec("flows.retrain") is None:
        return None
    module = importlib.import_module("flows.retrain")
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, Flow) and v.fn.__module__ == module.__name__
    ]
    return found[0] if found else None


def free_port(preferred: int | None = DEFAULT_PORT, host: str = HOST) -> int:
    """``preferred`` when nothing listens there, else a free port chosen by the system."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise PortError(Errors.E708.format(host=host))


def wait_healthy(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> float:
    """Poll ``url`` until it answers 200; return the seconds waited.

    Raises:
        ServerError (a RuntimeError): E710 the process exited first, or E711 ``timeout_s`` passed.
    """
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if process is not None and process.poll() is not None:
            raise ServerError(Errors.E710.format(code=process.returncode, url=url))
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise ServerError(Errors.E711.format(url=url, timeout_s=timeout_s))


def start_server(host: str, port: int, log_file: Path) -> subprocess.Popen:
    """Start ``prefect server start`` in its own process group, its output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                host,
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
            start_new_session=True,
        )


def stop_processes(server: subprocess.Popen | None, grace_s: float = 10.0) -> int:
    """Stop every process started by this one (server, flow runs, Dask workers); return how many.

    Descendants are collected before any is signalled, so grandchildren whose parent exits first
    are still stopped; the server's own process group is signalled too.
    """
    import psutil

    children = psutil.Process().children(recursive=True)
    if server is not None and server.poll() is None:
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    if server is not None:
        try:
            server.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return len(children)


def pdf_snapshot(corpus: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every PDF under ``corpus``, by relative path."""
    snapshot = {}
    for path in find_pdfs(corpus):
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed while listing
            continue
        snapshot[str(path.relative_to(corpus))] = (stat.st_size, stat.st_mtime_ns)
    return snapshot


def watch_corpus(
    corpus: Path, trigger: Callable[[], object], every_s: float, stop: threading.Event
) -> None:
    """Call ``trigger`` when the PDFs under ``corpus`` change, once they are unchanged for a poll.

    Waiting one quiet poll lets a copy of many files finish before the run starts.
    """
    seen = pdf_snapshot(corpus)
    pending = None
    while not stop.wait(every_s):
        now = pdf_snapshot(corpus)
        if now != seen and now == pending:
            seen, pending = now, None
            trigger()
        elif now != seen:
            pending = now


@contextmanager
def api_settings(url: str) -> Iterator[None]:
    """Point Prefect in this process and its children at ``url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = url
    with temporary_settings({PREFECT_API_URL: url}):
        yield


def default_pid_file() -> Path:
    return Path(os.environ["PREFECT_HOME"]) / "server.pid"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.serve", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"Server port; default {DEFAULT_PORT}, or a free one if that is taken.",
    )
    parser.add_argument(
        "--corpus", default=str(SAMPLE_DIR), help="Default corpus folder of the deployment."
    )
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT_DIR), help="Default output folder of the deployment."
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="Also run the pipeline every this many seconds (incremental).",
    )
    parser.add_argument(
        "--watch",
        type=float,
        default=None,
        help="Poll the corpus folder every this many seconds; run when its PDFs change.",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=180.0,
        help="Seconds to wait for the server to answer.",
    )
    parser.add_argument(
        "--pid-file", type=Path, default=None, help="Default: $PREFECT_HOME/server.pid."
    )
    parser.add_argument(
        "--host",
        default=HOST,
        help=f"Address the server listens on; default {HOST} (this machine only). The server has "
        "no authentication: anyone who can reach it can start runs.",
    )
    parser.add_argument(
        "--allow",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="A folder served runs may read and write under (repeatable); default: the --corpus "
        "and --out folders.",
    )
    parser.add_argument(
        "--allow-dask",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="A Dask scheduler (tcp://HOST:8786) served runs may use as dask_address (repeatable); "
        "without it dask_address is refused.",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until stopped; a coded error ends it with one ``error[E7xx]: ...`` line and status 1."""
    try:
        return serve_until_stopped(parse_args(argv))
    except ThemesError as err:
        if os.environ.get("THEMES_DEBUG") == "1":
            raise
        print(error_line(err), file=sys.stderr, flush=True)
        return 1


def serve_until_stopped(args: argparse.Namespace) -> int:
    """Start the server, serve the deployments until stopped, then stop everything started."""
    pid_file = args.pid_file or default_pid_file()
    # SIGTERM (``make server-stop``, ``kill PID``) unwinds through the clean-up below; once
    # serving, Prefect's runner installs an equivalent handler (which leaves a harmless warning).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    warnings.filterwarnings("ignore", message="coroutine 'Runner.astop' was never awaited")
    from prefect import serve
    from prefect.deployments import run_deployment

    # Flow runs are child processes of this one and inherit these: see check_served_parameters.
    roots = args.allow or [Path(args.corpus), Path(args.out)]
    os.environ[ALLOW_ENV] = os.pathsep.join(str(r.expanduser().resolve()) for r in roots)
    os.environ[ALLOW_DASK_ENV] = ",".join(args.allow_dask)
    if args.port and free_port(args.port, args.host) != args.port:
        raise PortError(Errors.E709.format(port=args.port, host=args.host))
    port = args.port or free_port(DEFAULT_PORT, args.host)
    client_host = HOST if args.host in ("0.0.0.0", "::", "") else args.host
    url = f"http://{client_host}:{port}"
    log_file = Path(os.environ["PREFECT_HOME"]) / "server.log"
    server = start_server(args.host, port, log_file)
    stop = threading.Event()
    try:
        waited = wait_healthy(f"{url}/api/health", args.startup_timeout, server)
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()} {url}\n")
        print(f"Prefect server ready in {waited:.1f} s: open {url} (log: {log_file})", flush=True)
        print(f"Served runs may use folders under: {os.environ[ALLOW_ENV].replace(os.pathsep, ', ')}",
              flush=True)  # fmt: skip
        with api_settings(f"{url}/api"):
            served = deployments(
                str(Path(args.corpus).resolve()), str(Path(args.out).resolve()), args.interval
            )
            name = f"{PIPELINE_FLOW}/{PIPELINE_DEPLOYMENT}"
            if args.watch:

                def trigger() -> None:
                    with api_settings(f"{url}/api"):
                        print(f"PDFs changed under {args.corpus}: starting {name}", flush=True)
                        run_deployment(name, timeout=0)

                threading.Thread(
                    target=watch_corpus,
                    name="watch-corpus",
                    daemon=True,
                    args=(Path(args.corpus), trigger, args.watch, stop),
                ).start()
            print(
                f"Serving {', '.join(d.flow_name + '/' + d.name for d in served)}. Trigger a run with:\n"
                f"  PREFECT_API_URL={url}/api .venv/bin/prefect deployment run {name} "
                f"-p corpus=PATH -p out=PATH --watch\n"
                f"Stop with Ctrl-C or `make server-stop`.",
                flush=True,
            )
            # Schedules stay active: the server stops with this process, and serving again
            # replaces the deployment's scheduled runs.
            serve(*served, pause_on_shutdown=False, print_starting_message=False)
    finally:
        stop.set()
        n = stop_processes(server)
        pid_file.unlink(missing_ok=True)
        print(f"Stopped the Prefect server and {n} process(es) started for it.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
