"""The command line: every command that writes a file takes -o/--out; older spellings keep working."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from themes.cli import app


def _command(*names: str) -> Any:
    command = typer.main.get_command(app)
    for name in names:
        command = command.commands[name]
    return command


def _options(*names: str) -> set[str]:
    return {opt for param in _command(*names).params for opt in param.opts}


@pytest.mark.parametrize("names", [("run",), ("classify",), ("evaluate",), ("labels", "export"),
                                   ("labels", "labelstudio-config")], ids=" ".join)
def test_cli_every_command_that_writes_a_file_takes_o_out(names):
    assert {"-o", "--out"} <= _options(*names)


def test_cli_classify_keeps_its_older_output_spelling():
    assert "--output" in _options("classify")


def test_cli_labels_export_keeps_the_positional_path():
    positional = [p for p in _command("labels", "export").params if p.param_type_name == "argument"]
    assert [p.name for p in positional] == ["path"] and not positional[0].required


# -- coded errors: one line with the code, exit status 1, no traceback ----------------------------

def _broken_codebook(monkeypatch) -> None:
    """Make every command that loads the codebook load one that does not exist."""
    from themes.codebook import load_codebook

    monkeypatch.setattr("themes.codebook.load_codebook", lambda *_: load_codebook("/nowhere/codebook.yaml"))


def test_cli_a_coded_error_prints_its_code_on_one_line_and_exits_1(monkeypatch):
    monkeypatch.delenv("THEMES_DEBUG", raising=False)
    _broken_codebook(monkeypatch)
    result = CliRunner().invoke(app, ["labels", "labelstudio-config"])
    assert result.exit_code == 1
    expected = ("error[E301]: Codebook /nowhere/codebook.yaml cannot be read (No such file or directory); "
                "check the path or set it with the codebook argument.")
    assert result.output.strip().splitlines() == [expected]
    assert not isinstance(result.exception, ValueError)  # handled, not raised


def test_cli_themes_debug_keeps_the_traceback(monkeypatch):
    from themes.codebook import CodebookError

    monkeypatch.setenv("THEMES_DEBUG", "1")
    _broken_codebook(monkeypatch)
    result = CliRunner().invoke(app, ["labels", "labelstudio-config"])
    assert isinstance(result.exception, CodebookError) and result.exception.code == "E301"


def test_cli_a_usage_error_shows_its_code(tmp_path):
    result = CliRunner().invoke(app, ["run", "--corpus", str(tmp_path / "absent"), "--no-prefect"])
    assert result.exit_code == 2
    shown = "".join(re.sub(r"[│╭╮╰╯─]", "", result.output).split())  # typer's box wraps the line
    assert "[E001]" in shown and "absentisnotafolderofPDFs" in shown


def test_cli_broken_codebook_from_the_shell_exits_1_with_the_code(tmp_path):
    """The real console path: ``python -m themes.cli`` with a codebook that is not YAML."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "codebook.yaml").write_text("themes: [unclosed\n", encoding="utf-8")
    env = {**os.environ, "THEMES_HOME": str(tmp_path)}
    env.pop("THEMES_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "themes.cli", "labels", "labelstudio-config"],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error[E302]: Codebook ") and "is not readable YAML" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stdout == ""
