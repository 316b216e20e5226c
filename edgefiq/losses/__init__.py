"""Distillation losses (registry ``LOSSES``) and the recipe-weighted ``HybridLoss``.

Every loss is an ``nn.Module`` called as ``loss(pred, target, **batch)`` on 1-D score tensors
and returns a scalar. Extra batch fields (e.g. ``severity``, ``pair_index`` for ranking on
degraded copies) are passed by keyword; losses ignore what they do not use.

Example:
    >>> import torch
    >>> from edgefiq.registry import LOSSES
    >>> LOSSES.names()
    ['focal_ls', 'kd_mse', 'margin_rank', 'mse', 'plcc', 'rank', 'wing']
    >>> h = HybridLoss({"plcc": 1.0, "rank": 0.5})
    >>> sorted(h(torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.2, 0.4, 1.0])))
    ['loss', 'plcc', 'rank']
"""

from edgefiq.losses import correlation, kd, margin, regression  # noqa: F401 - register entries
from edgefiq.losses.hybrid import HybridLoss

__all__ = ["HybridLoss"]
