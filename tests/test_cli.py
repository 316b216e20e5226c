"""CLI-wide checks: every verb (and sub-verb) has help text with an example; errors are one line."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from edgefiq.cli import COMMANDS, cli


def _all_commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    ctx = click.Context(cli)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        out.append((name, cmd))
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", cmd.commands[sub]) for sub in cmd.commands]
    return out


@pytest.mark.parametrize("path,cmd", _all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_help_with_example(path: str, cmd: click.Command) -> None:
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert (cmd.help or "").strip(), f"{path} has no help text"
    assert "Example" in result.output, f"`edgefiq {path} --help` shows no example"
    assert "edgefiq " in result.output.split("Example", 1)[1], f"{path}: example should show an edgefiq command"


def test_top_level_help_lists_every_verb() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
    assert "unavailable" not in result.output


def test_version_and_module_entry_point() -> None:
    from edgefiq import __version__

    proc = subprocess.run([sys.executable, "-m", "edgefiq", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_unknown_verb_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "edgefiq", "distil"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_library_error_is_one_line_with_exit_code(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edgefiq", "data", "inspect", str(tmp_path / "missing")],
                          capture_output=True, text=True)
    assert proc.returncode in (1, 2)
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.strip().splitlines() if line.strip()]) <= 3
