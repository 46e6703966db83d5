"""Incremental, idempotent and crash-safe runs: the flow re-parses only what changed.

Each test starts from one finished run over a small copy of the sample corpus, changes the corpus
(nothing, one file added, one renamed, one replaced) and runs the flow again with a spy on
``themes.ingest.ingest_many``, the reader pool through which the flow parses PDFs. The kill test runs
``themes run`` in a subprocess, kills it with SIGKILL mid-way and runs it again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from prefect.testing.utilities import prefect_test_harness

from themes import ingest
from themes.config import SAMPLE_DIR

pytestmark = pytest.mark.slow

#: The first run's corpus; SPARE is kept out of it to be added or swapped in later.
CORPUS_FILES = (
    "2019_northmere_scr_child-a.pdf",
    "2020_eastwold_lcspr_child-b.pdf",
    "2021_ashby-fen_rapid-review_child-c.pdf",
)
SPARE = "2022_fenwick-moor_rapid-review_child-f.pdf"

OUTPUT_FILES = ("documents.csv", "passages.parquet", "predictions.parquet", "prevalence.csv",
                "document_themes.csv", "breakdowns.csv", "tables.xlsx", "report.html")


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness():
        yield


@pytest.fixture
def parsed(monkeypatch) -> list[str]:
    """File names handed to ingest (parsed, not taken from the cache) during the test."""
    calls: list[str] = []
    real = ingest.ingest_many

    def spy(paths, *args, **kwargs):
        paths = list(paths)
        calls.extend(Path(p).name for p in paths)
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(ingest, "ingest_many", spy)
    return calls


def _run(corpus: Path, out: Path) -> dict:
    from flows.pipeline import run

    return run(str(corpus), str(out), workers=2)


@pytest.fixture(scope="module")
def first_run(harness, tmp_path_factory) -> tuple[Path, Path]:
    """A corpus of three sample PDFs and the output folder (with its cache) of one full run."""
    root = tmp_path_factory.mktemp("first")
    corpus, out = root / "corpus", root / "out"
    corpus.mkdir()
    for name in CORPUS_FILES:
        shutil.copy2(SAMPLE_DIR / name, corpus / name)
    result = _run(corpus, out)
    assert result["documents_ok"] == len(CORPUS_FILES)
    return corpus, out


@pytest.fixture
def workspace(first_run, tmp_path) -> tuple[Path, Path]:
    """A private copy of the first run's corpus and output folder, free to change."""
    corpus, out = first_run
    shutil.copytree(corpus, tmp_path / "corpus")
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / "corpus", tmp_path / "out"


def _documents(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "documents.csv")


def test_incremental_unchanged_corpus_parses_nothing(workspace, parsed):
    corpus, out = workspace
    before = _documents(out)
    _run(corpus, out)
    assert parsed == []
    after = _documents(out)
    assert sorted(after["file"]) == sorted(CORPUS_FILES)
    pd.testing.assert_frame_equal(after.sort_values("file", ignore_index=True),
                                  before.sort_values("file", ignore_index=True))


def test_incremental_added_pdf_is_the_only_one_parsed(workspace, parsed):
    corpus, out = workspace
    shutil.copy2(SAMPLE_DIR / SPARE, corpus / SPARE)
    _run(corpus, out)
    assert parsed == [SPARE]
    documents = _documents(out)
    assert sorted(documents["file"]) == sorted([*CORPUS_FILES, SPARE])
    added = documents.loc[documents["file"] == SPARE, "doc_id"].item()
    assert added in set(pd.read_parquet(out / "passages.parquet")["doc_id"])


def test_incremental_renamed_pdf_parses_nothing_and_shows_its_new_name(workspace, parsed):
    corpus, out = workspace
    old = CORPUS_FILES[0]
    old_id = _documents(out).set_index("file").loc[old, "doc_id"]
    (corpus / old).rename(corpus / "renamed_review.pdf")
    _run(corpus, out)
    assert parsed == []
    documents = _documents(out).set_index("file")
    assert old not in documents.index
    assert documents.loc["renamed_review.pdf", "doc_id"] == old_id
    assert documents.loc["renamed_review.pdf", "status"] == "ok"


def test_incremental_changed_pdf_replaces_its_old_rows(workspace, parsed):
    corpus, out = workspace
    changed = CORPUS_FILES[1]
    old_id = _documents(out).set_index("file").loc[changed, "doc_id"]
    shutil.copyfile(SAMPLE_DIR / SPARE, corpus / changed)  # same name, new content
    _run(corpus, out)
    assert parsed == [changed]
    documents = _documents(out)
    assert len(documents) == len(CORPUS_FILES)
    new_id = documents.set_index("file").loc[changed, "doc_id"]
    assert new_id == ingest.doc_id_of(SAMPLE_DIR / SPARE) != old_id
    passages = pd.read_parquet(out / "passages.parquet")
    assert old_id not in set(documents["doc_id"]) | set(passages["doc_id"])
    assert (passages["doc_id"] == new_id).any()
    old_prefix = f"{old_id[:16]}:"
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert not predictions["passage_id"].str.startswith(old_prefix).any()
    assert old_id not in set(pd.read_csv(out / "document_themes.csv")["doc_id"])


