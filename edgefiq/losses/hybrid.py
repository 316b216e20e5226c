"""``HybridLoss``: the recipe's weighted sum of registered losses.

Recipe form::

    losses: {plcc: 1.0, rank: 0.5}
    loss_options: {rank: {scale: 4.0}, wing: {w: 0.1}}
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from edgefiq.errors import RecipeError
from edgefiq.registry import LOSSES


class HybridLoss(nn.Module):
    """Weighted sum of losses; forward returns ``{'loss': total, <name>: term}`` (terms detached).

    Args:
        weights: loss name -> weight (zero-weight terms are skipped).
        options: loss name -> constructor kwargs.

    Example:
        >>> h = HybridLoss({"mse": 1.0, "plcc": 0.0})
        >>> h(torch.tensor([1., 3.]), torch.tensor([0., 1.]))["loss"].item()
        2.5
    """

    def __init__(self, weights: Mapping[str, float], options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        options = dict(options or {})
        for name in options:
            if name not in weights:
                raise RecipeError(f"loss_options.{name}: {name!r} is not in losses {sorted(weights)}")
        self.weights = {n: float(w) for n, w in weights.items() if float(w) != 0.0}
        if not self.weights:
            raise RecipeError("losses: at least one loss needs a non-zero weight")
        terms = {}
        for name in self.weights:
            try:
                terms[name] = LOSSES.get(name)(**dict(options.get(name, {})))
            except TypeError as e:
                raise RecipeError(f"loss_options.{name}: {e}") from None
        self.terms = nn.ModuleDict(terms)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, **batch: Any) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        total = pred.new_zeros(())
        for name, fn in self.terms.items():
            v = fn(pred, target, **batch)
            total = total + self.weights[name] * v
            out[name] = v.detach()
        out["loss"] = total
        return out
