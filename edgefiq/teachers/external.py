"""Bring-your-own teachers: a scalar-output model (``model``) or labels you already have (``csv``).

``model`` runs an ONNX file (onnxruntime; preprocessing from its ``<file>.json`` sidecar,
e.g. an ``edgefiq export`` artifact, else ImageNet-normalised 112x112 RGB), a TorchScript
file, or an edgefiq checkpoint. ``csv`` reads a ``path,<column>`` CSV (paths relative to
the images root).

Example:
    >>> ModelTeacher("quality.onnx").score_paths(["a.jpg"])            # doctest: +SKIP
    >>> CsvTeacher("old_labels.csv").score_paths(["a.jpg"], root=".")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from edgefiq.data.dataset import iter_image_batches
from edgefiq.data.images import check_on_bad_image
from edgefiq.data.preprocess import Preprocess
from edgefiq.data.readers import read_label_map
from edgefiq.errors import DataError, UsageError
from edgefiq.models.checkpoint import load_checkpoint
from edgefiq.models.fr import OnnxFR
from edgefiq.registry import TEACHERS
from edgefiq.runtime.sidecar import read_preprocess
from edgefiq.teachers.base import Table, Teacher
from edgefiq.utils import sha256_file


def load_scalar_model(path: Path, device: str = "cpu") -> tuple[torch.nn.Module, Any]:
    """``(module, preprocess)`` for an ONNX, TorchScript or edgefiq-checkpoint quality model."""
    if not path.is_file():
        raise DataError(f"quality model not found: {path}")
    if path.suffix.lower() == ".onnx":
        m = OnnxFR(path)
        return m, m.preprocess

    try:
        m = torch.jit.load(str(path), map_location=device)
        return m.eval(), read_preprocess(path) or Preprocess()
    except (RuntimeError, ValueError):
        pass
    try:
        ck = load_checkpoint(path)
        return ck.model.to(device).eval(), ck.preprocess or Preprocess()
    except Exception as e:  # noqa: BLE001 - report the file, not the traceback
        raise DataError(f"{path}: not an ONNX, TorchScript or edgefiq checkpoint model ({str(e)[:120]})") from None


@TEACHERS.register("model")
class ModelTeacher(Teacher):
    """Quality = the output of a user's scalar model (one number per image).

    Args:
        model: ``.onnx``, TorchScript ``.pt``/``.ts``, or an edgefiq checkpoint.
    """

    name = "model"

    def __init__(self, model: str | Path | None = None, *, batch_size: int = 64, device: str = "cpu", workers: int = 0) -> None:
        if not model:
            raise UsageError("teacher 'model' needs --model (an ONNX or TorchScript scalar quality model)")
        self.path, self.batch_size, self.device, self.workers = Path(model), int(batch_size), device, int(workers)
        self._model: Any = None

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            self._model = load_scalar_model(self.path, self.device)
        return self._model

    @torch.no_grad()
    def score_table(self, root: Path, relpaths: Sequence[str], *, on_bad_image: str = "error") -> Table:
        model, pp = self._load()
        q = np.full(len(relpaths), np.nan)
        skip = check_on_bad_image(on_bad_image) == "skip"
        for x, ok, idx in iter_image_batches([root / r for r in relpaths], pp, batch_size=self.batch_size,
                                             workers=self.workers, skip_bad=skip):
            s = self._scalar(model(x.to(self.device)), x.shape[0])
            s[~ok] = np.nan
            q[idx] = s
        return {"quality": q}

    def _scalar(self, y: Any, n: int) -> np.ndarray:
        y = (y[0] if isinstance(y, (tuple, list)) else y).float().reshape(n, -1).cpu().numpy()
        if y.shape[1] != 1:
            raise DataError(f"{self.path}: the model outputs {y.shape[1]} values per image; a quality model outputs 1")
        return y[:, 0].astype(np.float64)

    @torch.no_grad()
    def score_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of in-memory uint8 HWC RGB images, e.g. the augmented views of online distillation.

        Example:
            >>> ModelTeacher("quality.onnx").score_images([np.zeros((112, 112, 3), np.uint8)])   # doctest: +SKIP
            array([0.42])
        """
        model, pp = self._load()
        chunks = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        out = [self._scalar(model(torch.from_numpy(pp.batch(c)).to(self.device)), len(c)) for c in chunks]
        return np.concatenate(out) if out else np.zeros(0)

    def config(self) -> dict[str, Any]:
        _, pp = self._load()
        return {"teacher": self.name, "model": str(self.path), "sha256": sha256_file(self.path),
                "preprocess": pp.to_dict(), "batch_size": self.batch_size, "device": self.device}


class ModuleTeacher(ModelTeacher):
    """An in-memory torch scalar model as a teacher (not registered: built by code, e.g. pruning
    recovery, where the unpruned model scores every augmented view of the pruned one).

    Example:
        >>> t = ModuleTeacher(dense_model, Preprocess(size=(112, 112)))   # doctest: +SKIP
        >>> t.score_images(views)                                          # doctest: +SKIP
    """

    name = "module"

    def __init__(self, module: torch.nn.Module, preprocess: Any, *, description: str = "in-memory model",
                 batch_size: int = 64, device: str = "cpu") -> None:
        self.path, self.batch_size, self.device, self.workers = Path(description), int(batch_size), device, 0
        self._model = (module.to(device).eval(), preprocess)

    def config(self) -> dict[str, Any]:
        return {"teacher": self.name, "model": str(self.path), "preprocess": self._model[1].to_dict(),
                "batch_size": self.batch_size, "device": self.device}


@TEACHERS.register("csv")
class CsvTeacher(Teacher):
    """Quality = a column of a CSV the user already has (``path`` relative to the images root).

    Args:
        csv: the CSV file.
        column: the score column (default ``quality``).
    """

    name = "csv"

    def __init__(self, csv: str | Path | None = None, column: str = "quality") -> None:  # noqa: A002 - CLI option name
        if not csv:
            raise UsageError("teacher 'csv' needs --csv (a CSV with path and quality columns)")
        self.path, self.column = Path(csv), column
        self._table: dict[str, float] | None = None

    def _read(self) -> dict[str, float]:
        if self._table is None:
            self._table = read_label_map(self.path, column=self.column)
        return self._table

    def score_table(self, root: Path, relpaths: Sequence[str], *, on_bad_image: str = "error") -> Table:
        table = self._read()
        missing = [r for r in relpaths if r not in table]
        if missing:
            raise DataError(f"{self.path}: no label for {missing[0]!r}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return {"quality": np.array([table[r] for r in relpaths], np.float64)}

    def config(self) -> dict[str, Any]:
        return {"teacher": self.name, "csv": str(self.path), "column": self.column,
                "sha256": sha256_file(self.path) if self.path.is_file() else None}
