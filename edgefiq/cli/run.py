"""``edgefiq run``: the whole pipeline from one recipe, resumable stage by stage."""

from __future__ import annotations

from pathlib import Path

import click

from edgefiq.cli import echo_info, echo_table, json_option
from edgefiq.errors import EdgefiqError, UsageError
from edgefiq.pipeline.recipe import STAGES, load_recipe
from edgefiq.pipeline.runner import failed_rows, run_recipe


@click.command()
@json_option
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(dir_okay=False))
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a ${NAME} recipe variable.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.SUB=VALUE",
              help="Override a recipe field (YAML value), e.g. --set distill.defaults.optim.epochs=2.")
@click.option("--only", type=click.Choice(STAGES), help="Run this stage alone (earlier stages must have completed).")
@click.option("--from", "start", type=click.Choice(STAGES), help="Re-run this stage and every later one.")
@click.option("-o", "--output", "run_dir", type=click.Path(file_okay=False),
              help="Run folder (default: the recipe's run_dir, else runs/<name>).")
def run(recipe_file: str, variables: tuple[str, ...], overrides: tuple[str, ...], only: str | None,
        start: str | None, run_dir: str | None) -> None:
    """Run RECIPE: data -> label -> distill -> prune -> export -> eval -> bench -> report.

    Each stage's inputs and configuration are hashed into RUN_DIR/state.json; a rerun skips
    unchanged stages, so an interrupted run resumes (distillation from its last.pt). The
    report (report.md, report.json, plots/) lands in the run folder. The exit code is 1 when
    any artifact row failed (e.g. an export refused by its parity gate); the report is still
    written, and the next run retries the export stage.

    \b
    Example:
      edgefiq run recipes/quickstart.yaml
      edgefiq run recipes/lfw-mobilefacenet.yaml --var LFW=../shared/data/lfw-dev \\
          --set distill.defaults.optim.epochs=2 -o runs/lfw
      edgefiq run recipes/quickstart.yaml --from export
    """
    bad = [v for v in variables if "=" not in v]
    if bad:
        raise UsageError(f"--var {bad[0]!r} must look like NAME=VALUE")
    cfg = load_recipe(recipe_file, dict(v.split("=", 1) for v in variables), overrides)
    out = run_dir or cfg.default_run_dir()
    reports = run_recipe(cfg, out, only=only, start=start)
    echo_table([{"stage": r.name, "status": r.status + (f" ({r.failed} failed)" if r.failed else ""),
                 "seconds": round(r.seconds, 1)} for r in reports],
               title=f"edgefiq run {cfg.name}")
    if any(r.name == "report" and r.status in ("ran", "resumed", "skipped") for r in reports):
        echo_info(f"report: {Path(out) / 'report.md'}")
    failed = failed_rows(reports)
    if failed:
        raise EdgefiqError(f"{failed} artifact row(s) failed; see the status column of {Path(out) / 'report.md'}")
