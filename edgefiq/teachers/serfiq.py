"""SER-FIQ: stochastic embedding robustness (Terhörst et al., CVPR 2020).

``m`` forward passes of the FR model's embedding head with dropout (rate ``p``) on the
feature entering it; quality = ``2 * sigmoid(-mean pairwise Euclidean distance)`` of the
``m`` L2-normalised embeddings (``score="sigmoid"``, as in the paper) or minus the mean
distance (``score="distance"``). The backbone runs once per image; only the head is
repeated. Dropout masks are seeded per image (``seed`` + the image's relative path), so
scores do not depend on batching, chunking or sharding.

Example:
    >>> t = SerFiq("mobilefacenet.pt", m=20, dropout=0.5)   # doctest: +SKIP
    >>> t.score_paths(["a.jpg"])                            # doctest: +SKIP
    array([0.43])
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from edgefiq.errors import UsageError
from edgefiq.registry import TEACHERS
from edgefiq.teachers.base import FRTeacher, Table
from edgefiq.teachers.fr_runtime import default_threads, onnxruntime_available, split_runners


def serfiq_quality(emb: torch.Tensor, score: str = "sigmoid") -> torch.Tensor:
    """``[N, m, D]`` stochastic embeddings -> ``[N]`` SER-FIQ quality.

    Example:
        >>> serfiq_quality(torch.ones(2, 5, 8)).tolist()   # identical passes -> 2 * sigmoid(0)
        [1.0, 1.0]
    """
    e = torch.nn.functional.normalize(emb.double(), dim=2)
    m = e.shape[1]
    d = torch.cdist(e, e)  # [N, m, m]
    mean = d.sum(dim=(1, 2)) / (m * (m - 1))
    return 2 * torch.sigmoid(-mean) if score == "sigmoid" else -mean


@TEACHERS.register("serfiq")
class SerFiq(FRTeacher):
    """SER-FIQ quality from ``m`` dropout passes of the embedding head.

    Args:
        fr_model: FR weights: ``.pt`` (the model must expose ``features_pre_head`` and ``head``, as
            ``mobilefacenet`` and the ``iresnet`` family do) or ``.onnx`` (cut before its last
            Conv/Gemm/MatMul, ``edgefiq.teachers.onnx_graph.split_at_head``; else a one-line error).
        m: number of stochastic passes (>= 2).
        dropout: dropout rate on the head's input feature, in (0, 1).
        score: ``sigmoid`` (2 * sigmoid(-mean distance), the paper) or ``distance`` (-mean distance).
        seed: base seed of the per-image dropout masks.
        (other arguments: see ``FRTeacher``; flip is not used)
    """

    name = "serfiq"

    def __init__(self, fr_model: str | Path | None = None, m: int = 20, dropout: float = 0.5, score: str = "sigmoid", seed: int = 0,
                 arch: str | None = None, precision: str = "fp32", *, batch_size: int = 64, device: str = "cpu",
                 workers: int = 0, cache_dir: str | Path | None = None, cache: bool = True) -> None:
        super().__init__(fr_model, arch, False, precision, batch_size=batch_size, device=device, workers=workers,
                         cache_dir=cache_dir, cache=cache)
        if int(m) < 2:
            raise UsageError(f"--passes (m) must be >= 2 stochastic passes, got {m}")
        if not 0.0 < float(dropout) < 1.0:
            raise UsageError(f"--dropout must be in (0, 1), got {dropout}")
        if score not in ("sigmoid", "distance"):
            raise UsageError(f"--score must be sigmoid or distance, got {score!r}")
        self.m, self.p, self.score, self.seed = int(m), float(dropout), score, int(seed)

    def _masks(self, shape: tuple[int, ...], relpaths: Sequence[str]) -> torch.Tensor:
        keep = 1.0 - self.p
        out = torch.empty((len(relpaths), self.m, *shape))
        for i, rel in enumerate(relpaths):
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + zlib.crc32(rel.encode())) % (2**63))
            out[i] = (torch.rand((self.m, *shape), generator=g) < keep).float() / keep
        return out

    @torch.no_grad()
    def score_table(self, root: Path, relpaths: Sequence[str], *, on_bad_image: str = "error") -> Table:
        fr = self.fr
        is_onnx = str(getattr(fr, "source", "")).lower().endswith(".onnx")
        torch_split = hasattr(fr, "features_pre_head") and hasattr(fr, "head")
        if torch_split and self.precision == "fp32" and (self.device != "cpu" or not onnxruntime_available()):
            backbone, head = fr.features_pre_head, fr.head
        elif is_onnx or torch_split:  # onnxruntime / OpenVINO: the (exported) graph cut before its embedding layer
            ort_backbone, ort_head = split_runners(fr, self.cache_dir, default_threads(), self.precision)
            backbone = lambda x: torch.from_numpy(ort_backbone.raw(x.cpu().numpy()))  # noqa: E731
            head = lambda f: torch.from_numpy(ort_head(f.cpu().numpy()))  # noqa: E731
        else:
            raise UsageError(f"SER-FIQ needs an FR model with an embedding head it can apply dropout to "
                             f"(mobilefacenet, iresnet*, or an ONNX graph); {fr.arch} has none")
        q = np.full(len(relpaths), np.nan)
        for x, ok, idx in self.batches(root, relpaths, on_bad_image):
            f = backbone(x)  # [B, ...]
            masks = self._masks(tuple(f.shape[1:]), [relpaths[i] for i in idx]).to(f.device)
            fm = (f.unsqueeze(1) * masks).reshape(-1, *f.shape[1:])
            e = head(fm).reshape(f.shape[0], self.m, -1)
            s = serfiq_quality(e, self.score).cpu().numpy()
            s[~ok] = np.nan
            q[idx] = s
        return {"quality": q}

    def config(self) -> dict[str, Any]:
        return {"teacher": self.name, "m": self.m, "dropout": self.p, "score": self.score, "seed": self.seed,
                "quality": "2*sigmoid(-mean pairwise distance)" if self.score == "sigmoid" else "-mean pairwise distance",
                **self.fr_config()}
