"""Batch-level correlation losses: ``plcc`` (1 - Pearson) and ``rank`` (pairwise logistic).

Both are invariant to the scale and offset of the teacher's scores, which is what a
quality ranking needs: the student only has to order images like the teacher.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgefiq.registry import LOSSES


@LOSSES.register("plcc")
class PLCCLoss(nn.Module):
    """``1 - Pearson(pred, target)`` over the batch.

    Example:
        >>> PLCCLoss()(torch.tensor([1., 2., 3.]), torch.tensor([2., 4., 6.])).abs().item() < 1e-6
        True
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **_: Any) -> torch.Tensor:
        p = pred - pred.mean()
        t = target - target.mean()
        r = (p * t).sum() / (p.norm() * t.norm() + self.eps)
        return 1.0 - r


@LOSSES.register("rank")
class RankLoss(nn.Module):
    """Pairwise logistic ranking loss.

    Mean over ordered pairs ``i != j`` with ``y_i != y_j`` of
    ``log(1 + exp(-(p_i - p_j) * sign(y_i - y_j)))`` (``scale`` multiplies the difference).

    Example:
        >>> round(RankLoss()(torch.tensor([0., 1.]), torch.tensor([0., 1.])).item(), 4)
        0.3133
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **_: Any) -> torch.Tensor:
        dp = (pred[:, None] - pred[None, :]) * self.scale
        sign = torch.sign(target[:, None] - target[None, :])
        mask = sign != 0
        if not bool(mask.any()):
            return pred.sum() * 0.0
        return F.softplus(-dp * sign)[mask].mean()
