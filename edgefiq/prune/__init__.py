"""Pruning: structured (torch-pruning DepGraph, channels removed) and unstructured (L1, random).

Public API:
    prune_model(model, example_input, *, rho, method, ...) -> (model, info)
    restore_structure(model, structure) -> model   (rebuild a pruned architecture for loading)
    checkpoint_pruning(info) -> dict                (what a checkpoint stores under "pruning")
    prune_checkpoint(ckpt, out, *, rho, method, ..., recovery=None) -> Path
    RecoveryConfig, recover                         (fine-tuning after pruning, via edgefiq.distill)
"""

from __future__ import annotations

from edgefiq.prune.api import METHODS, checkpoint_pruning, prune_model
from edgefiq.prune.checkpoint import prune_checkpoint
from edgefiq.prune.recovery import RecoveryConfig, recover
from edgefiq.prune.structure import restore_structure

__all__ = ["METHODS", "RecoveryConfig", "checkpoint_pruning", "prune_checkpoint", "prune_model", "recover",
           "restore_structure"]
