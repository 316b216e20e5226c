"""Picture of every degradation kind on one aligned LFW crop at severities 0.25, 0.5, 0.75 and 1.

    python tools/capture_sheet.py                     # -> results/degradations.png
    python tools/capture_sheet.py --image FACE.png --kinds capture -o sheet.png

One row per kind (the classic pixel degradations, then the capture defects of
``edgefiq.data.capture``), labelled with its family; the first column is the clean crop.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from edgefiq.data.degrade import FAMILY, degrade, expand_kinds
from edgefiq.data.images import load_image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = ROOT.parent / "shared/data/lfw-dev/aligned112/Aaron_Guiel/Aaron_Guiel_0001.jpg"
SEVERITIES = (0.25, 0.5, 0.75, 1.0)


def sheet(img: np.ndarray, kinds: list[str], seed: int = 0, label_width: int = 150) -> Image.Image:
    """The grid: a label column, the clean image, then one column per severity (same random state per row)."""
    h, w = img.shape[:2]
    canvas = Image.new("RGB", (label_width + w * (1 + len(SEVERITIES)), 18 + h * len(kinds)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(["clean", *(f"severity {s:g}" for s in SEVERITIES)]):
        draw.text((label_width + c * w + 4, 3), title, fill="black")
    for r, kind in enumerate(kinds):
        y = 18 + r * h
        draw.text((4, y + h // 2 - 12), kind, fill="black")
        draw.text((4, y + h // 2 + 2), FAMILY[kind], fill="gray")
        canvas.paste(Image.fromarray(img), (label_width, y))
        for c, s in enumerate(SEVERITIES, start=1):
            out = degrade(img, kind, s, np.random.default_rng([seed, r]))
            canvas.paste(Image.fromarray(out), (label_width + c * w, y))
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="an aligned face crop")
    ap.add_argument("--kinds", default="all", help="kinds, families or groups (classic, capture, all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "degradations.png")
    args = ap.parse_args()
    img = load_image(args.image)
    sheet(img, expand_kinds(args.kinds.split(",")), args.seed).save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
