"""Pruning: structured (torch-pruning DepGraph, channels removed) and unstructured (L1, random).

Public API:
    prune_model(model, example_input, *, rho, method, ...) -> (model, info)
    restore_structure(model, structure) -> model   (rebuild a pruned architecture for loading)
    checkpoint_pruning(info) -> dict                (what a checkpoint stores under "pruning")
    prune_checkpoint(ckpt, out, *, rho, method, ..., recovery=None) -> Path
    RecoveryConfig, recover                         (fine-tuning after pruning, via edgefiq.distill)
    sweep(ckpt, out_dir, SweepConfig(...)) -> rows  (rho sweeps: size, MACs, latency, SRCC, pAUC)

Example:
    >>> import torch
    >>> from edgefiq.models.students import TinyCNN
    >>> model, info = prune_model(TinyCNN(width=8), torch.zeros(1, 3, 32, 32), rho=0.4, method="l1")
    >>> round(info["sparsity"], 3)
    0.4
"""

from __future__ import annotations

from edgefiq.prune.api import METHODS, checkpoint_pruning, prune_model
from edgefiq.prune.checkpoint import prune_checkpoint
from edgefiq.prune.recovery import RecoveryConfig, recover
from edgefiq.prune.structure import restore_structure
from edgefiq.prune.sweep import SweepConfig, sweep

__all__ = ["METHODS", "RecoveryConfig", "checkpoint_pruning", "prune_checkpoint", "prune_model", "recover",
           "restore_structure", "SweepConfig", "sweep"]
