"""Build edgefiq's built-in quality model from a finished run (optionally running the recipe first).

Writes ``edgefiq/runtime/builtin/<name>/``: the chosen student's artifacts (onnx, OpenVINO IR,
tflite; fp32 and int8) with sidecars that carry the validation score distribution, card.md,
card.json (validation SRCC/pAUC, latency, thresholds, reference scores on generated images)
and the EDC plots, then marks it the default built-in model. All logic is in
``edgefiq.pipeline.ship.build_builtin_model``.

Example:
    python tools/build_builtin_model.py runs/lfw-full --name edgefiq-lfw --min-srcc 0.85 --min-speedup 20
    python tools/build_builtin_model.py runs/lfw-full --recipe recipes/lfw-mobilefacenet.yaml \\
        --name edgefiq-lfw --model mobilenetv3_small_100/structured-0.3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def card_options(pairs: list[str]) -> dict[str, str]:
    """``FIELD=TEXT`` pairs -> card overrides; an unknown field is an error naming the known ones."""
    from edgefiq.pipeline.card import CARD_DEFAULTS

    out = dict(p.split("=", 1) for p in pairs if "=" in p)
    bad = [p for p in pairs if "=" not in p] + [k for k in out if k not in CARD_DEFAULTS]
    if bad:
        raise SystemExit(f"--card: unknown {', '.join(bad)}; fields: {', '.join(CARD_DEFAULTS)}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, (re)run the recipe if asked, build the built-in model folder."""
    from edgefiq.pipeline.ship import DEFAULT_KEYS, build_builtin_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="the `edgefiq run` folder (report.json, export/, eval/)")
    ap.add_argument("--recipe", type=Path, help="run (or resume) this recipe into RUN_DIR first")
    ap.add_argument("--name", default="edgefiq-lfw", help="built-in model name (builtin:NAME)")
    ap.add_argument("--model", help="report model to ship, e.g. mobilenetv3_small_100/structured-0.3 "
                                    "(default: the fastest with every artifact ok and SRCC >= --min-srcc)")
    ap.add_argument("--artifacts", default="auto", help="TARGET-PRECISION keys to ship, comma-separated; auto: "
                    f"{','.join(DEFAULT_KEYS)} must all be ok, every int8 one is shipped, then the others fastest "
                    "first while they fit in --max-mb")
    ap.add_argument("--val-labels", type=Path, help="validation label CSV (default: RUN_DIR/label/val.csv)")
    ap.add_argument("--min-srcc", type=float, default=0.85, help="refuse a student below this SRCC vs the teacher")
    ap.add_argument("--max-mb", type=float, default=10.0, help="refuse more than this many MB of artifacts")
    ap.add_argument("--min-speedup", type=float, default=20.0,
                    help="refuse unless a shipped artifact is this many times faster than the teacher (same runtime)")
    ap.add_argument("--out", type=Path, default=ROOT / "edgefiq" / "runtime" / "builtin", help="built-in root")
    ap.add_argument("--no-default", action="store_true", help="do not make it the default built-in model")
    ap.add_argument("--card", action="append", default=[], metavar="FIELD=TEXT",
                    help="override a card text field (edgefiq.pipeline.card.CARD_DEFAULTS), e.g. licence_weights=...")
    a = ap.parse_args(argv)
    if a.recipe:
        from edgefiq.pipeline.recipe import load_recipe
        from edgefiq.pipeline.runner import run_recipe

        run_recipe(load_recipe(a.recipe), a.run_dir)
    keys = None if a.artifacts == "auto" else tuple(a.artifacts.split(","))
    out = build_builtin_model(a.run_dir, a.out, a.name, model=a.model, keys=keys,
                              val_labels=a.val_labels, min_srcc=a.min_srcc, max_mb=a.max_mb, min_speedup=a.min_speedup,
                              make_default=not a.no_default, card_options=card_options(a.card))
    print(f"built-in model: {out} (card: {out / 'card.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
