"""Calibration and verification sets: build them from any image folder, load them for a model.

A calibration set is either a folder of images (searched recursively) or an ``.npz`` with
``images`` (uint8 ``N x H x W x 3``), ``paths`` (relative paths) and ``scores`` (teacher
scores, NaN when unknown). ``build_calibration_set`` picks ``n`` images stratified by
teacher score (one per score-quantile bin) so low- and high-quality faces, whose
activation ranges differ most, are all represented. Torch-free.

Example:
    >>> build_calibration_set("faces/", "calib.npz", n=300, labels_csv="labels.csv")   # doctest: +SKIP
    >>> x = load_calibration("calib.npz", Preprocess(size=(112, 112)))                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from edgefiq.data.images import load_or_skip
from edgefiq.data.preprocess import Preprocess
from edgefiq.data.readers import list_images, read_labels_csv
from edgefiq.errors import DataError, UsageError
from edgefiq.registry import TEACHERS
from edgefiq.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

MIN_INT8_CALIBRATION = 16   # fewer images give unstable activation ranges


def stratified_indices(scores: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` items, one drawn at random from each of ``n`` equal-count score bins.

    NaN scores are ignored. With ``n >= len(scores)`` every (finite) index is returned.

    Example:
        >>> stratified_indices(np.arange(10.0), 5, seed=0).shape
        (5,)
    """
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(scores))
    if n >= len(finite):
        return np.sort(finite)
    order = finite[np.argsort(scores[finite], kind="stable")]
    rng = np.random.default_rng(seed)
    picks = [rng.choice(chunk) for chunk in np.array_split(order, n) if len(chunk)]
    return np.sort(np.asarray(picks, dtype=np.int64))


def _score_images(paths: list[Path], root: Path, labels_csv: str | Path | None,
                  teacher: str | None) -> np.ndarray:
    """Teacher scores for ``paths``: from a label CSV, a registered teacher, or NaN (random pick)."""
    if labels_csv is not None:
        lp, q = read_labels_csv(labels_csv, root)
        by_path = {Path(p).resolve(): float(s) for p, s in zip(lp, q)}
        scores = np.array([by_path.get(p.resolve(), np.nan) for p in paths])
        if not np.isfinite(scores).any():
            raise DataError(f"{labels_csv}: none of its paths is an image under {root}")
        return scores
    if teacher is not None:
        return np.asarray(TEACHERS.get(teacher)().score_paths(paths, root=root), dtype=np.float64)
    return np.full(len(paths), np.nan)


def build_calibration_set(images_root: str | Path, out: str | Path, *, n: int = 300,
                          labels_csv: str | Path | None = None, teacher: str | None = None,
                          size: tuple[int, int] = (112, 112), seed: int = 0,
                          on_bad_image: str = "error") -> Path:
    """Pick ``n`` images from ``images_root`` stratified by teacher score and store them.

    Args:
        out: ``*.npz`` (images resized to ``size``) or a folder (images copied unchanged,
            keeping their relative paths, plus ``calibration.csv`` with ``path,quality``).
        labels_csv: ``path,quality`` CSV with teacher scores; else ``teacher`` (a registered
            teacher name) scores the images; else the pick is uniformly random.

    Example:
        >>> build_calibration_set("../shared/data/lfw-dev/aligned112", "calib.npz", n=300)   # doctest: +SKIP
    """
    if n < 1:
        raise UsageError(f"calibration size must be >= 1, got {n}")
    root = Path(images_root)
    paths = list_images(root)
    scores = _score_images(paths, root, labels_csv, teacher)
    if np.isfinite(scores).any():
        idx = stratified_indices(scores, n, seed)
    else:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(paths), size=min(n, len(paths)), replace=False))
    if len(idx) < n:
        log.warning("calibration: only %d images available (asked for %d)", len(idx), n)
    out = Path(out)
    rel = [paths[i].relative_to(root).as_posix() for i in idx]
    if out.suffix == ".npz":
        pp = Preprocess(size=size)
        images, kept, kept_scores = [], [], []
        for i, r in zip(idx, rel):
            img = load_or_skip(paths[i], on_bad_image)
            if img is not None:
                images.append(pp.resize(img))
                kept.append(r)
                kept_scores.append(scores[i])
        if not images:
            raise DataError(f"{root}: no readable images for the calibration set")
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, images=np.stack(images).astype(np.uint8), paths=np.array(kept),
                                    scores=np.array(kept_scores, dtype=np.float64))
        return out
    out.mkdir(parents=True, exist_ok=True)
    for i, r in zip(idx, rel):
        dst = out / r
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[i], dst)
    lines = ["path,quality"] + [f"{r},{'' if not np.isfinite(scores[i]) else repr(float(scores[i]))}"
                                for i, r in zip(idx, rel)]
    atomic_write_text(out / "calibration.csv", "\n".join(lines) + "\n")
    return out


def load_images(src: str | Path, *, limit: int | None = None, on_bad_image: str = "error",
                seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Images of a folder or calibration ``.npz`` as HxWx3 uint8 arrays, with their names.

    ``limit`` keeps an evenly spaced subset (deterministic) of a larger source.

    Raises:
        DataError: missing source, no images, or an unreadable ``.npz``.
    """
    src = Path(src)
    if src.is_file() and src.suffix == ".npz":
        try:
            with np.load(src, allow_pickle=False) as z:
                images = z["images"]
                names = [str(p) for p in z["paths"]] if "paths" in z else [str(i) for i in range(len(images))]
        except (KeyError, ValueError, OSError) as e:
            raise DataError(f"{src}: not a calibration .npz with an 'images' array ({e})") from None
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DataError(f"{src}: 'images' must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
        sel = _subset(len(images), limit)
        return [images[i] for i in sel], [names[i] for i in sel]
    if not src.exists():
        raise DataError(f"{src}: calibration/verification source not found (a folder of images or an .npz)")
    paths = list_images(src)
    sel = _subset(len(paths), limit)
    images, names = [], []
    for i in sel:
        img = load_or_skip(paths[i], on_bad_image)
        if img is not None:
            images.append(img)
            names.append(paths[i].relative_to(src).as_posix())
    if not images:
        raise DataError(f"{src}: no readable images")
    return images, names


def _subset(n: int, limit: int | None) -> Sequence[int]:
    if limit is None or limit >= n:
        return range(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int)).tolist()


def load_calibration(src: str | Path | np.ndarray, preprocess: Preprocess, *, limit: int | None = None,
                     min_images: int = 1, on_bad_image: str = "error") -> np.ndarray:
    """A preprocessed float32 NCHW batch from a folder, an ``.npz`` or an array.

    Args:
        src: image folder, calibration ``.npz``, or an already preprocessed float32 NCHW array.
        min_images: fewer readable images raise ``DataError`` (int8 uses ``MIN_INT8_CALIBRATION``).

    Example:
        >>> x = load_calibration("calib.npz", Preprocess(size=(112, 112)))   # doctest: +SKIP
    """
    if isinstance(src, np.ndarray):
        x = np.ascontiguousarray(src, dtype=np.float32)
        if x.ndim != 4:
            raise DataError(f"calibration array must be N x C x H x W, got shape {x.shape}")
    else:
        images, _ = load_images(src, limit=limit, on_bad_image=on_bad_image)
        x = Preprocess(size=preprocess.size, mean=preprocess.mean, std=preprocess.std,
                       channel_order=preprocess.channel_order, layout="NCHW").batch(images)
    if len(x) < min_images:
        raise DataError(f"{src if not isinstance(src, np.ndarray) else 'calibration array'}: "
                        f"{len(x)} images, need at least {min_images}")
    return x
