"""The command line: every command that writes a file takes -o/--out; older spellings keep working."""

from __future__ import annotations

from typing import Any

import pytest
import typer

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
