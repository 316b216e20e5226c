"""Point-wise regression losses: ``mse``, ``wing`` and ``focal_ls`` (focal label smoothing)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from edgefiq.registry import LOSSES


@LOSSES.register("mse")
class MSELoss(nn.Module):
    """Mean squared error.

    Example:
        >>> MSELoss()(torch.tensor([1., 3.]), torch.tensor([0., 1.])).item()
        2.5
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **_: Any) -> torch.Tensor:
        return ((pred - target) ** 2).mean()


@LOSSES.register("wing")
class WingLoss(nn.Module):
    """Wing loss (Feng et al. 2018): ``w ln(1 + |x|/eps)`` for ``|x| < w``, else ``|x| - C``.

    ``C = w - w ln(1 + w/eps)`` joins both pieces continuously. Scores live in [0, 1]-ish
    ranges, so the defaults are small (``w=0.1, eps=0.02``).

    Example:
        >>> l = WingLoss(w=1.0, eps=1.0)
        >>> round(l(torch.tensor([0.5]), torch.tensor([0.0])).item(), 6) == round(math.log(1.5), 6)
        True
    """

    def __init__(self, w: float = 0.1, eps: float = 0.02) -> None:
        super().__init__()
        self.w, self.eps = w, eps
        self.c = w - w * math.log(1 + w / eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **_: Any) -> torch.Tensor:
        x = (pred - target).abs()
        return torch.where(x < self.w, self.w * torch.log1p(x / self.eps), x - self.c).mean()


@LOSSES.register("focal_ls")
class FocalLabelSmoothingLoss(nn.Module):
    """Focal label-smoothing regression: ``(1 - exp(-MSE))^gamma * MSE`` on noisy targets.

    Targets are smoothed with seeded Gaussian noise, ``target + eps * N(0, 1)`` (a fresh draw
    each training-mode call from the module's own generator, saved with the loss state, so
    training and resume stay reproducible; no noise in eval mode). The loss is the exact
    function ``f(MSE) = (1 - exp(-MSE))^gamma * MSE``, so hard batches weigh more.

    Args:
        eps: noise standard deviation (0 disables smoothing).
        gamma: focal exponent.
        seed: seed of the noise generator.

    Example:
        >>> l = FocalLabelSmoothingLoss(eps=0.0, gamma=1.0)
        >>> round(l(torch.tensor([1.0]), torch.tensor([0.0])).item(), 6) == round(1 - math.exp(-1), 6)
        True
    """

    def __init__(self, eps: float = 0.02, gamma: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        self.eps, self.gamma = eps, gamma
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **_: Any) -> torch.Tensor:
        if self.eps > 0 and self.training:
            noise = torch.randn(target.shape, generator=self.generator, dtype=target.dtype)
            target = target + self.eps * noise.to(target.device)
        mse = ((pred - target) ** 2).mean()
        weight = (1 - torch.exp(-mse)) ** self.gamma
        return weight * mse

    def get_extra_state(self) -> dict[str, Any]:
        return {"rng": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["rng"])
