"""Embedding-norm quality (AdaFace / MagFace style): the norm of the FR model's raw feature.

Margin-based FR losses with feature-norm terms make the norm of the un-normalised
embedding grow with recognisability. With ``batch_stats=True`` the norms are
standardised over the labelled set and clipped to [-1, 1] as AdaFace does with its
batch statistics (``(norm - mean) / std``); that is a monotone map, applied once over all
labelled images (``finalize``), so chunking and resuming do not change it.

Example:
    >>> t = FeatureNorm("mobilefacenet.pt")               # doctest: +SKIP
    >>> t.score_paths(["a.jpg"])                          # doctest: +SKIP
    array([21.7])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from edgefiq.registry import TEACHERS
from edgefiq.teachers.base import FRTeacher, Table


@TEACHERS.register("norm")
class FeatureNorm(FRTeacher):
    """Quality = ||raw embedding||_2 (optionally AdaFace batch-statistics normalised).

    Args:
        fr_model: FR weights (``.pt`` or ``.onnx``).
        batch_stats: standardise over the labelled set and clip to [-1, 1].
        (other arguments: see ``FRTeacher``)
    """

    name = "norm"

    def __init__(self, fr_model: str | Path | None = None, batch_stats: bool = False, arch: str | None = None, flip: bool = False,
                 precision: str = "fp32", *, batch_size: int = 64, device: str = "cpu", workers: int = 0,
                 cache_dir: str | Path | None = None, cache: bool = True) -> None:
        super().__init__(fr_model, arch, flip, precision, batch_size=batch_size, device=device, workers=workers,
                         cache_dir=cache_dir, cache=cache)
        self.batch_stats = bool(batch_stats)

    @torch.no_grad()
    def score_table(self, root: Path, relpaths: Sequence[str], *, on_bad_image: str = "error") -> Table:
        full, fps = self.cached_full(root, relpaths)
        if full is None:
            embed = self.fast_embed()
            for x, ok, idx in self.batches(root, relpaths, on_bad_image):
                e = embed(x).float().cpu().numpy()
                if full is None:
                    full = np.full((len(relpaths), e.shape[1]), np.nan, np.float32)
                e[~ok] = np.nan
                full[idx] = e
            if full is None:
                return {"quality": np.zeros(0)}
            self.store_full(relpaths, fps, full)
        norm = np.linalg.norm(full.astype(np.float64), axis=1)
        return {"quality": norm, "norm": norm.copy()} if self.batch_stats else {"quality": norm}

    def finalize(self, table: Table) -> Table:
        if not self.batch_stats or len(table["quality"]) == 0:
            return table
        n = table["norm"]
        std = float(np.std(n))
        q = np.clip((n - float(np.mean(n))) / (std if std > 0 else 1.0), -1.0, 1.0)
        return {**table, "quality": q}

    def config(self) -> dict[str, Any]:
        return {"teacher": self.name, "batch_stats": self.batch_stats,
                "quality": "clip((||e|| - mean) / std, -1, 1)" if self.batch_stats else "||e||_2 (raw embedding)",
                **self.fr_config()}
