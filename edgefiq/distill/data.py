"""Training data for distillation: labelled image lists, uint8 caches, batches.

The identity-disjoint split is ``edgefiq.data.split.identity_split`` (re-exported here), the
same draw the ``data`` stage of ``edgefiq run`` makes for the same seed.

JPEG decoding dominates small-image training on a few CPU cores, so images are decoded once
into one ``[N, H, W, 3]`` uint8 array (optionally kept on disk as ``.npy``); batches are cut
from it and augmented with numpy. Every random choice of a batch comes from a generator
seeded by ``(seed, epoch, step, rank)``, which makes batches reproducible after a resume.

Example:
    >>> split = identity_split(["a/1.jpg", "a/2.jpg", "b/1.jpg", "c/1.jpg"], val_fraction=0.34, seed=0)
    >>> sorted(len(s) for s in split)
    [1, 3]
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from edgefiq.data.degrade import DEGRADATIONS, degrade
from edgefiq.data.images import load_image
from edgefiq.data.preprocess import Preprocess
from edgefiq.data.readers import identity_of, read_labels_csv, read_severity_index, read_source_index
from edgefiq.data.split import identity_split
from edgefiq.errors import BadImageError, DataError
from edgefiq.utils import atomic_path, progress

log = logging.getLogger(__name__)

__all__ = ["ImageSource", "LabelledSet", "augment_batch", "clean_index", "decode_cache", "degrade_batch",
           "identity_split", "read_identity_list", "read_index", "read_labelled_set", "to_tensor"]


@dataclass
class LabelledSet:
    """Relative paths (POSIX, under ``root``), teacher labels, and per-image degradation info."""

    root: Path
    rel: list[str]
    labels: np.ndarray
    severity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    source: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.severity) != len(self.rel):
            self.severity = np.zeros(len(self.rel), np.float32)
        if len(self.source) != len(self.rel):
            self.source = list(self.rel)

    def subset(self, idx: Sequence[int]) -> "LabelledSet":
        idx = list(idx)
        return LabelledSet(self.root, [self.rel[i] for i in idx], self.labels[idx], self.severity[idx],
                           [self.source[i] for i in idx])

    def identities(self) -> list[str]:
        """Identity of every image (from its clean source, so degraded copies follow their source)."""
        return [identity_of(s) for s in self.source]


def read_labelled_set(images: str | Path, labels_csv: str | Path, index_csv: str | Path | None = None) -> LabelledSet:
    """Read a label CSV under ``images`` (and optionally a degraded-set index with source/severity).

    Example:
        >>> s = read_labelled_set("faces/", "labels.csv")   # doctest: +SKIP
    """
    root = Path(images)
    paths, q = read_labels_csv(labels_csv, root)
    rel = [p.relative_to(root).as_posix() for p in paths]
    ls = LabelledSet(root, rel, q.astype(np.float64))
    if index_csv:
        info = read_index(index_csv)
        ls.severity = np.array([float(info.get(r, (r, 0.0))[1]) for r in rel], np.float32)
        ls.source = [info.get(r, (r, 0.0))[0] for r in rel]
    return ls


def read_index(index_csv: str | Path) -> dict[str, tuple[str, float]]:
    """``path -> (source, severity)`` from a ``make_degraded_set`` index (``path,source,kind,severity``;
    ``edgefiq.data.readers`` reads it)."""
    sources, severities = read_source_index(index_csv), read_severity_index(index_csv)
    return {r: (sources[r], severities[r]) for r in sources}


def read_identity_list(value: list[str] | str) -> list[str]:
    """Identities from a list or a text file (one per line)."""
    if isinstance(value, list):
        return value
    p = Path(value)
    if not p.is_file():
        raise DataError(f"{p}: validation identity list not found")
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]


def decode_cache(root: Path, rel: Sequence[str], size: tuple[int, int], *, cache_dir: str | None = None,
                 on_bad_image: str = "error") -> tuple[np.ndarray, list[int]]:
    """Decode images once into ``[N, H, W, 3]`` uint8 (resized to ``size``); returns (array, bad indices).

    With ``cache_dir`` the array is saved as ``<cache_dir>/<hash>.npy`` (hash of root, paths, size)
    and memory-mapped on later runs.
    """
    key = hashlib.sha256(("\n".join([str(root.resolve()), f"{size}"] + list(rel))).encode()).hexdigest()[:16]
    npy = Path(cache_dir) / f"images-{key}.npy" if cache_dir else None
    bad_file = npy.with_suffix(".bad.txt") if npy else None
    if npy is not None and npy.is_file():
        bad = [int(x) for x in bad_file.read_text().split()] if bad_file and bad_file.is_file() else []
        return np.load(npy, mmap_mode="r"), bad
    pp = Preprocess(size=size)
    arr = np.zeros((len(rel), size[0], size[1], 3), np.uint8)
    bad: list[int] = []
    for i, r in enumerate(progress(rel, desc="decode", unit="img")):
        try:
            arr[i] = pp.resize(load_image(root / r))
        except BadImageError as e:
            if on_bad_image != "skip":
                raise
            log.warning("skipping %s", e)
            bad.append(i)
    if npy is not None:
        npy.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(npy) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, arr)
        assert bad_file is not None
        bad_file.write_text(" ".join(map(str, bad)))
    return arr, bad


class ImageSource:
    """uint8 images by index: from the decoded cache or decoded on demand."""

    def __init__(self, root: Path, rel: Sequence[str], size: tuple[int, int], array: np.ndarray | None = None) -> None:
        self.root, self.rel, self.size, self.array = root, list(rel), size, array
        self._pp = Preprocess(size=size)

    def __len__(self) -> int:
        return len(self.rel)

    def get(self, idx: Sequence[int]) -> np.ndarray:
        if self.array is not None:
            return np.asarray(self.array[np.asarray(idx)])
        return np.stack([self._pp.resize(load_image(self.root / self.rel[i])) for i in idx])


def augment_batch(imgs: np.ndarray, rng: np.random.Generator, *, hflip: float, shift: int) -> np.ndarray:
    """Random horizontal flips and integer shifts (edge-replicated) of a ``[B, H, W, 3]`` uint8 batch.

    Example:
        >>> x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
        >>> augment_batch(x, np.random.default_rng(0), hflip=0.0, shift=0).tolist() == x.tolist()
        True
    """
    out = imgs.copy()
    b, h, w = out.shape[:3]
    flips = rng.random(b) < hflip
    shifts = rng.integers(-shift, shift + 1, size=(b, 2)) if shift > 0 else np.zeros((b, 2), int)
    for i in range(b):
        x = out[i, :, ::-1] if flips[i] else out[i]
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        if dy or dx:
            x = np.pad(x, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="edge")
            y0, x0 = abs(dy) - dy, abs(dx) - dx
            x = x[y0:y0 + h, x0:x0 + w]
        out[i] = x
    return out


def degrade_batch(imgs: np.ndarray, rng: np.random.Generator, *, p: float, kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Degrade each image with probability ``p`` (one random kind, severity U(0, 1)); returns (images, severities)."""
    kinds = list(kinds) or list(DEGRADATIONS)
    out = imgs.copy()
    sev = np.zeros(len(imgs), np.float32)
    for i in range(len(imgs)):
        if rng.random() < p:
            s = float(rng.uniform(0.05, 1.0))
            out[i] = degrade(imgs[i], kinds[int(rng.integers(len(kinds)))], s, rng)
            sev[i] = s
    return out, sev


def to_tensor(imgs: np.ndarray, pp: Preprocess) -> Any:
    """``[B, H, W, 3]`` uint8 -> normalised float32 NCHW torch tensor."""
    x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(pp.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pp.std, dtype=torch.float32).view(1, 3, 1, 1)
    if pp.channel_order == "BGR":
        x = x.flip(1)
    return (x - mean) / std


def clean_index(rel: Sequence[str], source: Sequence[str]) -> np.ndarray:
    """For each batch item, the batch position of its clean source (-1 if absent or itself clean)."""
    pos = {r: i for i, r in enumerate(rel)}
    return np.array([pos.get(s, -1) if s != r else -1 for r, s in zip(rel, source)], np.int64)
