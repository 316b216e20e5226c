"""Helpers shared by the pruning methods: which layers are prunable, the output head, model cost."""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from edgefiq.errors import UsageError

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def run_model(model: nn.Module, example_input: torch.Tensor) -> Any:
    """Run ``model`` once in eval mode without gradients, restoring its train/eval mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(example_input)
    finally:
        model.train(was_training)


def execution_order(model: nn.Module, example_input: torch.Tensor) -> list[str]:
    """Names of the conv/linear modules in the order a forward pass calls them."""
    order: list[str] = []
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, PRUNABLE_TYPES):
            handles.append(mod.register_forward_hook(lambda m, i, o, n=name: order.append(n)))
    try:
        run_model(model, example_input)
    finally:
        for h in handles:
            h.remove()
    return order


def find_head(model: nn.Module, example_input: torch.Tensor) -> str:
    """Name of the layer producing the output: the last conv/linear called in a forward pass.

    For a quality student this is the regression head; for an FR backbone the embedding layer.

    Example:
        >>> find_head(timm.create_model("mobilenetv3_small_100", num_classes=1), x)   # doctest: +SKIP
        'classifier'
    """
    order = execution_order(model, example_input)
    if not order:
        raise UsageError("model has no conv or linear layer to prune (an ONNX-backed model cannot be pruned)")
    return order[-1]


def resolve_layers(model: nn.Module, names: tuple[str, ...] | list[str]) -> list[nn.Module]:
    """Modules for user-given names (exact module names, or a prefix naming a whole sub-tree)."""
    mods = dict(model.named_modules())
    out: list[nn.Module] = []
    for n in names:
        if n in mods:
            out.append(mods[n])
            continue
        matched = [m for k, m in mods.items() if k.startswith(n + ".")]
        if not matched:
            hint = difflib.get_close_matches(n, list(mods), n=1)
            raise UsageError(f"ignored layer {n!r} is not a module of this model"
                             + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        out.extend(matched)
    return out


def profile(model: nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """Parameter count and multiply-accumulates (MACs) of one forward pass on ``example_input``.

    Example:
        >>> profile(model, torch.zeros(1, 3, 112, 112))   # doctest: +SKIP
        {'params': 1518881, 'macs': 56923264}
    """
    import torch_pruning as tp  # heavy: torch_pruning takes seconds to import; only for profiling

    was_training = model.training
    model.eval()
    try:
        macs, params = tp.utils.count_ops_and_params(model, example_input)
    finally:
        model.train(was_training)
    return {"params": int(params), "macs": int(macs)}
