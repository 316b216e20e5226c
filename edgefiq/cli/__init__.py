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
import shutil
import sys
from typing import Any

import click

from edgefiq import __version__
from edgefiq.errors import DataError, EdgefiqError
from edgefiq.registry import suggest

# verb -> "module:attribute". Keep sorted by pipeline order.
COMMANDS: dict[str, str] = {
    "data": "edgefiq.cli.data:data",
    "label": "edgefiq.cli.label:label",
    "distill": "edgefiq.cli.distill:distill",
    "prune": "edgefiq.cli.prune:prune",
    "export": "edgefiq.cli.export:export", "quantize": "edgefiq.cli.export:quantize",
    "eval": "edgefiq.cli.eval:eval_cmd", "score": "edgefiq.cli.score:score", "bench": "edgefiq.cli.bench:bench",
    "bestshot": "edgefiq.cli.bestshot:bestshot",
    "models": "edgefiq.cli.models:models",
    "run": "edgefiq.cli.run:run",
    "recipe": "edgefiq.cli.recipe:recipe",
}


# verb -> the first line of its help, shown by `edgefiq --help` without importing the verb
# (importing distill or export pulls in torch: seconds and hundreds of MB). A test keeps
# these equal to the commands' own help; a verb missing here is imported to get its help.
SUMMARIES: dict[str, str] = {
    "data": "Inspect, align, degrade and sample face-image data; build calibration sets.",
    "label": "Label every image under IMAGES with a quality teacher; write OUTPUT (path,quality[,columns]).",
    "distill": "Train a small student to reproduce a teacher's quality scores.",
    "prune": "Prune checkpoint CKPT: remove channels (structured) or zero weights (l1, random).",
    "export": "Export checkpoint CKPT to an edge format and check it scores like torch.",
    "quantize": "Quantise checkpoint CKPT to int8 for a target (same flags as export, int8 by default).",
    "eval": "Compare quality sources by EDC/pAUC (both threshold conventions) and SRCC/PLCC.",
    "score": "Score every image under IMAGES with MODEL and write a path,quality CSV.",
    "bench": "Benchmark ARTIFACTS: p50/p90/p99 latency, throughput, load/first-call time, size, peak RSS.",
    "bestshot": "Pick the best face crops of every person in SOURCE: detect, track, align, score.",
    "models": "List the built-in quality models, or print the model card of NAME.",
    "run": "Run RECIPE: data -> label -> distill -> prune -> export -> eval -> bench -> report.",
    "recipe": "Work with recipe files (YAML descriptions of a whole run).",
}


def configure_output(verbose: bool | None = None, quiet: bool | None = None) -> None:
    """Apply -v/-q (given before or after the verb): log level, progress bars, third-party noise."""
    if verbose is not None:
        os.environ["EDGEFIQ_VERBOSE"] = "1" if verbose else os.environ.get("EDGEFIQ_VERBOSE", "0")
    if quiet:
        os.environ["EDGEFIQ_QUIET"] = "1"
    verbose_on = os.environ.get("EDGEFIQ_VERBOSE") == "1"
    quiet_on = os.environ.get("EDGEFIQ_QUIET") == "1"
    logging.basicConfig(level=logging.DEBUG if verbose_on else logging.WARNING if quiet_on else logging.INFO,
                        format="%(message)s", stream=sys.stderr, force=True)
    # lazy: edgefiq.console (tempfile, ...) is not needed by `edgefiq --help`, which stays minimal
    from edgefiq.console import silence_third_party

    silence_third_party(verbose=verbose_on)


def _flag_callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        configure_output(verbose=True) if param.name == "verbose" else configure_output(quiet=True)


_GLOBAL_FLAGS = (
    (("-v", "--verbose"), "Show debug logs, third-party library logs and full tracebacks."),
    (("-q", "--quiet"), "No progress bars or info logs."),
)


def add_global_flags(cmd: click.Command) -> click.Command:
    """Let -v/-q also follow the verb (``edgefiq score ... -v``), on every subcommand too."""
    if getattr(cmd, "_edgefiq_global_flags", False):
        return cmd
    taken = {o for p in cmd.params for o in getattr(p, "opts", [])}
    for opts, help_ in _GLOBAL_FLAGS:
        if not taken.intersection(opts):
            cmd.params.append(click.Option(list(opts), is_flag=True, expose_value=False, is_eager=True,
                                           callback=_flag_callback, help=help_))
    cmd._edgefiq_global_flags = True  # type: ignore[attr-defined]
    for sub in getattr(cmd, "commands", {}).values():
        add_global_flags(sub)
    return cmd


class LazyGroup(click.Group):
    """A click group that imports a verb's module only when that verb is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return add_global_flags(getattr(importlib.import_module(module), attr))

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0])
        if name not in COMMANDS and not ctx.resilient_parsing and not name.startswith("-"):
            ctx.fail(f"No such command {name!r}{suggest(name, list(COMMANDS))}")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in SUMMARIES:
                rows.append((name, SUMMARIES[name]))
                continue
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
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs, third-party library logs and full tracebacks.")
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
    configure_output(verbose=verbose, quiet=quiet)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: runs the group and maps errors to exit codes."""
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


def must_exist(kind: str) -> Any:
    """A click callback: a one-line ``Error: PATH: <kind> not found`` (exit 1) before any heavy import.

    Example:
        >>> @click.argument("ckpt", callback=must_exist("checkpoint"))   # doctest: +SKIP
    """

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        for v in value if isinstance(value, tuple) else (value,):
            if v is not None and v != "-" and not os.path.exists(v):
                raise DataError(f"{v}: {kind} not found")
        return value

    return check


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta["edgefiq_json"] = True


json_option = click.option("--json", "as_json", is_flag=True, expose_value=False, callback=_set_json,
                           help="Print the table as JSON on stdout (other messages go to stderr).")


def json_mode() -> bool:
    """True when the running verb was given ``--json`` (see ``json_option``)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get("edgefiq_json"))


def echo_info(message: str) -> None:
    """A human message ("wrote ..."): stdout normally, stderr under ``--json`` so stdout stays JSON."""
    click.echo(message, err=json_mode())


def echo_table(rows: list[dict[str, Any]], columns: list[str] | None = None, title: str | None = None) -> None:
    """Print rows as a rich table on stdout, or as a JSON list under ``--json`` (shared by verbs that print tables)."""
    # rich (~0.1 s) only when a table is printed, never for `edgefiq --help`
    from rich.console import Console
    from rich.table import Table

    if json_mode():
        import json  # lazy with edgefiq.utils (json, hashlib, tempfile): not needed by `edgefiq --help`

        from edgefiq.utils import json_default

        click.echo(json.dumps(rows, indent=2, default=json_default))
        return
    if not rows:
        click.echo("(no rows)")
        return
    cols = columns or list(rows[0])
    table = Table(title=title)
    for c in cols:
        table.add_column(c)
    cells = [["" if r.get(c) is None else f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c))
              for c in cols] for r in rows]
    for row in cells:
        table.add_row(*row)
    # wide enough for every cell: a path is never cut, whatever the terminal (or pipe) width
    need = 1 + sum(3 + max(len(c), *(len(row[k]) for row in cells)) for k, c in enumerate(cols))
    Console(width=max(need, shutil.get_terminal_size((100, 24)).columns)).print(table)