def test_incremental_scan_cached_without_ocr_is_read_again_with_ocr(workspace, parsed, fake_ocrmypdf):
    # A researcher runs once, sees a scan listed as no_text_layer, installs OCR and runs with --ocr:
    # the scan is read again (through OCR) and nothing else is.
    from flows.pipeline import run

    corpus, out = workspace
    scan = "2020_westmere_scr_child-s.pdf"
    shutil.copy2(Path(__file__).parent / "data" / "image_only.pdf", corpus / scan)
    _run(corpus, out)
    assert _documents(out).set_index("file").loc[scan, "error_kind"] == "no_text_layer"
    parsed.clear()
    run(str(corpus), str(out), workers=2, ocr=True)
    assert parsed == [scan]
    documents = _documents(out).set_index("file")
    assert documents.loc[scan, "status"] == "ok"
    assert bool(documents.loc[scan, "ocr"]) and not documents.drop(index=scan)["ocr"].any()
    passages = pd.read_parquet(out / "passages.parquet")
    assert (passages["doc_id"] == documents.loc[scan, "doc_id"]).any()


# -- kill -9 -----------------------------------------------------------------------------------

def _themes_run(corpus: Path, out: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``themes run`` in its own process group (so a kill reaches its children too)."""
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "themes.cli", "run", "--corpus", str(corpus), "--out", str(out),
             "--workers", "2"],
            stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )


def _cache_files(out: Path) -> list[Path]:
    return list((out / "cache").glob("*/*.json"))


def test_incremental_killed_run_completes_with_no_duplicate_or_missing_rows(tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()
    pdfs = sorted(SAMPLE_DIR.glob("*.pdf"))
    assert len(pdfs) >= 10, "the sample corpus should hold a dozen reviews"
    for pdf in pdfs:
        shutil.copy2(pdf, corpus / pdf.name)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONUNBUFFERED": "1"}
    env.pop("PREFECT_API_URL", None)

    first = _themes_run(corpus, out, env, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    try:
        while not _cache_files(out):
            assert first.poll() is None, (
                f"themes run ended before it could be killed:\n{(tmp_path / 'first.log').read_text()}")
            assert time.monotonic() < deadline, "no document was cached within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    cached_at_kill = len(_cache_files(out))
    assert cached_at_kill < len(pdfs), "the run finished before the kill; the test needs a mid-way kill"
    assert not (out / "documents.csv").exists()

    second = _themes_run(corpus, out, env, tmp_path / "second.log")
    try:
        code = second.wait(timeout=900)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
    log = (tmp_path / "second.log").read_text(errors="replace")
    assert code == 0, log[-3000:]
    # Work finished before the kill is not redone.
    assert log.count("(cached)") >= cached_at_kill

    documents = pd.read_csv(out / "documents.csv")
    assert sorted(documents["file"]) == sorted(p.name for p in pdfs)  # each exactly once
    assert documents["doc_id"].is_unique
    failed = documents[documents["status"] != "ok"]
    assert failed.empty, failed[["file", "error_kind", "error"]].to_string()
    passages = pd.read_parquet(out / "passages.parquet")
    assert passages["passage_id"].is_unique
    assert set(passages["doc_id"]) == set(documents["doc_id"])
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert not predictions.duplicated(["passage_id", "theme"]).any()
    assert set(predictions["passage_id"]) == set(passages["passage_id"])
    for name in OUTPUT_FILES:
        path = out / name
        if name.endswith(".csv"):
            pd.read_csv(path)
        elif name.endswith(".parquet"):
            pd.read_parquet(path)
        elif name.endswith(".xlsx"):
            assert pd.ExcelFile(path).sheet_names
        else:
            assert path.read_text(encoding="utf-8").rstrip().endswith("</html>")


def _reader_processes(pid: int) -> list[int]:
    """Ingest reader processes (``_worker_main``) among the children of ``pid``."""
    readers = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"_worker_main" in cmdline:
                readers.append(int(child))
    return readers


def _holds_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open, i.e. is reading it now."""
    path = path.resolve()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            if Path(os.readlink(fd)) == path:
                return True
        except OSError:
            continue
    return False


def _long_review(path: Path, pages: int = 30) -> None:
    """A plain review long enough (a few seconds' reading) to kill its reader mid-file."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    for page in range(1, pages + 1):
        for line in range(45):
            pdf.drawString(72, 770 - 15 * line, f"{page}.{line} The social worker visited the family "
                           "and recorded that the mother was engaging well with the plan.")
        pdf.showPage()
    pdf.save()


def test_incremental_killed_reader_process_is_read_again_next_run(tmp_path):
    # The kernel's OOM killer picks the largest process, often a PDF reader: that file ends the run
    # as an error, but it is not the file's fault, so the next run must read it again.
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()
    for name in (*CORPUS_FILES, SPARE):
        shutil.copy2(SAMPLE_DIR / name, corpus / name)
    long_review = corpus / "2023_longshire_lcspr_child-z.pdf"
    _long_review(long_review)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONUNBUFFERED": "1"}
    env.pop("PREFECT_API_URL", None)

    first = _themes_run(corpus, out, env, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    killed: set[int] = set()
    try:
        # Kill the reader while it has the long review open, i.e. mid-file; the file is tried once
        # more on a fresh reader, so kill that one too.
        while len(killed) < 2:
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "no reader opened the long review within 300 s"
            busy = [pid for pid in _reader_processes(first.pid)
                    if pid not in killed and _holds_open(pid, long_review)]
            if busy:
                try:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.add(busy[0])
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        assert first.wait(timeout=900) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    crashed = pd.read_csv(out / "documents.csv").query("status != 'ok'")
    assert list(crashed["file"]) == [long_review.name], "the killed reader's file should be the one error"

    second = _themes_run(corpus, out, env, tmp_path / "second.log")
    assert second.wait(timeout=900) == 0, (tmp_path / "second.log").read_text()[-3000:]
    documents = pd.read_csv(out / "documents.csv")
    failed = documents[documents["status"] != "ok"]
    assert failed.empty, failed[["file", "error_kind", "error"]].to_string()
