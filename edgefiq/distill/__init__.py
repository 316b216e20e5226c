"""Distillation: train a small student to score face quality like a teacher.

``distill(cfg, out_dir, resume=False)`` is the one entry point (``edgefiq distill`` calls it);
``DistillConfig`` (``edgefiq.distill.config``) describes a run. Modules: ``config`` (recipe
dataclasses), ``prepare``/``data`` (labels, splits, uint8 caches, augmentation), ``sampler``
(random / score-stratified orders), ``optim`` (optimiser, lr schedule, EMA), ``ddp``
(torchrun), ``loop`` (the training loop and checkpoints).

Example:
    >>> from edgefiq.distill import DistillConfig, distill
    >>> DistillConfig().student
    'mobilenetv3_small_100'
"""

from edgefiq.distill.config import AugmentConfig, DataConfig, DistillConfig, FinetuneConfig, OptimConfig
from edgefiq.distill.loop import DistillResult, distill

__all__ = ["AugmentConfig", "DataConfig", "DistillConfig", "DistillResult", "FinetuneConfig", "OptimConfig", "distill"]
