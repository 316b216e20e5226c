"""Quantisation-aware training: 8-bit activation rounding in the forward pass, float weights kept.

``install(model)`` adds forward hooks to every norm, activation and pooling layer (where
backends quantise a tensor; the input of the final linear head stays float, as it does in
every edgefiq int8 export). In training mode each hooked output is fake-quantised per tensor,
uint8 affine over the batch's own min/max, with a straight-through gradient
(``torch.fake_quantize_per_tensor_affine``). The hooks hold no state, so a resumed run is the
same run; in eval mode they do nothing, so validation, ``best.pt`` and every export see the
float model, which has learnt not to depend on differences smaller than an 8-bit step.

Why: a student that reads quality from small activations (fine noise, slight blur) can lose its
ranking under post-training int8 (the quickstart's synthetic student: SRCC vs fp32 0.93-0.96
against the export gate's 0.99). Training with the rounding in the loop makes the weights
tolerate it.

Example:
    >>> handles = install(model)          # doctest: +SKIP
    >>> ...train...; [h.remove() for h in handles]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

QUANTISED = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Sigmoid, nn.BatchNorm2d,
             nn.LayerNorm, nn.GroupNorm, nn.AdaptiveAvgPool2d)
_PASS = (nn.Flatten, nn.Identity, nn.Dropout)


def fake_quant_uint8(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to 256 levels between min(x, 0) and max(x, 0), straight-through gradient."""
    lo = float(x.detach().min().clamp(max=0.0))
    hi = float(x.detach().max().clamp(min=0.0))
    if hi <= lo:
        return x
    scale = (hi - lo) / 255.0
    return torch.fake_quantize_per_tensor_affine(x, scale, int(round(-lo / scale)), 0, 255)


def _hook(module: nn.Module, _inputs: Any, output: Any) -> Any:
    if module.training and isinstance(output, torch.Tensor) and output.is_floating_point():
        return fake_quant_uint8(output)
    return None


def head_input_module(model: nn.Module) -> str | None:
    """The last quantisable layer before the final ``nn.Linear`` in definition order (its output feeds the head)."""
    names = [n for n, m in model.named_modules() if not list(m.children())]
    mods = dict(model.named_modules())
    linears = [i for i, n in enumerate(names) if isinstance(mods[n], nn.Linear)]
    if not linears:
        return None
    before = [n for n in names[:linears[-1]] if not isinstance(mods[n], _PASS)]
    return before[-1] if before and isinstance(mods[before[-1]], QUANTISED) else None


def install(model: nn.Module) -> list[Any]:
    """Hook every quantised layer of ``model`` (except the head's input); returns the hook handles."""
    skip = head_input_module(model)
    return [m.register_forward_hook(_hook) for n, m in model.named_modules()
            if isinstance(m, QUANTISED) and not list(m.children()) and n != skip]
