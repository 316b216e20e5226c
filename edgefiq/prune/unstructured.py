"""Unstructured pruning: zero individual conv / linear weights (L1 magnitude or random).

The PreFIQs pruned copies use this: the architecture is unchanged, a fraction ``rho`` of
the prunable weights is set to exactly zero and stays zero (no mask buffers or
parametrizations are left in the model). ``scope="layer"`` prunes ``rho`` of every layer;
``scope="global"`` ranks all prunable weights together (L1) or draws uniformly among them
(random), so some layers lose more than others. ``scope="channel"`` prunes ``rho`` of every
output channel's weights, and ``scope="normalized"`` ranks all weights together by their
magnitude relative to their output channel's L2 norm. A per-channel rescaling, such as folding
a BatchNorm into the conv before it, leaves both masks unchanged, so a ``.pt`` model and its
BN-folded ``.onnx`` export lose the same weights. The number of zeroed weights is exact
(``round(rho * n)`` per scope unit), so the measured sparsity equals ``rho`` up to rounding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgefiq.prune.common import PRUNABLE_TYPES, find_head, resolve_layers


def prunable_weights(model: nn.Module, example_input: torch.Tensor, *, include_head: bool = False,
                     ignored_layers: tuple[str, ...] = ()) -> dict[str, nn.Parameter]:
    """``{module_name: weight}`` of the conv/linear layers unstructured pruning acts on.

    Example:
        >>> sorted(prunable_weights(model, x))[:2]   # doctest: +SKIP
        ['conv_stem', 'blocks.0.0.conv_dw']
    """
    skip = {id(m) for m in resolve_layers(model, tuple(ignored_layers))}
    head = None if include_head else find_head(model, example_input)
    return {n: m.weight for n, m in model.named_modules()
            if isinstance(m, PRUNABLE_TYPES) and n != head and id(m) not in skip
            and isinstance(getattr(m, "weight", None), torch.Tensor)}


def _masks(weights: dict[str, torch.Tensor], rho: float, method: str, scope: str,
           gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Boolean keep-masks removing exactly ``round(rho * n)`` weights (per layer or over all)."""
    def scores(w: torch.Tensor) -> torch.Tensor:
        if method == "l1" and scope == "normalized":  # magnitude relative to its output channel's L2 norm
            rows = w.detach().abs().float().reshape(w.shape[0], -1)
            return (rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)).flatten()
        if method == "l1":
            return w.detach().abs().flatten().float()
        return torch.rand(w.numel(), generator=gen)

    if scope == "channel":  # rows = output channels (dim 0 of conv and linear weights)
        out = {}
        for n, w in weights.items():
            rows = scores(w).view(w.shape[0], -1)
            k = int(round(rho * rows.shape[1]))
            keep = torch.ones(rows.shape, dtype=torch.bool)
            if k:
                keep.scatter_(1, torch.topk(rows, k, dim=1, largest=False, sorted=False).indices, False)
            out[n] = keep.view_as(w)
        return out
    if scope == "layer":
        out = {}
        for n, w in weights.items():
            s = scores(w)
            k = int(round(rho * s.numel()))
            keep = torch.ones(s.numel(), dtype=torch.bool)
            if k:
                keep[torch.topk(s, k, largest=False, sorted=False).indices] = False
            out[n] = keep.view_as(w)
        return out
    flat = torch.cat([scores(w) for w in weights.values()])
    k = int(round(rho * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k:
        keep[torch.topk(flat, k, largest=False, sorted=False).indices] = False
    out, start = {}, 0
    for n, w in weights.items():
        out[n] = keep[start:start + w.numel()].view_as(w)
        start += w.numel()
    return out


def prune_unstructured(model: nn.Module, example_input: torch.Tensor, *, rho: float, method: str = "l1",
                       scope: str = "global", ignored_layers: tuple[str, ...] = (), include_head: bool = False,
                       seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """Zero a fraction ``rho`` of the prunable weights in place, permanently.

    Args:
        method: ``"l1"`` (smallest magnitudes first) or ``"random"`` (seeded, reproducible).
        scope: ``"global"``, ``"layer"``, ``"channel"`` (``rho`` of every output channel) or
            ``"normalized"`` (global ranking of magnitudes divided by their output channel's L2 norm).
        include_head: also prune the output layer (excluded by default).

    Returns:
        ``(model, {"sparsity": ..., "pruned_weights": k, "prunable_weights": n, "masks": {name: bool mask}})``;
        the masks let recovery fine-tuning keep pruned weights at zero.

    Example:
        >>> model, extra = prune_unstructured(model, x, rho=0.4, method="random", seed=1)  # doctest: +SKIP
        >>> round(extra["sparsity"], 3)                                                      # doctest: +SKIP
        0.4
    """
    weights = prunable_weights(model, example_input, include_head=include_head, ignored_layers=ignored_layers)
    if not weights:
        raise ValueError("no conv/linear weights to prune")
    gen = torch.Generator().manual_seed(seed)
    masks = _masks(weights, rho, method, scope, gen)
    with torch.no_grad():
        for n, w in weights.items():
            w.mul_(masks[n].to(w.dtype))
    return model, {**sparsity_of(weights), "masks": masks}


def sparsity_of(weights: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Measured fraction of exactly-zero entries over ``weights``."""
    total = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    return {"sparsity": zeros / total, "pruned_weights": zeros, "prunable_weights": total}


def keep_masked_zero(model: nn.Module, masks: dict[str, torch.Tensor]) -> list[Any]:
    """Gradient hooks that keep pruned weights at zero while fine-tuning; returns the hook handles.

    Zero gradients plus zero weights stay zero under SGD (with momentum) and Adam/AdamW
    (decoupled or L2 weight decay), so the sparsity pattern survives recovery training.
    Remove the hooks with ``h.remove()`` afterwards.
    """
    mods = dict(model.named_modules())
    handles = []
    for n, mask in masks.items():
        m = mask.to(mods[n].weight.dtype)
        handles.append(mods[n].weight.register_hook(lambda g, m=m: g * m))
    return handles
