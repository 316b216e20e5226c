"""``DistillConfig``: everything a distillation run needs, as frozen dataclasses.

Load from a recipe mapping with ``edgefiq.recipe.from_mapping(DistillConfig, d)``; the
resolved config is written to ``recipe.yaml`` in the run folder.

Example:
    >>> from edgefiq.recipe import from_mapping
    >>> cfg = from_mapping(DistillConfig, {"student": "tiny_cnn", "data": {"images": "faces/", "labels": "l.csv"},
    ...                                    "losses": {"plcc": 1.0, "rank": 0.5}, "optim": {"epochs": 3}})
    >>> cfg.optim.epochs, cfg.optim.name
    (3, 'adamw')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class DataConfig:
    """Where images and teacher labels come from and how validation is split.

    Attributes:
        images: images root (identity tree ``<Identity>/<file>`` for identity-disjoint splits).
        labels: label CSV ``path,quality`` (offline teacher). Either this or ``teacher``.
        teacher: online teacher name (``edgefiq.teachers``): labels of every (augmented, degraded) view
            are computed on the fly (self-training). Views reach the teacher as arrays
            (``score_images``) or as lossless temporary PNGs (``score_paths``); its embedding cache is off.
        teacher_options: teacher constructor options.
        index: optional ``path,source,kind,severity`` CSV (``make_degraded_set``'s ``index.csv``)
            giving each image's clean source and degradation severity (``margin_rank`` uses it).
        leave_out: degradation kinds, families or groups (``edgefiq data degrade --list``) kept out of
            training, e.g. ``[misalignment]`` to measure how a student generalises to a family it never
            saw; needs ``index`` (each image's kind). Validation keeps every image.
        val_labels: explicit validation label CSV (same images root); disables the automatic split.
            With an online ``teacher``, validation uses these labels and training uses every image
            of the other identities (two-stage distillation validated against the original teacher).
        val_identities: explicit list of validation identities (or a text file, one per line).
        val_fraction: share of identities held out when no explicit validation set is given.
        cache: decode every image once into an in-memory uint8 array.
        cache_dir: also keep that array on disk (``.npy``) and reuse it across runs.
        on_bad_image: ``error`` or ``skip`` unreadable images (skipped ones are listed in the run folder).
    """

    images: str = ""
    labels: str | None = None
    teacher: str | None = None
    teacher_options: dict[str, Any] = field(default_factory=dict)
    index: str | None = None
    leave_out: list[str] = field(default_factory=list)
    val_labels: str | None = None
    val_identities: list[str] | str | None = None
    val_fraction: float = 0.1
    cache: bool = True
    cache_dir: str | None = None
    on_bad_image: Literal["error", "skip"] = "error"


@dataclass(frozen=True)
class AugmentConfig:
    """Label-preserving augmentations (and, with an online teacher, degradations).

    Attributes:
        hflip: probability of a horizontal flip.
        shift: maximum translation in pixels (edge-replicated), per axis.
        degrade_p: probability of degrading a training view (needs an online teacher, since the
            label changes); kinds from ``edgefiq.data.degrade.DEGRADATIONS``.
        degrade_kinds: kinds to draw from (empty = all).
        degrade_pairs: with an online teacher, add a degraded copy of every image to its batch so
            ``margin_rank`` sees (clean, degraded) pairs.
    """

    hflip: float = 0.5
    shift: int = 4
    degrade_p: float = 0.0
    degrade_kinds: list[str] = field(default_factory=list)
    degrade_pairs: bool = False


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule (the lr is a pure function of the step, so resume is exact).

    Attributes:
        name: ``adamw`` or ``sgd`` (momentum, nesterov).
        lr: peak learning rate (after warm-up).
        schedule: ``cosine`` (to ``min_lr``), ``step`` (x ``gamma`` every ``step_epochs``),
            ``plateau`` (x ``gamma`` after ``patience`` epochs without val SRCC gain), ``constant``.
        warmup_epochs: linear warm-up length (fractions allowed).
        grad_clip: max gradient norm (0 = off).
    """

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    batch_size: int = 64
    epochs: int = 10
    schedule: Literal["cosine", "step", "plateau", "constant"] = "cosine"
    warmup_epochs: float = 1.0
    min_lr: float = 1e-5
    step_epochs: int = 3
    gamma: float = 0.1
    patience: int = 2
    grad_clip: float = 0.0


@dataclass(frozen=True)
class FeatureKDConfig:
    """Feature-level distillation (``edgefiq.distill.feature_kd``), off unless ``weight > 0``.

    Attributes:
        targets: ``.npz`` with ``paths`` (as in the label CSV) and ``vectors`` ``[N, D]``: one vector per
            training image, e.g. the FR model's L2-normalised embeddings that a PreFIQs labeller computes.
        weight: weight of the feature term in the training loss.
        loss: ``cosine`` (1 - cosine similarity) or ``mse``.
    """

    targets: str | None = None
    weight: float = 0.0
    loss: Literal["cosine", "mse"] = "cosine"


@dataclass(frozen=True)
class FinetuneConfig:
    """How a pretrained trunk is fine-tuned (no effect with ``weights: none``).

    Attributes:
        trunk_lr_mult: the trunk's learning rate as a fraction of ``optim.lr`` (the new head always
            gets the full rate); below 1 keeps pretrained features from being washed out early.
        head_warmup_epochs: train only the head for this many epochs first (trunk frozen), so the
            random head's first gradients do not disturb the trunk.
        freeze_bn: keep the trunk's BatchNorm statistics (eval mode) and affine parameters fixed,
            e.g. when batches are small or unlike the pretraining data in a way you want to ignore.
        freeze: parameter-name prefixes kept at their pretrained values for the whole run (their
            BatchNorm statistics too), e.g. ``[trunk.conv1, trunk.dw_conv, trunk.features.0]``: the
            early, high-resolution layers cost most of a step's backward pass and change least.
    """

    trunk_lr_mult: float = 1.0
    head_warmup_epochs: float = 0.0
    freeze_bn: bool = False
    freeze: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DistillConfig:
    """A distillation run.

    Attributes:
        student: ``STUDENTS`` name; ``student_options`` its kwargs (``head``, ``depth``, ...).
        weights: pretrained initialisation: ``none``, ``imagenet``, ``face`` or a state-dict path
            (``edgefiq.models.weights``; the student's preprocessing already matches every entry).
        finetune: how a pretrained trunk is fine-tuned (``FinetuneConfig``).
        input_size: (height, width) the student sees.
        losses: loss name -> weight (``HybridLoss``); ``loss_options``: name -> kwargs.
        target_norm: affine normalisation of teacher labels for training (``zscore`` on the
            training labels, or ``none``); stored in the checkpoint meta.
        sampler: ``random`` or ``stratified`` (uniform over ``sampler_bins`` score bins, then within).
        clean_share: fraction of each epoch's training positions given to clean images (those that are
            their own source in ``data.index``; ``sampler.with_clean_share``), 0 = the sampler's order.
            0.3 moved the clean-photo SRCC with the teacher by +0.005 only (results/clean-share).
        ema: EMA decay of the weights (0 = off); validation and ``best.pt`` use the EMA weights.
            The average spans ~1/(1-ema) steps: keep it well below the run's total steps.
        early_stop: stop after this many epochs without val SRCC improvement (0 = off).
        device: ``cpu``, ``cuda`` or ``auto``; AMP and channels-last are used only on CUDA.
        threads: torch CPU threads (0 = leave torch's default).
        save_every_steps: also checkpoint ``last.pt`` mid-epoch every N steps (0 = epoch ends only).
        max_steps_per_epoch: cap steps per epoch (0 = full epoch), for quick runs.
        quant_aware: train against 8-bit activations (``edgefiq.distill.quant_aware``: fixed ranges
            observed on training images, batch norm frozen) so the float student survives int8
            export; validation and checkpoints stay float.
        quant_aware_epochs: with ``quant_aware``, only the last N epochs are quantisation-aware
            (0 = all, e.g. pruning recovery from a trained model); ``best.pt`` is chosen among them.
        feature_kd: also regress per-image teacher vectors from the student's pooled features
            through a training-only projection (``FeatureKDConfig``).
    """

    student: str = "mobilenetv3_small_100"
    student_options: dict[str, Any] = field(default_factory=dict)
    weights: str = "none"
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    input_size: tuple[int, int] = (112, 112)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    losses: dict[str, float] = field(default_factory=lambda: {"plcc": 1.0, "rank": 0.5})
    loss_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    target_norm: Literal["zscore", "none"] = "zscore"
    sampler: Literal["random", "stratified"] = "random"
    sampler_bins: int = 10
    clean_share: float = 0.0
    ema: float = 0.0
    early_stop: int = 0
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    amp: bool = True
    channels_last: bool = True
    save_every_steps: int = 0
    max_steps_per_epoch: int = 0
    val_batch_size: int = 256
    quant_aware: bool = False
    quant_aware_epochs: int = 0
    feature_kd: FeatureKDConfig = field(default_factory=FeatureKDConfig)
