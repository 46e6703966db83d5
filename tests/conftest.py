"""Shared fixtures. Prefect runs locally, quietly, with its database in a temporary folder."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Before anything imports prefect: no telemetry (it can lock SQLite under pytest) and a private home.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="themes-prefect-"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import pytest

from themes.config import shared_dir


@pytest.fixture(scope="session")
def shared():
    """The ../shared folder; skips the test when it is absent (a user's fresh clone)."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is absent: real-corpus checks run in CI only.")
    return path


#: Stands in for OCRmyPDF: checks it was asked to OCR and writes a PDF that has text, or fails.
_FAKE_OCRMYPDF = """#!{python}
import os, shutil, sys
args = sys.argv[1:]
if os.environ.get("FAKE_OCR_FAIL"):
    sys.stderr.write("ERROR - tesseract: language 'eng' not installed\\n")
    sys.exit(3)
assert "--force-ocr" in args and args[-2].endswith(".pdf"), args
shutil.copyfile(os.environ["FAKE_OCR_RESULT"], args[-1])
"""


@pytest.fixture
def fake_ocrmypdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``ocrmypdf`` first on PATH that turns any scan into tests/data/numbered.pdf."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "ocrmypdf"
    exe.write_text(_FAKE_OCRMYPDF.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_OCR_RESULT", str(Path(__file__).parent / "data" / "numbered.pdf"))
    return exe


def copy_samples(folder: Path, names: tuple[str, ...]) -> Path:
    """A corpus folder holding copies of the named sample PDFs (tests must not touch the originals)."""
    import shutil

    from themes.config import SAMPLE_DIR

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(SAMPLE_DIR / name, folder / name)
    return folder
