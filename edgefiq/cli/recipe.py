"""``edgefiq recipe check``: validate a recipe file without running it."""

from __future__ import annotations

import click
import yaml

from edgefiq.errors import RecipeError, UsageError
from edgefiq.pipeline.recipe_check import check_recipe
from edgefiq.recipe import to_dict


@click.group()
def recipe() -> None:
    """Work with recipe files (YAML descriptions of a whole run).

    \b
    Example:
      edgefiq recipe check recipes/quickstart.yaml
    """


@recipe.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a ${NAME} recipe variable.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.SUB=VALUE",
              help="Override a recipe field (YAML value), as `edgefiq run --set` does.")
@click.option("--quiet-ok", is_flag=True, help="Print nothing when the recipe is fine (exit code only).")
@click.option("--show", "--print", "print_resolved", is_flag=True,
              help="Print the resolved recipe (every default filled in) as YAML on stdout.")
def check(file: str, variables: tuple[str, ...], overrides: tuple[str, ...], quiet_ok: bool,
          print_resolved: bool) -> None:
    """Validate FILE strictly and list every error (exit 2 if any).

    Checks unknown keys (with suggestions), wrong types and values, variables that are
    unset or given with --var but unused (a typo), and input paths that do not exist.
    Keys are named as --set spells them (distill.defaults.optim.epochs), and a missing
    input path names the --var that sets it. --show shows the resolved recipe (defaults
    filled in) as YAML.

    \b
    Example:
      edgefiq recipe check recipes/quickstart.yaml
      edgefiq recipe check recipes/lfw-mobilefacenet.yaml --var LFW=../shared/data/lfw-dev
      edgefiq recipe check recipes/quickstart.yaml --set distill.defaults.optim.epochs=2 --show
    """
    bad = [v for v in variables if "=" not in v]
    if bad:
        raise UsageError(f"--var {bad[0]!r} must look like NAME=VALUE")
    cfg, errors = check_recipe(file, dict(v.split("=", 1) for v in variables), overrides)
    if errors:
        for e in errors:
            click.echo(f"{file}: {e}", err=True)
        raise RecipeError(f"{file}: {len(errors)} error(s)")
    if print_resolved:
        click.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False), nl=False)
    if not quiet_ok:
        click.echo(f"{file}: ok", err=print_resolved)
