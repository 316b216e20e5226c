"""``edgefiq models``: the built-in quality models and their cards (torch-free)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgefiq.cli import echo_table
from edgefiq.runtime.builtin_models import builtin_root, list_builtins, read_card


@click.command("models")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the cards (card.json contents) as JSON.")
def models(name: str | None, as_json: bool) -> None:
    """List the built-in quality models, or print the model card of NAME.

    A built-in model ships inside the package (onnx, tflite and OpenVINO artifacts with
    their sidecars, card.md, card.json) and scores without a MODEL argument:
    `edgefiq score IMAGES -o q.csv`, or `edgefiq.load_model()` in Python.

    \b
    Example:
      edgefiq models
      edgefiq models edgefiq-lfw
      edgefiq models --json
    """
    if name is not None:
        card = read_card(name)
        click.echo(json.dumps(card, indent=2) if as_json else (Path(card["folder"]) / "card.md").read_text())
        return
    found = list_builtins()
    if as_json:
        click.echo(json.dumps([m["card"] | {"default": m["default"]} for m in found], indent=2))
        return
    if not found:
        click.echo(f"no built-in model is installed (in {builtin_root()})")
        return
    echo_table([{"name": m["name"] + (" (default)" if m["default"] else ""), "artifacts": ", ".join(
        a["key"] for a in m["card"]["artifacts"]), "summary": m["summary"], "card": m["card_md"]} for m in found],
        title="built-in quality models")
