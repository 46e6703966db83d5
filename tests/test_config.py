"""Settings every entry point gets: no telemetry, paths outside site-packages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bare_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k not in ("DO_NOT_TRACK", "THEMES_HOME")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return env


@pytest.mark.parametrize("module", ["flows.pipeline", "flows.retrain", "themes.cli"])
def test_config_flows_imported_bare_have_telemetry_off(tmp_path: Path, module: str) -> None:
    code = (f"import os, {module}\n"
            "from prefect.settings import get_current_settings\n"
            "print(get_current_settings().server.analytics_enabled, os.environ['DO_NOT_TRACK'])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=_bare_env(tmp_path), cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert out == ["False", "1"]


@pytest.mark.parametrize("module", ["flows.serve", "themes.cli"])
def test_config_prefect_environment_applied_before_prefect_reads_it(tmp_path: Path, module: str) -> None:
    """One start-up timeout everywhere, and a variable the user set is kept."""
    env = {**_bare_env(tmp_path), "PREFECT_LOGGING_LEVEL": "WARNING"}
    code = (f"import {module}\n"
            "from prefect.settings import get_current_settings\n"
            "s = get_current_settings()\n"
            "print(s.server.ephemeral.startup_timeout_seconds, s.logging.level, s.home.name)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert out == ["180", "WARNING", ".prefect"]


def test_config_themes_home_moves_everything_written(tmp_path: Path) -> None:
    env = {**_bare_env(tmp_path), "THEMES_HOME": str(tmp_path / "home")}
    code = ("import os, themes.config as c\n"
            "print(c.DEFAULT_OUT_DIR, c.LABELS_DIR, os.environ['PREFECT_HOME'], c.MODELS_DIR, sep='\\n')")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.splitlines()  # fmt: skip
    home = tmp_path / "home"
    assert out[:3] == [str(home / "out"), str(home / "corpus" / "labels"), str(home / ".prefect")]
    # No models/DEFAULT under the new home yet: the shipped default model is read where it is.
    assert Path(out[3], "DEFAULT").is_file()


def test_config_a_wheel_install_trains_into_the_home_folder(tmp_path: Path, monkeypatch) -> None:
    from themes import config

    monkeypatch.setattr(config, "SOURCE_ROOT", None)
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path)
    bundled = config.PACKAGE_DIR / "bundled_models"
    assert config.writable_models_dir(bundled) == tmp_path / "models"
    assert config.writable_models_dir(tmp_path / "mine") == tmp_path / "mine"
