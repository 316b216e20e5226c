"""``edgefiq recipe check``: validate a recipe file without running it."""

from __future__ import annotations

import click


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
def check(file: str, variables: tuple[str, ...]) -> None:
    """Validate FILE strictly: unknown keys, wrong types and bad values are errors.

    Prints the resolved recipe (defaults filled in) as YAML.

    \b
    Example:
      edgefiq recipe check recipes/quickstart.yaml
      edgefiq recipe check recipes/lfw-mobilefacenet.yaml --var LFW=../shared/data/lfw-dev
    """
    import yaml

    from edgefiq.pipeline.recipe import load_recipe
    from edgefiq.recipe import to_dict

    vars_ = dict(v.split("=", 1) for v in variables)
    cfg = load_recipe(file, variables=vars_)
    click.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False), nl=False)
    click.echo(f"# {file}: ok", err=True)
