"""Turn a ``DistillConfig``'s data section into train/validation sets, image caches and label scaling.

Offline teacher: a label CSV (``path,quality``) under the images root, split by identity
(degraded copies follow their clean source's identity when ``data.index`` is given) unless
a validation CSV or identity list is given. Online teacher: the images root is listed and
the teacher scores validation images once and every training view on the fly.

Example:
    >>> prepared = prepare_data(cfg, Path("runs/d"))   # doctest: +SKIP
    >>> len(prepared.train.rel), len(prepared.val.rel)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.data.degrade import expand_kinds
from edgefiq.data.readers import list_images, read_kind_index
from edgefiq.distill.config import DistillConfig
from edgefiq.distill.data import (ImageSource, LabelledSet, decode_cache, identity_split, read_identity_list,
                                  read_index, read_labelled_set)
from edgefiq.distill.feature_kd import load_targets
from edgefiq.errors import UsageError
from edgefiq.teachers import make_teacher

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything the loop needs about data."""

    train: LabelledSet
    val: LabelledSet
    train_src: ImageSource
    val_src: ImageSource
    norm: dict[str, float]
    teacher: Any = None
    teacher_desc: dict[str, Any] | None = None
    train_vectors: np.ndarray | None = None   # feature_kd targets, one row per training image

    def score_online(self, imgs: np.ndarray) -> np.ndarray:
        """Teacher scores of in-memory uint8 views (online self-training): ``Teacher.score_images``."""
        return np.asarray(self.teacher.score_images(list(imgs)), np.float64)


def _split(cfg: DistillConfig, full: LabelledSet) -> tuple[LabelledSet, LabelledSet]:
    d = cfg.data
    if d.val_labels:
        val = read_labelled_set(d.images, d.val_labels, d.index)
        overlap = set(val.rel) & set(full.rel)
        if overlap:
            raise UsageError(f"{len(overlap)} validation images are also in the training labels "
                             f"(e.g. {sorted(overlap)[0]}); give disjoint CSVs")
        return full, val
    ids = read_identity_list(d.val_identities) if d.val_identities is not None else None
    tr, va = identity_split(full.source, val_fraction=d.val_fraction, seed=cfg.seed, val_identities=ids)
    return full.subset(tr), full.subset(va)


def _leave_out(train: LabelledSet, src: ImageSource, names: list[str],
               index: str | None) -> tuple[LabelledSet, ImageSource]:
    """``train`` and its source without the images whose degradation kind is in ``names`` (kinds, families, groups)."""
    if not index:
        raise UsageError("data.leave_out needs data.index (the index.csv of edgefiq data degrade: each image's kind)")
    drop = set(expand_kinds(names))
    kinds = read_kind_index(index)
    keep = [i for i, r in enumerate(train.rel) if kinds.get(r, "clean") not in drop]
    log.info("distill data: %d training images of %s left out", len(train.rel) - len(keep), ", ".join(names))
    arr = np.asarray(src.array[keep]) if src.array is not None else None
    return train.subset(keep), ImageSource(src.root, [train.rel[i] for i in keep], src.size, arr)


def _drop_bad(ls: LabelledSet, src: ImageSource, bad: list[int], out: Path | None) -> tuple[LabelledSet, ImageSource]:
    if not bad:
        return ls, src
    if out is not None:
        with open(out / "skipped.txt", "a", encoding="utf-8") as f:
            f.writelines(ls.rel[i] + "\n" for i in bad)
    keep = [i for i in range(len(ls.rel)) if i not in set(bad)]
    arr = np.asarray(src.array)[keep] if src.array is not None else None
    return ls.subset(keep), ImageSource(src.root, [ls.rel[i] for i in keep], src.size, arr)


def _sources(cfg: DistillConfig, ls: LabelledSet, out: Path | None) -> tuple[LabelledSet, ImageSource]:
    size = tuple(cfg.input_size)
    if not cfg.data.cache:
        return ls, ImageSource(ls.root, ls.rel, size)  # type: ignore[arg-type]
    arr, bad = decode_cache(ls.root, ls.rel, size, cache_dir=cfg.data.cache_dir,  # type: ignore[arg-type]
                            on_bad_image=cfg.data.on_bad_image)
    return _drop_bad(ls, ImageSource(ls.root, ls.rel, size, arr), bad, out)  # type: ignore[arg-type]


