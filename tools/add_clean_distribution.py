"""Give the shipped built-in models a clean-photo score distribution (issue 26, "scores that mean
something on clean photos"), without rebuilding them.

    .venv/bin/python tools/add_clean_distribution.py      # every model under edgefiq/runtime/builtin

Each artifact scores the clean crops of the validation identities its run held out (the split
in its card: LFW pairs folds 6-7; `edgefiq.pipeline.stages.split_identities`); the distribution
goes into its sidecar (``extra.score_distribution_clean``, which ``edgefiq score --reject-fraction``
reads by default), the card gains it and, per threshold, the share of clean photos rejected, and
``card.md`` is rendered again (``edgefiq.pipeline.card.render_card``). New builds record the same
through ``build_builtin_model``.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ROOT / "edgefiq" / "runtime" / "builtin"


def clean_validation_images(card: dict) -> list[Path]:
    """The clean crops of the validation identities of the card's training split."""
    from edgefiq.data.readers import list_images, relpaths
    from edgefiq.pipeline.recipe import load_recipe
    from edgefiq.pipeline.stages import split_identities

    recipe = load_recipe(ROOT / "recipes" / f"{card['training']['recipe']}.yaml")
    images = ROOT / card["training"]["images"]
    if not images.is_dir():
        images = Path(card["training"]["images"]).resolve()
    _, val = split_identities(relpaths(list_images(images), images), recipe)
    return [images / r for r in val]


def main() -> None:
    from edgefiq.metrics.thresholds import score_distribution
    from edgefiq.pipeline.card import CARD_DEFAULTS, render_card, with_clean_rejection
    from edgefiq.pipeline.ship import add_to_sidecar
    from edgefiq.runtime.model import load_model
    from edgefiq.runtime.score import score_paths
    from edgefiq.utils import atomic_write_text, write_json

    for folder in sorted(p for p in BUILTIN.iterdir() if (p / "card.json").is_file()):
        card = json.loads((folder / "card.json").read_text())
        paths = clean_validation_images(card)
        dists = {}
        for art in card["artifacts"]:
            _, scores = score_paths(load_model(folder / art["file"], threads=2), paths, desc=f"{folder.name} {art['key']}")
            dists[art["key"]] = score_distribution(scores)
            add_to_sidecar(folder / art["file"], score_distribution_clean=dists[art["key"]])
        clean = dists[card["score"]["distribution_of"]]
        card["score"]["distribution_clean"] = clean
        if "which `edgefiq score --reject-fraction F` uses." in card["score"]["scale"]:   # the old default text
            card["score"]["scale"] = CARD_DEFAULTS["score_scale"]
        card["thresholds"] = with_clean_rejection(card["thresholds"], clean)
        write_json(folder / "card.json", card)
        atomic_write_text(folder / "card.md", render_card(card, sorted(p.name for p in folder.glob("edc_fmr*.png"))))
        rows = [r for r in card["thresholds"] if r["fmr"] == card["thresholds"][0]["fmr"]]
        print(f"{folder.name}: {len(paths)} clean validation photos; reject fraction of all images -> clean photos "
              "rejected: " + ", ".join(f"{r['fraction']:g} -> {r['clean_rejected']:.3f}" for r in rows))


if __name__ == "__main__":
    main()
