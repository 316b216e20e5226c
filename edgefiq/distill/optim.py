"""Optimiser, learning-rate schedule and weight EMA for distillation.

The learning rate is a pure function of the global step (plus the plateau scale, which is
saved in ``last.pt``), so a resumed run follows exactly the same schedule.

Example:
    >>> from edgefiq.distill.config import OptimConfig
    >>> lr = lr_at(OptimConfig(lr=1.0, warmup_epochs=1, schedule="cosine", min_lr=0.0, epochs=2),
    ...            step=5, steps_per_epoch=10)
    >>> round(lr, 3)
    0.6
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from edgefiq.distill.config import OptimConfig


def build_optimizer(model: nn.Module, cfg: OptimConfig, *, head: frozenset[int] = frozenset(),
                    trunk_lr_mult: float = 1.0) -> torch.optim.Optimizer:
    """AdamW or SGD (nesterov) with no weight decay on biases and normalisation weights (1-D tensors).

    ``head`` holds the ``id()`` of each parameter of a new head on a pretrained trunk: every other
    parameter is the trunk and runs at ``trunk_lr_mult`` x the schedule's rate (``set_lr`` applies
    each group's ``lr_mult``).
    """
    groups = []
    for is_head in (False, True):
        mult = 1.0 if is_head or not head else trunk_lr_mult
        mine = [p for p in model.parameters() if p.requires_grad and (id(p) in head) == is_head]
        decay, flat = [p for p in mine if p.ndim > 1], [p for p in mine if p.ndim <= 1]
        groups += [{"params": decay, "weight_decay": cfg.weight_decay, "lr_mult": mult, "trunk": not is_head},
                   {"params": flat, "weight_decay": 0.0, "lr_mult": mult, "trunk": not is_head}]
    groups = [g for g in groups if g["params"]]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_at(cfg: OptimConfig, *, step: int, steps_per_epoch: int, plateau_scale: float = 1.0) -> float:
    """Learning rate at global ``step`` (0-based): linear warm-up, then the schedule.

    ``step`` and ``plateau`` count epochs as ``step // steps_per_epoch``; ``cosine`` decays
    smoothly per step from ``lr`` to ``min_lr`` over the post-warm-up steps.
    """
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    if cfg.schedule == "cosine":
        total = max(1, cfg.epochs * steps_per_epoch - warm)
        t = min(1.0, (step - warm) / total)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** ((step // steps_per_epoch) // max(1, cfg.step_epochs))
    if cfg.schedule == "plateau":
        return max(cfg.min_lr, cfg.lr * plateau_scale)
    return cfg.lr


def set_lr(opt: torch.optim.Optimizer, lr: float, *, trunk_frozen: bool = False) -> None:
    """Set every param group's learning rate: ``lr`` x the group's ``lr_mult`` (0 for the trunk while frozen)."""
    for g in opt.param_groups:
        g["lr"] = 0.0 if (trunk_frozen and g.get("trunk")) else lr * g.get("lr_mult", 1.0)


class ModelEma:
    """Exponential moving average of a model's weights (buffers are copied).

    Example:
        >>> ema = ModelEma(nn.Linear(2, 1), decay=0.9)
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, v in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                e.copy_(v)

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
