"""Feature-level distillation: the student's pooled features also regress per-image teacher vectors.

A scalar quality label says *how good* a face is; the FR model's embedding of the same image says
*what the network saw*. With ``feature_kd`` the student's pooled features (the input of its
one-output score head) go through a linear projection that exists only during training, and the
projection is pulled towards a vector per training image (``feature_kd.targets``, e.g. the
teacher's L2-normalised FR embeddings). The exported student is unchanged: same layers, same
score; the projection is kept in ``last.pt`` for an exact ``--resume`` and dropped from ``best.pt``.

Targets file: ``.npz`` with ``paths`` (relative to the images root, as in the label CSV) and
``vectors`` (``[N, D]`` float). Every training image needs a row.

Example:
    >>> import torch
    >>> from edgefiq.models.students import tiny_cnn
    >>> fkd = FeatureHead(tiny_cnn(width=4), dim=3)
    >>> score, vec = fkd(torch.zeros(2, 3, 32, 32))
    >>> tuple(score.shape), tuple(vec.shape)
    ((2,), (2, 3))
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from edgefiq.errors import UsageError
from edgefiq.utils import atomic_path


def score_head(model: nn.Module) -> nn.Linear:
    """The student's score head: its last ``nn.Linear`` with one output (its input = pooled features)."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == 1]
    if not heads:
        raise UsageError(f"feature_kd: {type(model).__name__} has no one-output nn.Linear score head to tap")
    return heads[-1]


class FeatureHead(nn.Module):
    """``student`` plus a training-only projection of its pooled features; forward -> (scores, vectors).

    Args:
        student: a model returning ``[N]`` scores from a one-output ``nn.Linear`` head.
        dim: size of the target vectors.
    """

    def __init__(self, student: nn.Module, dim: int) -> None:
        super().__init__()
        self.student = student
        head = score_head(student)
        self.proj = nn.Linear(head.in_features, dim)
        self._feat: torch.Tensor | None = None
        self._hook = head.register_forward_pre_hook(self._keep)

    def _keep(self, _module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self._feat = torch.flatten(args[0], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score = self.student(x)
        feat, self._feat = self._feat, None
        return score, self.proj(feat)

    def remove(self) -> None:
        """Detach the hook from the student (which may be the caller's model)."""
        self._hook.remove()


def feature_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``cosine``: mean of 1 - cos(pred, target); ``mse``: mean squared error per element.

    Example:
        >>> feature_loss(torch.tensor([[1., 0.]]), torch.tensor([[0., 2.]]), "cosine").item()
        1.0
    """
    if kind == "cosine":
        return (1.0 - nn.functional.cosine_similarity(pred, target, dim=1)).mean()
    if kind == "mse":
        return nn.functional.mse_loss(pred, target)
    raise UsageError(f"feature_kd.loss must be 'cosine' or 'mse', got {kind!r}")


def load_targets(path: str | Path, rel: Sequence[str]) -> np.ndarray:
    """Rows of the targets file for the images ``rel`` (in that order), as float32 ``[len(rel), D]``."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"feature_kd.targets: {p} not found")
    with np.load(p, allow_pickle=False) as z:
        if "paths" not in z or "vectors" not in z:
            raise UsageError(f"feature_kd.targets: {p} needs arrays 'paths' and 'vectors' (has {sorted(z.files)})")
        paths, vectors = [str(s) for s in z["paths"]], np.asarray(z["vectors"], np.float32)
    if vectors.ndim != 2 or len(vectors) != len(paths):
        raise UsageError(f"feature_kd.targets: 'vectors' must be [len(paths), D], got {vectors.shape} "
                         f"for {len(paths)} paths")
    row = {r: i for i, r in enumerate(paths)}
    missing = [r for r in rel if r not in row]
    if missing:
        raise UsageError(f"feature_kd.targets: {len(missing)} of {len(rel)} training images have no vector "
                         f"in {p} (e.g. {missing[0]})")
    out = vectors[[row[r] for r in rel]]
    if not np.isfinite(out).all():
        raise UsageError(f"feature_kd.targets: {p} has non-finite vectors for training images")
    return out


def save_targets(path: str | Path, paths: Sequence[str], vectors: np.ndarray) -> Path:
    """Write a targets file (atomically) that ``load_targets`` reads."""
    p = Path(path)
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, paths=np.asarray(list(paths), dtype=str), vectors=np.asarray(vectors, np.float32))
    return p
