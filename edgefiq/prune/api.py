"""``prune_model``: one entry point for structured (channel) and unstructured (weight) pruning."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgefiq.errors import UsageError
from edgefiq.prune.common import find_head, profile
from edgefiq.prune.structured import prune_structured
from edgefiq.prune.unstructured import prune_unstructured

METHODS = ("structured", "l1", "random")
SCOPES = ("global", "layer", "channel", "normalized")
IMPORTANCES = ("l1", "l2")


def prune_model(model: nn.Module, example_input: torch.Tensor, *, rho: float, method: str,
                importance: str = "l1", scope: str = "global", round_to: int | None = None,
                ignored_layers: tuple[str, ...] | list[str] = (), iterative_steps: int = 1,
                seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """Prune ``model`` in place and describe what was done.

    Args:
        model: any conv/linear network (a student, MobileFaceNet, IResNet...).
        example_input: a batch the model accepts (e.g. ``torch.zeros(1, 3, 112, 112)``); used to
            trace the dependency graph, find the output layer and count MACs.
        rho: pruning ratio in [0, 1): the fraction of channels (``structured``) or of
            conv/linear weights (``l1``, ``random``) removed.
        method: ``"structured"`` (torch-pruning DepGraph, removes channels), ``"l1"`` (zero the
            smallest-magnitude weights) or ``"random"`` (zero random weights, seeded).
        importance: group importance for ``structured``: ``"l1"`` or ``"l2"`` norm.
        scope: ``"global"`` (rank across layers), ``"layer"`` (``rho`` in every layer) or, for
            ``l1``/``random``, ``"channel"`` (``rho`` of every output channel's weights) or
            ``"normalized"`` (global, magnitudes relative to their output channel's L2 norm).
        round_to: ``structured`` only: channel counts kept multiples of this.
        ignored_layers: module names (or prefixes) left unpruned; the output layer always is.
        iterative_steps: ``structured`` only: reach ``rho`` in this many steps.
        seed: seed for ``random`` (and any tie-breaking).

    Returns:
        ``(model, info)`` where ``info`` has ``method, rho, scope, importance, sparsity,
        params_before/after, macs_before/after, params_reduction, macs_reduction, head`` and,
        for ``structured``, ``structure`` (give it to :func:`restore_structure` to rebuild the
        pruned architecture) and ``round_to, iterative_steps, ignored_layers``. For the
        unstructured methods ``info["masks"]`` holds the boolean keep-masks (not saved in
        checkpoints; see :func:`checkpoint_pruning`).

    Raises:
        UsageError: unknown method/scope/importance or ``rho`` outside [0, 1).

    Example:
        >>> import timm, torch
        >>> m = timm.create_model("mobilenetv3_large_100", num_classes=1)   # doctest: +SKIP
        >>> m, info = prune_model(m, torch.zeros(1, 3, 112, 112), rho=0.5, method="structured")  # doctest: +SKIP
        >>> info["macs_reduction"] > 0.4                                     # doctest: +SKIP
        True
    """
    _check_settings(method, scope, importance, rho, iterative_steps)
    rho = float(rho)
    ignored_layers = tuple(ignored_layers)
    cost_before = profile(model, example_input)
    head = find_head(model, example_input)
    info: dict[str, Any] = {"method": method, "rho": rho, "scope": scope, "seed": seed, "head": head,
                            "ignored_layers": list(ignored_layers)}
    if method == "structured":
        info["importance"] = importance
        if rho > 0:
            model, extra = prune_structured(model, example_input, rho=rho, importance=importance, scope=scope,
                                            round_to=round_to, ignored_layers=ignored_layers,
                                            iterative_steps=iterative_steps, seed=seed)
        else:
            extra = {"structure": None, "ignored": [head]}
        info.update(round_to=round_to, iterative_steps=iterative_steps, structure=extra["structure"],
                    sparsity=None)
    else:
        info["importance"] = "l1" if method == "l1" else "random"
        model, extra = prune_unstructured(model, example_input, rho=rho, method=method, scope=scope,
                                          ignored_layers=ignored_layers, seed=seed)
        info.update(structure=None, sparsity=extra["sparsity"], pruned_weights=extra["pruned_weights"],
                    prunable_weights=extra["prunable_weights"], masks=extra["masks"])
    cost_after = profile(model, example_input)
    info.update(params_before=cost_before["params"], params_after=cost_after["params"],
                macs_before=cost_before["macs"], macs_after=cost_after["macs"],
                params_reduction=1 - cost_after["params"] / cost_before["params"],
                macs_reduction=1 - cost_after["macs"] / max(cost_before["macs"], 1))
    if info["method"] != "structured":
        # dense counts do not shrink; report the non-zero parameters too
        nz = sum(int((p != 0).sum()) for p in model.parameters())
        info["nonzero_params_after"] = nz
    return model, info


def _check_settings(method: str, scope: str, importance: str, rho: float, iterative_steps: int) -> None:
    """One-line ``UsageError`` for a setting ``prune_model`` does not take."""
    if method not in METHODS:
        raise UsageError(f"unknown pruning method {method!r}; choose one of {', '.join(METHODS)}")
    if scope not in SCOPES:
        raise UsageError(f"unknown pruning scope {scope!r}; choose {', '.join(SCOPES)}")
    if scope in ("channel", "normalized") and method == "structured":
        raise UsageError(f"scope {scope!r} ranks weights within output channels; structured pruning "
                         "removes whole channels: use scope global or layer")
    if importance not in IMPORTANCES:
        raise UsageError(f"unknown importance {importance!r}; choose l1 or l2")
    if not 0.0 <= float(rho) < 1.0:
        raise UsageError(f"rho must be in [0, 1), got {rho}")
    if iterative_steps < 1:
        raise UsageError(f"iterative_steps must be >= 1, got {iterative_steps}")


def checkpoint_pruning(info: dict[str, Any]) -> dict[str, Any]:
    """The part of ``info`` stored in a checkpoint's ``pruning`` entry (plain types only, no masks).

    Example:
        >>> save_checkpoint(out, model, arch=a, preprocess=p, pruning=checkpoint_pruning(info))  # doctest: +SKIP
    """
    return {k: v for k, v in info.items() if k != "masks"}
