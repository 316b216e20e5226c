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


def metrics_rows(run: Path) -> list[dict]:
    """``metrics.jsonl`` rows without the machine-dependent timing keys (for exact-resume comparisons)."""
    import json

    from edgefiq.distill.loop import TIMING_KEYS

    return [{k: v for k, v in json.loads(ln).items() if k not in TIMING_KEYS}
            for ln in (run / "metrics.jsonl").read_text().splitlines()]


def interrupt_then_resume(cfg: object, out: Path, monkeypatch: object, *, after_epoch: int) -> None:
    """Run ``distill(cfg, out)``, interrupted (KeyboardInterrupt) right after epoch ``after_epoch`` was
    checkpointed, then ``distill(cfg, out, resume=True)`` to the end."""
    import pytest

    from edgefiq.distill import distill
    from edgefiq.distill.loop import _Trainer

    end_epoch = _Trainer._end_epoch

    def stop(self, epoch, *a):  # type: ignore[no-untyped-def]
        row = end_epoch(self, epoch, *a)
        if epoch == after_epoch:
            raise KeyboardInterrupt
        return row

    monkeypatch.setattr(_Trainer, "_end_epoch", stop)  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        distill(cfg, out)
    monkeypatch.setattr(_Trainer, "_end_epoch", end_epoch)  # type: ignore[attr-defined]
    distill(cfg, out, resume=True)
