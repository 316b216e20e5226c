"""The pruned-structure record of a checkpoint: record and replay the shape changes of structured pruning.

It lives with the checkpoint format (``edgefiq.models.checkpoint``) because loading a
pruned checkpoint replays it; ``edgefiq.prune`` records it while pruning.

Structured pruning rewrites layers in place (fewer channels, smaller ``groups``,
shorter ``normalized_shape``, fewer heads...). To reload a pruned checkpoint we record,
for every module that changed, its plain-typed attributes that changed and the shapes
of its parameters and buffers. ``restore_structure`` replays that record on a freshly
built model so ``load_state_dict(strict=True)`` succeeds. The record holds only
``str``/``int``/``float``/``bool``/lists, so checkpoints still load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from edgefiq.errors import DataError

STRUCTURE_VERSION = 1
_PLAIN = (bool, int, float, str)


def _plain(value: Any) -> Any | None:
    """``value`` as plain JSON-like data, or None when it is not a plain attribute."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, _PLAIN) for v in value):
        return list(value)
    return None


def snapshot(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Plain attributes and tensor shapes of every module (the 'before' of a pruning run).

    Example:
        >>> before = snapshot(model)   # doctest: +SKIP
    """
    snap: dict[str, dict[str, Any]] = {}
    for name, mod in model.named_modules():
        attrs = {}
        for k, v in vars(mod).items():
            if k.startswith("_") or k == "training":
                continue
            p = _plain(v)
            if p is not None:
                attrs[k] = {"value": p, "tuple": isinstance(v, tuple)}
        params = {k: list(v.shape) for k, v in mod._parameters.items() if v is not None}
        buffers = {k: list(v.shape) for k, v in mod._buffers.items() if v is not None}
        snap[name] = {"attrs": attrs, "params": params, "buffers": buffers}
    return snap


def diff_structure(before: dict[str, dict[str, Any]], model: nn.Module) -> dict[str, Any]:
    """What changed between ``before`` (a :func:`snapshot`) and ``model`` now, as a replayable record.

    Example:
        >>> before = snapshot(model); prune(model)            # doctest: +SKIP
        >>> structure = diff_structure(before, model)           # doctest: +SKIP
    """
    after = snapshot(model)
    modules: dict[str, Any] = {}
    for name, now in after.items():
        old = before.get(name)
        if old is None:
            raise ValueError(f"module {name!r} appeared during pruning; cannot record the structure")
        entry: dict[str, Any] = {}
        attrs = {k: v for k, v in now["attrs"].items() if old["attrs"].get(k) != v}
        if attrs:
            entry["attrs"] = attrs
        for kind in ("params", "buffers"):
            changed = {k: s for k, s in now[kind].items() if old[kind].get(k) != s}
            if changed:
                entry[kind] = changed
        if entry:
            modules[name] = entry
    return {"version": STRUCTURE_VERSION, "modules": modules}


def restore_structure(model: nn.Module, structure: dict[str, Any]) -> nn.Module:
    """Reshape a freshly built ``model`` to a recorded pruned architecture (weights uninitialised).

    Load the pruned weights afterwards with ``model.load_state_dict(state, strict=True)``
    (``edgefiq.models.checkpoint.load_checkpoint`` does this).

    Args:
        model: the unpruned architecture, built the same way as before pruning.
        structure: ``info["structure"]`` from ``edgefiq.prune.prune_model``.

    Raises:
        DataError: the record does not match this architecture.

    Example:
        >>> model = STUDENTS.get("mobilenetv3_small_100")()           # doctest: +SKIP
        >>> model = restore_structure(model, ckpt["pruning"]["structure"])  # doctest: +SKIP
        >>> model.load_state_dict(ckpt["state_dict"])                   # doctest: +SKIP
    """
    if not isinstance(structure, dict) or structure.get("version") != STRUCTURE_VERSION:
        raise DataError(f"unsupported pruned-structure record (expected version {STRUCTURE_VERSION})")
    mods = dict(model.named_modules())
    for name, entry in structure["modules"].items():
        mod = mods.get(name)
        if mod is None:
            raise DataError(f"pruned structure names module {name!r}, which this architecture lacks")
        for k, spec in entry.get("attrs", {}).items():
            v = spec["value"]
            setattr(mod, k, tuple(v) if spec.get("tuple") else v)
        for k, shape in entry.get("params", {}).items():
            old = mod._parameters.get(k)
            if old is None:
                raise DataError(f"pruned structure names parameter {name}.{k}, which this architecture lacks")
            mod._parameters[k] = nn.Parameter(torch.empty(shape, dtype=old.dtype), requires_grad=old.requires_grad)
        for k, shape in entry.get("buffers", {}).items():
            old = mod._buffers.get(k)
            if old is None:
                raise DataError(f"pruned structure names buffer {name}.{k}, which this architecture lacks")
            mod._buffers[k] = torch.zeros(shape, dtype=old.dtype)
    return model


def merge_structures(first: dict[str, Any] | None, second: dict[str, Any] | None) -> dict[str, Any] | None:
    """One structure record equivalent to replaying ``first`` then ``second`` (for pruning a pruned model).

    Example:
        >>> merge_structures(None, {"version": 1, "modules": {}})
        {'version': 1, 'modules': {}}
    """
    if not first:
        return second
    if not second:
        return first
    modules = copy.deepcopy(first["modules"])
    for name, entry in second["modules"].items():
        dst = modules.setdefault(name, {})
        for kind, values in entry.items():
            dst.setdefault(kind, {}).update(copy.deepcopy(values))
    return {"version": second["version"], "modules": modules}
