"""Helpers (no tests) for the distill tests: a tiny synthetic identity tree with a learnable quality label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_labelled_tree(root: Path, n_ids: int = 10, per_id: int = 4, size: int = 32, seed: int = 0) -> Path:
    """``root/imgs/<id>/<id>_NNNN.png`` whose label is a smooth function of contrast; returns the labels CSV."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ids):
        for j in range(per_id):
            q = float(rng.random())
            base = rng.integers(0, 256, size=(size, size, 3)).astype(np.float64)
            img = (128 + (base - 128) * q).clip(0, 255).astype(np.uint8)  # contrast grows with quality
            rel = f"id{i:02d}/id{i:02d}_{j:04d}.png"
            (root / "imgs" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "imgs" / rel)
            rows.append(f"{rel},{q:.6f}")
    csv = root / "labels.csv"
    csv.write_text("path,quality\n" + "\n".join(rows) + "\n")
    return csv


def recipe_dict(root: Path, **over: object) -> dict:
    d: dict = {"student": "tiny_cnn", "input_size": [32, 32],
               "data": {"images": str(root / "imgs"), "labels": str(root / "labels.csv"), "val_fraction": 0.3},
               "optim": {"epochs": 3, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0.5},
               "losses": {"plcc": 1.0, "rank": 0.5}, "threads": 1, "seed": 0}
    d.update(over)
    return d
