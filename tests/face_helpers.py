"""Helpers (no tests) for the teacher tests: seeded face-sized images an FR model embeds differently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def smooth_noisy_faces(root: Path, n: int, *, identities: int = 2, noise: tuple[float, float] = (5.0, 10.0),
                       seed: int = 0) -> list[str]:
    """``n`` 112x112 PNGs under ``root/P<k>/``: an upsampled 8x8 pattern plus noise of std
    ``noise[0] + noise[1] * i`` (image i), so structure and quality vary; returns their relpaths."""
    rng = np.random.default_rng(seed)
    rels = []
    for i in range(n):
        rel = f"P{i % identities}/img_{i:04d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(base).resize((112, 112), Image.Resampling.BICUBIC), np.float32)
        img += rng.normal(0, noise[0] + noise[1] * i, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / rel)
        rels.append(rel)
    return rels
