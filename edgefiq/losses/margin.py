"""``margin_rank``: self-supervised ranking of degraded copies with a severity-dependent margin.

For every degraded image whose clean source is in the same batch, the clean score should
exceed the degraded one by ``m(s) = lambda * s`` (``s`` = severity in [0, 1]):
``mean(max(0, m(s) - (p_clean - p_degraded)))``. The batch supplies ``severity`` (per item,
0 for clean images) and ``clean_index`` (batch position of the item's clean source, -1 if
absent or the item is itself clean).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgefiq.registry import LOSSES


@LOSSES.register("margin_rank")
class MarginRankLoss(nn.Module):
    """Hinge ranking of (clean, degraded) pairs with margin ``lam * severity``.

    Example:
        >>> l = MarginRankLoss(lam=0.5)
        >>> p = torch.tensor([0.8, 0.7])   # clean, degraded at severity 1
        >>> round(l(p, p, severity=torch.tensor([0., 1.]), clean_index=torch.tensor([-1, 0])).item(), 6)
        0.4
    """

    def __init__(self, lam: float = 0.1) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *, severity: torch.Tensor | None = None,
                clean_index: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        if severity is None or clean_index is None:
            return pred.sum() * 0.0
        sel = clean_index >= 0
        if not bool(sel.any()):
            return pred.sum() * 0.0
        deg = pred[sel]
        clean = pred[clean_index[sel]]
        margin = self.lam * severity[sel].to(pred.dtype)
        return torch.clamp(margin - (clean - deg), min=0).mean()
