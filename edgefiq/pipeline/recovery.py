"""Recovery fine-tuning after pruning, through the distillation loop (``edgefiq.distill``).

Label sources:

* knowledge distillation from the unpruned model, online (default): the unpruned model
  scores every augmented (flipped, shifted) view the pruned model trains on, so each
  target is the unpruned model's output on exactly those pixels;
* the same, offline (``online_kd=False``): the unpruned model scores the original images
  once; a flipped or shifted view then carries the label of the unaugmented image, which
  the unpruned model itself does not reproduce exactly;
* the original teacher labels CSV (``path,quality``), as the student was first trained.

KD targets are z-scored for the loss (``kd_mse`` + ``plcc``) and the affine map back is
folded into the output layer, so the outputs keep the unpruned model's scale. The pruned
model (and the unpruned one as online teacher) are handed to ``edgefiq.distill.distill``
as objects (``model=``, ``teacher=``); ``best.pt`` of that run is loaded back into the
pruned model. For unstructured pruning, gradient hooks keep pruned weights
at exactly zero during training and the masks are re-applied at the end.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryConfig:
    """How to fine-tune a pruned model.

    Attributes:
        epochs: fine-tuning epochs (0 = no recovery).
        images: images root (identity tree; the loop holds out ``val_fraction`` of identities).
        labels: teacher labels CSV ``path,quality``; ``None`` = distil from the unpruned model.
        lr: peak learning rate (AdamW, cosine schedule, short warm-up).
        batch_size: images per step.
        losses: loss name -> weight (``edgefiq.losses``).
        val_fraction: share of identities used for the loop's validation / best-epoch choice.
        max_steps_per_epoch: cap steps per epoch (0 = full epochs).
        threads: torch CPU threads (0 = torch default).
        seed: run seed.
        quant_aware: round activations to 8 bits while training (``edgefiq.distill.quant_aware``).
        online_kd: KD targets computed by the unpruned model on each augmented view (default);
            False = its scores of the original images, computed once.
    """

    epochs: int = 0
    images: str | None = None
    labels: str | None = None
    lr: float = 2e-3
    batch_size: int = 64
    losses: dict[str, float] = field(default_factory=lambda: {"kd_mse": 1.0, "plcc": 0.5})
    val_fraction: float = 0.1
    max_steps_per_epoch: int = 0
    threads: int = 0
    seed: int = 0
    quant_aware: bool = False
    online_kd: bool = True


def score_images(model: nn.Module, paths: list[Path], preprocess: Preprocess, *, batch_size: int = 64,
                 desc: str = "score") -> np.ndarray:
    """Scores of ``model`` on image files (eval mode, no grad), as float64.

    Example:
        >>> q = score_images(ck.model, list_images(root), ck.preprocess)   # doctest: +SKIP
    """
    from edgefiq.data.dataset import iter_image_batches
    from edgefiq.utils import progress

    model.eval()
    out: list[np.ndarray] = []
    bar = progress(total=len(paths), desc=desc)
    with bar, torch.no_grad():
        for x, _, idx in iter_image_batches(paths, preprocess, batch_size=batch_size):
            out.append(model(x).reshape(len(idx)).double().numpy())
            bar.update(len(idx))
    return np.concatenate(out) if out else np.zeros(0)


def write_kd_labels(dense: nn.Module, images: str | Path, preprocess: Preprocess, out_csv: Path) -> Path:
    """Label every image under ``images`` with the unpruned model's scores (``path,quality`` CSV)."""
    from edgefiq.data.readers import list_images, write_labels_csv

    root = Path(images)
    if not root.is_dir():
        raise UsageError(f"--images {root}: not a folder")
    paths = list_images(root)
    if not paths:
        raise UsageError(f"--images {root}: no images found")
    q = score_images(dense, paths, preprocess, desc="KD labels")
    return write_labels_csv(out_csv, [p.relative_to(root).as_posix() for p in paths], q, fmt=".8g")


def fold_output_affine(model: nn.Module, mean: float, std: float, example: torch.Tensor) -> dict[str, Any] | None:
    """Make ``model`` output ``std * y + mean`` by rescaling its output layer, if that is exact.

    Returns the applied map, or None (model unchanged) when the output is not affine in the
    output layer (e.g. a sigmoid head); such a model keeps z-scored outputs, recorded in the report.
    """
    from edgefiq.prune.common import find_head

    if mean == 0.0 and std == 1.0:
        return {"mean": 0.0, "std": 1.0}
    head = dict(model.named_modules())[find_head(model, example)]
    if getattr(head, "bias", None) is None:  # adding a bias would change the checkpoint's keys
        log.warning("recovery: output layer has no bias; the fine-tuned model outputs z-scores")
        return None
    model.eval()
    with torch.no_grad():
        before = model(example).double()
        w, b = head.weight.detach().clone(), head.bias.detach().clone()
        head.weight.mul_(std)
        head.bias.mul_(std).add_(mean)
        after = model(example).double()
        if torch.allclose(after, before * std + mean, rtol=1e-4, atol=1e-5 * max(1.0, abs(mean) + std)):
            return {"mean": mean, "std": std}
        head.weight.copy_(w)
        head.bias.copy_(b)
    log.warning("recovery: output is not affine in the output layer; the fine-tuned model outputs z-scores")
    return None


