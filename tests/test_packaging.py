"""A wheel installed outside the checkout runs from an empty folder and writes nothing into itself."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

from themes.config import SOURCE_ROOT

pytestmark = pytest.mark.slow


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}  # fmt: skip


@pytest.mark.skipif(SOURCE_ROOT is None, reason="needs the source checkout to build the wheel")
def test_packaging_wheel_runs_from_an_empty_folder_and_writes_outside_site_packages(tmp_path: Path) -> None:
    assert SOURCE_ROOT is not None
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(SOURCE_ROOT)], check=True, cwd=tmp_path)  # fmt: skip
    shutil.rmtree(SOURCE_ROOT / "build", ignore_errors=True)  # setuptools' scratch folder
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                    str(next(wheels.glob("themes-*.whl")))], check=True, env=clean)  # fmt: skip
    # The dependencies are this environment's (offline, no download), added after the install so
    # pip never sees this environment's themes. A plain path entry: its own .pth files (an
    # editable themes) are not processed, so only the wheel provides themes.
    deps = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()]
    (purelib / "zz-project-deps.pth").write_text("\n".join(deps) + "\n")
    before = _snapshot(purelib)

    work = tmp_path / "empty"
    work.mkdir()
    shutil.copytree(SOURCE_ROOT / "corpus" / "sample", work / "reviews", ignore=shutil.ignore_patterns("src", "*.py"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "THEMES_", "PYTHON", "VIRTUAL_ENV"))}  # fmt: skip
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")  # fmt: skip
    probe = "import themes, themes.config as c; print(themes.__file__, c.MODELS_DIR, c.CODEBOOK_PATH, sep='\\n')"
    where = subprocess.run([str(python), "-c", probe],
                           cwd=work, env=env, check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert str(purelib) in where.splitlines()[0], where
    assert str(SOURCE_ROOT) not in where, "the installed package must not find the checkout"
    done = subprocess.run([str(venv / "bin" / "themes"), "run", "--corpus", "reviews", "--out", "out"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    documents = pd.read_csv(work / "out" / "documents.csv")
    assert (documents["status"] == "ok").sum() >= 10
    assert (work / "out" / "report.html").is_file()
    assert (work / ".prefect").is_dir(), "the Prefect home goes under the current folder"
    assert _snapshot(purelib) == before, "the run wrote into site-packages"
