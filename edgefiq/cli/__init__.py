"""The ``edgefiq`` command: a click group whose verbs live one per module in this package.

Verbs are imported lazily (``COMMANDS`` maps verb -> ``module:attribute``), so
``edgefiq --help`` starts without importing torch and the torch-free runtime install
still has ``score`` and ``bench``. Library errors (``EdgefiqError``) become one-line
messages with their exit code; tracebacks only with ``--verbose``.

To add a verb: write ``edgefiq/cli/<verb>.py`` with a click command whose help text
has an ``Example:`` block, and add one line to ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from edgefiq import __version__

# verb -> "module:attribute". Keep sorted by pipeline order.
COMMANDS: dict[str, str] = {
    "data": "edgefiq.cli.data:data",
    "label": "edgefiq.cli.label:label",
    "distill": "edgefiq.cli.distill:distill",
    "prune": "edgefiq.cli.prune:prune",
    "export": "edgefiq.cli.export:export", "quantize": "edgefiq.cli.export:quantize",
    "eval": "edgefiq.cli.eval:eval_cmd", "score": "edgefiq.cli.score:score", "bench": "edgefiq.cli.bench:bench",
    "run": "edgefiq.cli.run:run",
    "recipe": "edgefiq.cli.recipe:recipe",
}


class LazyGroup(click.Group):
    """A click group that imports a verb's module only when that verb is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            try:
                cmd = self.get_command(ctx, name)
            except ImportError as e:  # e.g. torch-free install: verb needs torch
                rows.append((name, f"(unavailable: {e.name or e} is not installed)"))
                continue
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=70)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="edgefiq")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs and full tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or info logs.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """edgefiq: turn big face-image-quality teachers into tiny, verified edge models.

    Pipeline: label (teacher scores) -> distill (train a student) -> prune ->
    export (onnx/openvino/tflite, fp32/fp16/int8) -> eval (SRCC, EDC/pAUC) -> bench.

    \b
    Example:
      edgefiq data inspect ../shared/data/lfw-dev/aligned112
      edgefiq <command> --help
    """
    ctx.obj = {"verbose": verbose}
    os.environ["EDGEFIQ_VERBOSE"] = "1" if verbose else "0"
    if quiet:
        os.environ["EDGEFIQ_QUIET"] = "1"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: runs the group and maps errors to exit codes."""
    from edgefiq.errors import EdgefiqError

    try:
        return cli.main(args=argv, prog_name="edgefiq", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except EdgefiqError as e:
        if os.environ.get("EDGEFIQ_VERBOSE") == "1":
            raise
        click.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


def echo_table(rows: list[dict[str, Any]], columns: list[str] | None = None, title: str | None = None) -> None:
    """Print rows as a rich table on stdout (shared by verbs that print tables)."""
    from rich.console import Console
    from rich.table import Table

    if not rows:
        click.echo("(no rows)")
        return
    cols = columns or list(rows[0])
    table = Table(title=title)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols))
    Console(width=max(100, sum(len(c) + 4 for c in cols))).print(table)
