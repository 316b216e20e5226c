"""``kd_mse``: knowledge-distillation MSE between temperature-scaled student and teacher scores."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgefiq.registry import LOSSES


@LOSSES.register("kd_mse")
class KDMSELoss(nn.Module):
    """``T^2 * mean((pred/T - target/T)^2)`` (Hinton-style T^2 keeps gradient scale comparable).

    Example:
        >>> KDMSELoss(temperature=2.0)(torch.tensor([2.0]), torch.tensor([0.0])).item()
        4.0
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.t = temperature

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **_: Any) -> torch.Tensor:
        return ((pred / self.t - target / self.t) ** 2).mean() * self.t ** 2