def prepare_data(cfg: DistillConfig, out: Path | None, teacher: Any = None) -> Prepared:
    """Build the train/val sets, their uint8 sources and the label normalisation of ``cfg``.

    ``teacher`` is an online teacher object to use instead of building ``cfg.data.teacher``.
    """
    d = cfg.data
    if not d.images:
        raise UsageError("no images root: pass --images DIR (or data.images in the recipe)")
    if bool(d.labels) == bool(d.teacher):
        raise UsageError("give exactly one label source: --labels CSV (offline teacher) or --teacher NAME (online)")
    fkd = cfg.feature_kd
    if fkd.weight > 0 and (not fkd.targets or d.teacher):
        raise UsageError("feature_kd needs feature_kd.targets (one vector per training image) and offline labels "
                         "(an online teacher's degraded views have no stored vector)")
    if (cfg.augment.degrade_p > 0 or cfg.augment.degrade_pairs) and not d.teacher:
        raise UsageError("augment.degrade_p / degrade_pairs change the label, so they need an online teacher "
                         "(--teacher); with offline labels, degrade the images first (edgefiq data degrade) and label them")
    if not 0.0 <= cfg.clean_share < 1.0:
        raise UsageError(f"clean_share: {cfg.clean_share} is not in [0, 1)")
    if cfg.clean_share > 0 and not d.index:
        raise UsageError("clean_share needs data.index (the index.csv of edgefiq data degrade: which images are clean)")
    desc = None
    if d.labels:
        teacher = None
        full = read_labelled_set(d.images, d.labels, d.index)
        train, val = _split(cfg, full)
        desc = {"kind": "offline", "labels": str(d.labels)}
    else:
        train, val, teacher, desc = _online_sets(cfg, teacher)
        if cfg.sampler == "stratified":
            raise UsageError("sampler: stratified needs offline labels (scores of the training images)")
    train, train_src = _sources(cfg, train, out)
    if d.leave_out:   # after decoding: the decoded training set (and its cache_dir copy) is shared by every leave_out
        train, train_src = _leave_out(train, train_src, d.leave_out, d.index)
    val, val_src = _sources(cfg, val, out)
    if len(train.rel) < 2 or len(val.rel) < 2:
        raise UsageError(f"too few images to train/validate (train {len(train.rel)}, val {len(val.rel)})")
    labels_for_norm = train.labels if d.labels else val.labels
    if cfg.target_norm == "zscore":
        std = float(np.std(labels_for_norm))
        norm = {"mean": float(np.mean(labels_for_norm)), "std": std if std > 0 else 1.0}
    else:
        norm = {"mean": 0.0, "std": 1.0}
    vectors = None
    if fkd.weight > 0:
        vectors = load_targets(fkd.targets, train.rel)  # type: ignore[arg-type]
    log.info("distill data: %d train / %d val images", len(train.rel), len(val.rel))
    return Prepared(train, val, train_src, val_src, norm, teacher, desc, vectors)


def _online_sets(cfg: DistillConfig, teacher: Any = None) -> tuple[LabelledSet, LabelledSet, Any, dict[str, Any]]:
    d = cfg.data
    root = Path(d.images)
    rel = [p.relative_to(root).as_posix() for p in list_images(root)]
    full = LabelledSet(root, rel, np.zeros(len(rel)))
    if d.index:
        info = read_index(d.index)
        full.source = [info.get(r, (r, 0.0))[0] for r in rel]
    if teacher is None:
        # views are temporary files: keep them out of the teacher's on-disk embedding cache
        teacher = make_teacher(d.teacher, dict(d.teacher_options), cache=False)
    desc: dict[str, Any] = {"kind": "online", "name": d.teacher}
    if d.val_labels:  # validate against fixed labels (e.g. the run's teacher when a student teaches online)
        val = read_labelled_set(d.images, d.val_labels, d.index)
        held_out = set(val.identities())
        train = full.subset([i for i, ident in enumerate(full.identities()) if ident not in held_out])
        desc["val_labels"] = str(d.val_labels)
    else:
        ids = read_identity_list(d.val_identities) if d.val_identities is not None else None
        tr, va = identity_split(full.source, val_fraction=d.val_fraction, seed=cfg.seed, val_identities=ids)
        train, val = full.subset(tr), full.subset(va)
        val.labels = np.asarray(teacher.score_paths([root / r for r in val.rel]), np.float64)
    # training labels exist only per view; the sampler sees zeros (random order)
    desc["config"] = teacher.config()
    return train, val, teacher, desc
