"""``FaceDataset``: image paths (+ optional labels) -> preprocessed tensors for torch training and scoring.

``iter_image_batches(paths, preprocess, batch_size=...)`` is the one way torch code batches
image files (FR embeddings, teachers, recovery labels): ``(x NCHW float32, ok, indices)`` in
order, decoded by DataLoader workers; bad images flagged (``skip_bad``) or raised.

The preprocessing comes from the model's own ``Preprocess`` spec, so the data
always matches what the model expects. ``transform`` runs on the decoded
``HxWx3`` uint8 RGB image before preprocessing (degradation augmentation such
as ``edgefiq.data.degrade.RandomDegradation`` plugs in there).

Bad images: ``on_bad_image="error"`` raises ``BadImageError`` naming the file
when it is read; ``"skip"`` decodes every image once up front, drops the bad
ones (``dataset.skips`` lists them; ``dataset.skips.write(out_dir)`` writes
``skipped.txt``) and keeps returning ORIGINAL indices, so results map back to
``paths``.

Example:
    >>> from edgefiq.data.preprocess import Preprocess
    >>> ds = FaceDataset(["a.jpg", "b.jpg"], Preprocess(), labels=[0.3, 0.9])   # doctest: +SKIP
    >>> x, y, i = ds[0]                                                          # doctest: +SKIP
    >>> x.shape, y, i                                                            # doctest: +SKIP
    (torch.Size([3, 112, 112]), 0.3, 0)
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from edgefiq.data.images import SkipLog, check_on_bad_image, load_image, load_or_skip
from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import BadImageError, DataError
from edgefiq.utils import progress

Transform = Callable[[np.ndarray], np.ndarray]


class FaceDataset(Dataset):
    """A torch ``Dataset`` yielding ``(tensor CHW float32, label float or nan, index)``.

    Args:
        paths: image files.
        preprocess: the model's ``Preprocess`` (its layout is forced to CHW here).
        labels: optional per-image float labels (same length as ``paths``).
        transform: optional ``uint8 HWC -> uint8 HWC`` function applied before preprocessing.
        on_bad_image: ``error`` or ``skip`` (see module docstring).
        cache: keep decoded uint8 images in memory after the first read (small-image training);
            call ``preload()`` before creating worker processes to share one copy.

    Example:
        >>> ds = FaceDataset(paths, Preprocess(size=(112, 112)), labels=q, cache=True)   # doctest: +SKIP
        >>> loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True,
        ...                                      worker_init_fn=worker_init_fn)          # doctest: +SKIP
    """

    def __init__(self, paths: Sequence[str | Path], preprocess: Preprocess, labels: Sequence[float] | np.ndarray | None = None,
                 transform: Transform | None = None, on_bad_image: str = "error", cache: bool = False) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise DataError("FaceDataset: no images given")
        self.labels = None if labels is None else np.asarray(labels, dtype=np.float64).reshape(-1)
        if self.labels is not None and len(self.labels) != len(self.paths):
            raise DataError(f"FaceDataset: {len(self.labels)} labels for {len(self.paths)} images")
        self.preprocess = dataclasses.replace(preprocess, layout="NCHW")
        self.transform = transform
        self.on_bad_image = check_on_bad_image(on_bad_image)
        self.skips = SkipLog()
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self.indices = list(range(len(self.paths)))
        if on_bad_image == "skip":
            self._scan()

    def _scan(self) -> None:
        keep = []
        for i in progress(range(len(self.paths)), desc="check images", unit="img"):
            img = load_or_skip(self.paths[i], "skip", self.skips)
            if img is None:
                continue
            keep.append(i)
            if self._cache is not None:
                self._cache[i] = img
        if not keep:
            raise DataError(f"FaceDataset: all {len(self.paths)} images are unreadable (first: {self.skips.entries[0][0]})")
        self.indices = keep

    def preload(self) -> "FaceDataset":
        """Decode every image into the cache now (requires ``cache=True``)."""
        if self._cache is None:
            raise DataError("FaceDataset.preload() needs cache=True")
        for i in progress(self.indices, desc="cache images", unit="img"):
            if i not in self._cache:
                self._cache[i] = load_image(self.paths[i])
        return self

    def __len__(self) -> int:
        return len(self.indices)

    def image(self, k: int) -> np.ndarray:
        """The decoded uint8 image of dataset item ``k`` (before ``transform``)."""
        i = self.indices[k]
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        img = load_image(self.paths[i])
        if self._cache is not None:
            self._cache[i] = img
        return img

    def __getitem__(self, k: int) -> tuple[torch.Tensor, float, int]:
        i = self.indices[k]
        img = self.image(k)
        if self.transform is not None:
            img = self.transform(img)
        x = torch.from_numpy(self.preprocess.array(img))
        y = float(self.labels[i]) if self.labels is not None else math.nan
        return x, y, i


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give the dataset's transform (if it has ``reseed``) a per-worker stream."""
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    transform: Any = getattr(info.dataset, "transform", None)
    if hasattr(transform, "reseed"):
        transform.reseed(info.seed)


# ----------------------------------------------------------------------------- batches from paths


class _ImageList(torch.utils.data.Dataset):
    """Paths -> (preprocessed CHW float32 array or zeros, ok flag, index); bad images flagged, not raised."""

    def __init__(self, paths: Sequence[Path], preprocess: Preprocess, skip_bad: bool) -> None:
        self.paths, self.preprocess, self.skip_bad = list(paths), preprocess, skip_bad

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, bool, int]:
        try:
            return self.preprocess.array(load_image(self.paths[i])), True, i
        except BadImageError:
            if not self.skip_bad:
                raise
            h, w = self.preprocess.size
            shape = (h, w, 3) if self.preprocess.layout == "NHWC" else (3, h, w)
            return np.zeros(shape, np.float32), False, i


def _collate(items: list[tuple[np.ndarray, bool, int]]) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    return (torch.from_numpy(np.stack([it[0] for it in items])), np.array([it[1] for it in items]),
            np.array([it[2] for it in items]))


def iter_image_batches(paths: Sequence[str | Path], preprocess: Preprocess, *, batch_size: int = 64,
                       workers: int = 0, skip_bad: bool = False) -> Iterator[tuple[torch.Tensor, np.ndarray, np.ndarray]]:
    """Yield ``(x NCHW float32, ok mask, indices)`` batches in order; bad images have ``ok=False`` if ``skip_bad``.

    Example:
        >>> for x, ok, idx in iter_image_batches(paths, fr.preprocess, batch_size=32):  # doctest: +SKIP
        ...     emb = fr(x)
    """
    ds = _ImageList([Path(p) for p in paths], preprocess, skip_bad)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         collate_fn=_collate, persistent_workers=False)
    yield from loader
