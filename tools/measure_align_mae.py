"""Measure how well `edgefiq data align` reproduces the shared LFW aligned112 crops.

Aligns ../shared/data/lfw-dev/raw_sample (200 raw 250x250 images) with landmarks.tsv
through the real CLI, compares every output with lfw-dev/aligned112 (mean absolute
pixel difference, 0-255), for both landmark conventions, and writes
results/align_mae.json and results/align_mae.md.

Usage: python tools/measure_align_mae.py [--shared ../shared/data] [--out results]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgefiq.data.images import load_image
from edgefiq.data.readers import list_images
from edgefiq.utils import atomic_write_text, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--out", default="results")
    args = ap.parse_args()
    lfw = Path(args.shared) / "lfw-dev"
    result: dict[str, dict[str, float]] = {}
    for conv in ("pillow", "opencv"):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "edgefiq", "data", "align", str(lfw / "raw_sample"), str(lfw / "landmarks.tsv"),
                   "-o", tmp, "--convention", conv]
            subprocess.run(cmd, check=True)
            outs = list_images(tmp)
            maes = np.array([np.abs(load_image(p).astype(np.float64) - load_image(lfw / "aligned112" / p.relative_to(tmp))).mean()
                             for p in outs])
        result[conv] = {"images": len(maes), "mae_mean": round(float(maes.mean()), 4),
                        "mae_median": round(float(np.median(maes)), 4), "mae_max": round(float(maes.max()), 4)}
    out = Path(args.out)
    write_json(out / "align_mae.json", {"command": "edgefiq data align raw_sample landmarks.tsv -o OUT --convention C",
                                        "reference": "lfw-dev/aligned112", "results": result})
    rows = "\n".join(f"| {c} | {r['images']} | {r['mae_mean']:.3f} | {r['mae_median']:.3f} | {r['mae_max']:.3f} |"
                     for c, r in result.items())
    atomic_write_text(out / "align_mae.md",
                      "# Alignment vs shared aligned112 crops\n\n`python tools/measure_align_mae.py`; mean absolute "
                      "pixel difference (0-255) between `edgefiq data align` outputs (JPEG q95) and "
                      "`lfw-dev/aligned112` on the 200 `raw_sample` images.\n\n"
                      "| convention | images | MAE mean | MAE median | MAE max |\n|---|---|---|---|---|\n" + rows + "\n")
    print((out / "align_mae.md").read_text())


if __name__ == "__main__":
    main()
