"""`make server`: a real Prefect server on a free loopback port serving the pipeline deployment.

The slow test starts ``python -m flows.serve`` as a user would, triggers a run through Prefect's
Python client with parameters, checks the outputs and artifacts, then stops it by its pid and
checks that nothing it started is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from flows.pipeline import PREVALENCE_ARTIFACT, SUMMARY_ARTIFACT, run_summary_markdown
from flows.serve import PIPELINE_DEPLOYMENT, PIPELINE_FLOW, free_port, watch_corpus
from themes.config import MODELS_DIR, PROJECT_ROOT, SAMPLE_DIR

SAMPLE_PDFS = sorted(SAMPLE_DIR.glob("*.pdf"))
DEPLOYMENT = f"{PIPELINE_FLOW}/{PIPELINE_DEPLOYMENT}"


def _wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"Timed out after {timeout_s:.0f} s waiting for {what}.")


def test_serve_watch_triggers_one_run_when_new_pdfs_settle(tmp_path):
    shutil.copy(SAMPLE_PDFS[0], tmp_path)
    calls: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch_corpus, args=(tmp_path, lambda: calls.append(1), 0.05, stop))
    watcher.start()
    try:
        time.sleep(0.3)
        assert calls == [], "an unchanged folder must not trigger a run"
        shutil.copy(SAMPLE_PDFS[1], tmp_path / "sub-folder.pdf")
        (tmp_path / "notes.txt").write_text("not a PDF")
        _wait_for(lambda: calls, 10, "a run after a new PDF")
        time.sleep(0.3)
        assert calls == [1], "one change must trigger exactly one run"
    finally:
        stop.set()
        watcher.join(timeout=5)


def test_serve_free_port_skips_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = free_port(busy)
        assert port != busy
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_serve_summary_lists_unreadable_files_and_links_every_output(tmp_path):
    written = [tmp_path / name for name in ("documents.csv", "prevalence.csv", "report.html")]
    documents = pd.DataFrame({
        "file": ["a.pdf", "locked.pdf"], "status": ["ok", "error"],
        "error_kind": [None, "encrypted"], "error": [None, "The file is password-protected."],
    })
    result = {"out": str(tmp_path), "model_version": "v1", "documents": 2, "documents_ok": 1,
              "pages": 12, "passages": 40,
              "prevalence": [{"theme": "optimism_bias", "n_documents": 1, "n_present": 1, "share": 1.0,
                              "ci_low": 0.21, "ci_high": 1.0}]}
    markdown = run_summary_markdown(result, documents, written, tmp_path / "corpus")
    assert "1 of 2 documents read" in markdown
    assert "`locked.pdf`: encrypted" in markdown
    assert "| optimism_bias | 1/1 | 100% | 21%–100% |" in markdown
    for path in written:
        assert f"]({path.as_uri()})" in markdown


# ---------------------------------------------------------------------------------------------
# The real server (slow).


@pytest.fixture
def served(tmp_path):
    """``python -m flows.serve`` on a free loopback port with a private database; yields its URL.

    Always stopped at the end (SIGTERM to its pid, then SIGKILL to anything left).
    """
    import psutil

    if not (MODELS_DIR / "DEFAULT").exists():
        pytest.fail("models/DEFAULT is missing: the project must ship a trained default model.")
    port = free_port(None)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_RUNNER_POLL_FREQUENCY": "2",
           "OMP_NUM_THREADS": "1"}
    env.pop("PREFECT_API_URL", None)
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.serve", "--port", str(port),
             "--pid-file", str(tmp_path / "serve.pid"), "--allow", str(tmp_path)],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    info = {"process": process, "url": f"http://127.0.0.1:{port}", "port": port,
            "log": tmp_path / "serve.log", "pid_file": tmp_path / "serve.pid"}
    try:
        yield info
    finally:
        leftovers = []
        if process.poll() is None:
            leftovers = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
        for child in leftovers:
            if child.is_running():
                child.kill()


def _deployment_ready(url: str, process: subprocess.Popen, log: Path):
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if process.poll() is not None:
        raise AssertionError(f"flows.serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
    try:
        with temporary_settings({PREFECT_API_URL: f"{url}/api"}), get_client(sync_client=True) as client:
            return client.read_deployment_by_name(DEPLOYMENT)
    except (ObjectNotFound, httpx.HTTPError):  # not up yet, or not registered yet
        return None


@pytest.mark.slow
def test_serve_runs_the_deployment_with_parameters_and_stops_cleanly(served, tmp_path):
    import psutil
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()
    for pdf in SAMPLE_PDFS[:2]:
        shutil.copy(pdf, corpus)
    deployment = _wait_for(lambda: _deployment_ready(served["url"], served["process"], served["log"]),
                           300, "the served deployment", poll_s=1)
    assert {"corpus", "out", "model", "workers", "sections"} <= set(
        deployment.parameter_openapi_schema["properties"])
    assert served["pid_file"].read_text().split()[0] == str(served["process"].pid)

    with temporary_settings({PREFECT_API_URL: f"{served['url']}/api"}):
        flow_run = run_deployment(DEPLOYMENT, timeout=900, poll_interval=2,
                                  parameters={"corpus": str(corpus), "out": str(out), "workers": 2,
                                              "sections": "findings"})
        assert flow_run.state.is_completed(), served["log"].read_text()[-3000:]
        refused = run_deployment(DEPLOYMENT, timeout=300, poll_interval=2,
                                 parameters={"corpus": str(corpus), "out": "/etc"})
        assert refused.state.is_failed()
        assert "Refusing out='/etc'" in served["log"].read_text() + str(refused.state.message)
        with get_client(sync_client=True) as client:
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [flow_run.id]}))
            run_ids = [flow_run.id, *(c.id for c in children)]
            artifacts = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[PREVALENCE_ARTIFACT, SUMMARY_ARTIFACT])))
                if a.flow_run_id in run_ids}

    assert [c.parameters["sections"] for c in children] == ["findings"]
    documents = pd.read_csv(out / "documents.csv")
    assert sorted(documents["file"]) == sorted(p.name for p in SAMPLE_PDFS[:2])
    assert (documents["status"] == "ok").all()
    for name in ("passages.parquet", "predictions.parquet", "prevalence.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert set(artifacts) == {PREVALENCE_ARTIFACT, SUMMARY_ARTIFACT}
    prevalence = pd.read_csv(out / "prevalence.csv")
    table = artifacts[PREVALENCE_ARTIFACT].data
    table = pd.DataFrame(json.loads(table) if isinstance(table, str) else table)
    assert sorted(table["theme"]) == sorted(prevalence["theme"])
    assert (out / "report.html").as_uri() in artifacts[SUMMARY_ARTIFACT].data

    started = psutil.Process(served["process"].pid).children(recursive=True)
    assert started, "the server should run as a child process"
    served["process"].send_signal(signal.SIGTERM)
    assert served["process"].wait(timeout=90) == 0
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, f"still running after stop: {[p.cmdline() for p in alive]}"
    assert not served["pid_file"].exists()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", served["port"])) != 0, "the server port still answers"


def test_serve_refuses_paths_outside_the_allowed_roots(tmp_path, monkeypatch):
    from flows.serve import ALLOW_DASK_ENV, ALLOW_ENV, check_served_parameters

    monkeypatch.setenv(ALLOW_ENV, str(tmp_path))
    monkeypatch.setenv(ALLOW_DASK_ENV, "tcp://10.0.0.5:8786")
    ok = {"corpus": str(tmp_path / "in"), "out": str(tmp_path / "out"), "model": None, "workers": 2,
          "dask_address": None}
    check_served_parameters(**ok)
    check_served_parameters(**{**ok, "dask_address": "tcp://10.0.0.5:8786", "model": "2026-11-23-d3030c00"})
    refused = [
        ({"out": "/etc"}, "Refusing out='/etc'"),
        ({"out": str(tmp_path / ".." / "elsewhere")}, "Refusing out="),
        ({"corpus": "/"}, "Refusing corpus='/'"),
        ({"model": "/tmp/evil/model"}, "Refusing model="),
        ({"workers": 500}, "Refusing workers=500"),
        ({"dask_address": "tcp://attacker:8786"}, "Refusing dask_address="),
    ]
    for change, message in refused:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")) as error:
            check_served_parameters(**{**ok, **change})
        assert "\n" not in str(error.value)


def test_serve_symlink_out_of_an_allowed_root_is_refused(tmp_path, monkeypatch):
    from flows.serve import ALLOW_ENV, check_served_parameters

    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to("/etc")
    monkeypatch.setenv(ALLOW_ENV, str(tmp_path / "root"))
    with pytest.raises(ValueError, match="Refusing out="):
        check_served_parameters(str(tmp_path / "root"), str(tmp_path / "root" / "link"), None, 1, None)


def test_serve_refusals_are_coded(tmp_path, monkeypatch):
    from flows.serve import ALLOW_ENV, check_served_parameters

    monkeypatch.setenv(ALLOW_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="Refusing workers=500") as error:
        check_served_parameters(str(tmp_path), str(tmp_path), None, 500, None)
    assert error.value.code == "E706"


def test_serve_a_port_in_use_ends_with_one_coded_line(tmp_path, monkeypatch, capsys):
    from flows import serve

    monkeypatch.setattr(serve.signal, "signal", lambda *_: None)  # leave pytest's SIGTERM alone
    monkeypatch.setenv(serve.ALLOW_ENV, "")
    monkeypatch.setenv(serve.ALLOW_DASK_ENV, "")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        status = serve.main(["--port", str(busy), "--pid-file", str(tmp_path / "server.pid")])
    assert status == 1
    assert capsys.readouterr().err == f"error[E709]: Port {busy} on 127.0.0.1 is in use; stop what listens " \
        "there or leave out --port.\n"


def test_serve_pipeline_run_refuses_unknown_sections_and_dask_without_prefect(tmp_path):
    from flows.pipeline import run

    with pytest.raises(ValueError, match="Unknown sections 'nope'") as error:
        run(str(tmp_path), str(tmp_path / "out"), sections="nope")
    assert error.value.code == "E701"
    with pytest.raises(ValueError, match="drop --no-prefect") as error:
        run(str(tmp_path), str(tmp_path / "out"), dask=True, prefect=False)
    assert error.value.code == "E702"


def test_serve_listens_on_loopback_unless_told_otherwise():
    from flows.serve import parse_args

    assert parse_args([]).host == "127.0.0.1"
    assert parse_args(["--host", "0.0.0.0"]).host == "0.0.0.0"
