"""Structured pruning: remove whole channels with torch-pruning's dependency graph (DepGraph).

Coupled layers (a conv, its BatchNorm, the depthwise conv and the 1x1 conv that read its
channels, residual additions, squeeze-excite gates, LayerNorms...) are pruned together as
one group, ranked by a group magnitude importance (L1 or L2 norm). The output layer is
never pruned on its output side, so the model still returns one score (or an embedding
of the same size). The shape changes are recorded with :mod:`edgefiq.models.structure`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import torch
from torch import nn

from edgefiq.prune.common import execution_order, find_head, resolve_layers
from edgefiq.models.structure import diff_structure, snapshot


HEAD_ATTRS = ("num_heads", "num_head", "heads")
# Attention helpers that fold spatial windows into the channel axis: torch-pruning's reshape
# index mapping explodes on them (minutes per group), so while the graph is traced and pruned
# they are replaced by identity (same input/output channels); the channels they touch are
# frozen anyway, so the record stays exact.
WINDOW_ATTENTION_METHODS = ("_window_attention",)


@contextlib.contextmanager
def opaque_window_attention(model: nn.Module) -> Iterator[None]:
    """Temporarily replace window-attention helpers of attention modules by identity."""
    patched = []
    for mod in model.modules():
        for meth in WINDOW_ATTENTION_METHODS:
            if _heads(mod) and callable(getattr(type(mod), meth, None)) and meth not in vars(mod):
                setattr(mod, meth, lambda x: x)
                patched.append((mod, meth))
    try:
        yield
    finally:
        for mod, meth in patched:
            delattr(mod, meth)


def _heads(mod: nn.Module) -> bool:
    heads = next((getattr(mod, a) for a in HEAD_ATTRS if hasattr(mod, a)), None)
    return isinstance(heads, int) and not isinstance(heads, bool) and heads >= 1


def frozen_by_attention(model: nn.Module, example_input: torch.Tensor) -> list[nn.Module]:
    """Layers to ignore so that no channel entering or leaving an attention computation is removed.

    For attention modules traced normally, the dependency groups of the input and output
    channels of every conv/linear inside them are frozen. For modules whose window
    attention is made opaque (:func:`opaque_window_attention`), the attention reads only the
    module's input, so only the input-channel group of the first traced layer is frozen and
    the module's expansion (MLP) channels stay prunable. Freezing = ignoring every layer
    whose outputs are in the group (torch-pruning then skips the whole group).
    """
    import torch_pruning as tp  # heavy: torch_pruning takes seconds to import; only when pruning runs

    attn_mods = [m for m in model.modules() if _heads(m)]
    if not attn_mods:
        return []
    order = {n: k for k, n in enumerate(execution_order(model, example_input))}
    names = {m: n for n, m in model.named_modules()}
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
    todo: list[tuple[nn.Module, bool, bool]] = []  # (layer, freeze outputs, freeze inputs)
    for mod in attn_mods:
        layers = [c for c in mod.modules() if isinstance(c, (nn.Linear, nn.Conv1d, nn.Conv2d)) and c in dg.module2node]
        if any(meth in vars(mod) for meth in WINDOW_ATTENTION_METHODS):
            layers = sorted(layers, key=lambda c: order.get(names[c], 1 << 30))[:1]
            todo += [(c, False, True) for c in layers]
        else:
            todo += [(c, True, True) for c in layers]
    frozen: list[nn.Module] = []
    for layer, outs, ins in todo:
        pruner = dg.get_pruner_of_module(layer)
        for use, fn, n in ((outs, pruner.prune_out_channels, pruner.get_out_channels(layer)),
                           (ins, pruner.prune_in_channels, pruner.get_in_channels(layer))):
            if not use or not n:
                continue
            for dep, _ in dg.get_pruning_group(layer, fn, list(range(n))):
                m = dep.target.module
                if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(m, nn.Module) and m not in frozen:
                    frozen.append(m)
    return frozen


def prune_structured(model: nn.Module, example_input: torch.Tensor, *, rho: float, importance: str = "l1",
                     scope: str = "global", round_to: int | None = None, ignored_layers: tuple[str, ...] = (),
                     iterative_steps: int = 1, seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """Remove a fraction ``rho`` of channels in place; return the model and the structure record.

    Args:
        rho: fraction of channels removed in every prunable group (torch-pruning ``pruning_ratio``).
        importance: ``"l1"`` or ``"l2"`` group magnitude.
        scope: ``"global"`` ranks groups across the network, ``"layer"`` prunes each group by ``rho``.
        round_to: keep channel counts multiples of this (e.g. 8 for SIMD-friendly kernels).
        ignored_layers: module names (or name prefixes) never pruned on their output side.
        iterative_steps: prune in this many steps of growing ratio (importance re-estimated each step).

    Returns:
        ``(model, {"structure": ..., "ignored": [...]})``.

    Example:
        >>> model, extra = prune_structured(model, torch.zeros(1, 3, 112, 112), rho=0.5)  # doctest: +SKIP
    """
    import torch_pruning as tp  # heavy: see frozen_by_attention

    p = {"l1": 1, "l2": 2}[importance]
    head = find_head(model, example_input)
    mods = dict(model.named_modules())
    ignored = [mods[head], *resolve_layers(model, tuple(ignored_layers))]
    torch.manual_seed(seed)
    before = snapshot(model)
    was_training = model.training
    model.eval()
    with warnings.catch_warnings(), opaque_window_attention(model):
        warnings.simplefilter("ignore", UserWarning)  # "unwrapped parameters" (layer-scale gammas): channel dim
        ignored += [m for m in frozen_by_attention(model, example_input) if m not in ignored]
        pruner = tp.pruner.MagnitudePruner(
            model, example_input, importance=tp.importance.GroupMagnitudeImportance(p=p),
            pruning_ratio=rho, global_pruning=(scope == "global"), iterative_steps=iterative_steps,
            round_to=round_to, ignored_layers=ignored, max_pruning_ratio=min(1.0, max(rho, 0.95)))
        for _ in range(iterative_steps):
            pruner.step()
    model.train(was_training)
    names = {m: n for n, m in mods.items()}
    return model, {"structure": diff_structure(before, model),
                   "ignored": sorted({names[m] for m in ignored if m in names})}