def recovery_targets(cfg: RecoveryConfig) -> str | None:
    """What the recovery trains against: ``online`` / ``offline`` KD, ``labels``, or None (no recovery)."""
    if cfg.epochs <= 0:
        return None
    return "labels" if cfg.labels else ("online" if cfg.online_kd else "offline")


def recover(pruned: nn.Module, dense: nn.Module, preprocess: Preprocess, cfg: RecoveryConfig, work_dir: str | Path,
            *, masks: dict[str, torch.Tensor] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Fine-tune ``pruned`` (in place) to recover the unpruned model's (or the teacher's) scores.

    Args:
        pruned: the pruned model (structured or unstructured).
        dense: the unpruned model, used as the KD teacher when ``cfg.labels`` is None.
        preprocess: the models' input preprocessing (its size is the training size).
        cfg: see :class:`RecoveryConfig`.
        work_dir: folder for the KD labels and the distillation run (``recovery/``).
        masks: unstructured keep-masks (``info["masks"]``): pruned weights stay zero.

    Returns:
        ``(pruned, {"epochs", "labels", "best_val_srcc", ...})``.

    Example:
        >>> model, m = recover(model, dense, pp, RecoveryConfig(epochs=2, images="faces/"), "runs/p")  # doctest: +SKIP
    """
    from edgefiq.distill import DataConfig, DistillConfig, OptimConfig, distill
    from edgefiq.models.checkpoint import read_checkpoint
    from edgefiq.prune.unstructured import keep_masked_zero
    from edgefiq.teachers.external import ModuleTeacher

    if cfg.epochs <= 0:
        return pruned, {"epochs": 0}
    if not cfg.images:
        raise UsageError("recovery fine-tuning needs --images (and optionally --labels)")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    online = recovery_targets(cfg) == "online"
    if cfg.labels:
        labels, source = str(cfg.labels), "teacher labels"
    elif online:
        labels, source = None, "unpruned model (KD, online: every augmented view)"
    else:
        labels = str(write_kd_labels(dense, cfg.images, preprocess, work / "kd_labels.csv"))
        source = "unpruned model (KD, offline: original images)"
    # z-scored targets keep the loss well scaled however narrow the unpruned scores are;
    # for KD the affine map back is folded into the output layer afterwards
    dcfg = DistillConfig(
        student="pruned", input_size=tuple(preprocess.size), target_norm="zscore", seed=cfg.seed, threads=cfg.threads,
        data=DataConfig(images=str(cfg.images), labels=labels, val_fraction=cfg.val_fraction),
        losses=dict(cfg.losses), max_steps_per_epoch=cfg.max_steps_per_epoch, quant_aware=cfg.quant_aware,
        optim=OptimConfig(lr=cfg.lr, batch_size=cfg.batch_size, epochs=cfg.epochs, warmup_epochs=min(0.2, cfg.epochs),
                          weight_decay=1e-4, min_lr=cfg.lr * 0.01))
    handles = keep_masked_zero(pruned, masks) if masks else []
    run_dir = work / "recovery"
    teacher = None
    if online:
        teacher = ModuleTeacher(dense, preprocess, description="unpruned model", batch_size=cfg.batch_size)
        dcfg = dataclasses.replace(dcfg, data=dataclasses.replace(dcfg.data, teacher="model"))
    try:
        result = distill(dcfg, run_dir, model=pruned, teacher=teacher)
    finally:
        for h in handles:
            h.remove()
    best = read_checkpoint(result.best)
    pruned.load_state_dict(best["state_dict"], strict=True)
    folded = None
    if not cfg.labels:
        tn = (best.get("meta") or {}).get("target_norm") or {}
        folded = fold_output_affine(pruned, float(tn.get("mean", 0.0)), float(tn.get("std", 1.0)),
                                    torch.randn(4, 3, *preprocess.size, generator=torch.Generator().manual_seed(0)))
    if masks:
        mods = dict(pruned.named_modules())
        with torch.no_grad():
            for n, m in masks.items():
                mods[n].weight.mul_(m.to(mods[n].weight.dtype))
    pruned.eval()
    metrics = {"epochs": cfg.epochs, "labels": source, "run_dir": str(run_dir), "lr": cfg.lr, "output_affine": folded,
               "losses": dict(cfg.losses), **{k: v for k, v in result.metrics.items() if k.startswith("val_")}}
    return pruned, metrics
