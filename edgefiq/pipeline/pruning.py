"""``prune_checkpoint``: prune an edgefiq checkpoint (optionally fine-tune) and write a new one + a report.

A workflow over ``edgefiq.prune`` (the pruning primitives) and ``edgefiq.pipeline.recovery``
(fine-tuning through ``edgefiq.distill``), so it lives in the pipeline layer.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from edgefiq.models.structure import merge_structures
from edgefiq.pipeline.recovery import RecoveryConfig


def example_input(size: tuple[int, int], batch: int = 1) -> torch.Tensor:
    """A seeded random NCHW batch of the model's input size (for tracing and MAC counts)."""
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0))


def prune_checkpoint(ckpt: str | Path, out: str | Path, *, rho: float, method: str, importance: str = "l1",
                     scope: str = "global", round_to: int | None = None, ignored_layers: tuple[str, ...] = (),
                     iterative_steps: int = 1, seed: int = 0, recovery: RecoveryConfig | None = None,
                     finetune_epochs: int = 0, finetune_max_steps: int = 0, images: str | Path | None = None,
                     labels: str | Path | None = None,
                     data: str | Path | None = None, quant_aware: bool = False,
                     report: str | Path | None = None) -> Path:
    """Prune an edgefiq checkpoint and save the result as an edgefiq checkpoint (+ a JSON report).

    The output checkpoint stores ``pruning = {method, rho, scope, importance, sparsity, params/MACs
    before and after, structure, recovery, ...}`` and reloads with
    ``edgefiq.models.checkpoint.load_checkpoint`` (the structure is replayed on a fresh model).

    Args:
        ckpt: source checkpoint (may already be pruned: structures compose).
        out: output checkpoint path.
        rho, method, importance, scope, round_to, ignored_layers, iterative_steps, seed: see
            :func:`edgefiq.prune.prune_model`.
        recovery: optional fine-tuning (``RecoveryConfig(epochs=N, images=..., labels=...)``);
            its run folder is ``<out stem>.recovery/``.
        finetune_epochs, images, labels: shorthand for ``recovery=RecoveryConfig(epochs=finetune_epochs,
            images=images, labels=labels, max_steps_per_epoch=finetune_max_steps)`` (``data`` is an alias
            of ``images``, as pipeline recipes name it).
        quant_aware: recovery rounds activations to 8 bits while training (``edgefiq.distill.quant_aware``).
        report: JSON report path (default ``<out>`` with suffix ``.json``).

    Returns:
        The output checkpoint path.

    Example:
        >>> prune_checkpoint("best.pt", "pruned.pt", rho=0.5, method="structured")   # doctest: +SKIP
        PosixPath('pruned.pt')
    """
    from edgefiq.models.checkpoint import load_checkpoint, save_checkpoint
    from edgefiq.prune.api import checkpoint_pruning, prune_model
    from edgefiq.utils import sha256_file, write_json

    t0 = time.perf_counter()
    out = Path(out)
    if recovery is None and finetune_epochs:
        src_images = images or data
        recovery = RecoveryConfig(epochs=finetune_epochs, images=str(src_images) if src_images else None,
                                  labels=str(labels) if labels else None, seed=seed, quant_aware=quant_aware,
                                  max_steps_per_epoch=finetune_max_steps)
    src = load_checkpoint(ckpt)
    dense = src.model.eval()
    model = copy.deepcopy(dense)
    x = example_input(src.preprocess.size)
    model, info = prune_model(model, x, rho=rho, method=method, importance=importance, scope=scope,
                              round_to=round_to, ignored_layers=ignored_layers, iterative_steps=iterative_steps,
                              seed=seed)
    masks = info.get("masks")
    rec_metrics: dict[str, Any] = {"epochs": 0}
    if recovery is not None and recovery.epochs > 0:
        from edgefiq.pipeline.recovery import recover

        model, rec_metrics = recover(model, dense, src.preprocess, recovery,
                                     out.parent / f"{out.stem}.recovery", masks=masks)
        if masks:
            from edgefiq.prune.unstructured import prunable_weights, sparsity_of

            info["sparsity"] = sparsity_of(prunable_weights(model, x))["sparsity"]
    pruning = checkpoint_pruning(info)
    previous = src.pruning or {}
    pruning["structure"] = merge_structures(previous.get("structure"), info.get("structure"))
    if previous:
        pruning["previous"] = {k: v for k, v in previous.items() if k not in ("structure", "previous")}
    pruning["recovery"] = rec_metrics
    pruning["source_sha256"] = sha256_file(ckpt)
    save_checkpoint(out, model, arch=src.arch, arch_kwargs=src.arch_kwargs, preprocess=src.preprocess,
                    pruning=pruning, meta={**src.meta, "pruned_from": str(ckpt)})
    rep = {k: v for k, v in pruning.items() if k != "structure"}
    rep.update(source=str(ckpt), output=str(out), arch=src.arch, file_bytes=out.stat().st_size,
               seconds=round(time.perf_counter() - t0, 2))
    write_json(report or out.with_suffix(".json"), rep)
    return out
