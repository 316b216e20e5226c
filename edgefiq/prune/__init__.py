"""Pruning: structured (torch-pruning DepGraph, channels removed) and unstructured (L1, random).

Public API:
    prune_model(model, example_input, *, rho, method, ...) -> (model, info)
    restore_structure(model, structure) -> model   (rebuild a pruned architecture for loading)
    checkpoint_pruning(info) -> dict                (what a checkpoint stores under "pruning")

The workflows over these primitives live in the pipeline layer (they train, export and
benchmark): ``edgefiq.pipeline.pruning.prune_checkpoint`` (prune a checkpoint file, optionally
fine-tune), ``edgefiq.pipeline.recovery`` (``RecoveryConfig``, ``recover``) and
``edgefiq.pipeline.sweep`` (``SweepConfig``, ``sweep``: rho sweeps of size, MACs, latency, SRCC, pAUC).

Example:
    >>> import torch
    >>> from edgefiq.models.students import TinyCNN
    >>> model, info = prune_model(TinyCNN(width=8), torch.zeros(1, 3, 32, 32), rho=0.4, method="l1")
    >>> round(info["sparsity"], 3)
    0.4
"""

from __future__ import annotations

from edgefiq.models.structure import restore_structure
from edgefiq.prune.api import METHODS, checkpoint_pruning, prune_model

__all__ = ["METHODS", "checkpoint_pruning", "prune_model", "restore_structure"]
