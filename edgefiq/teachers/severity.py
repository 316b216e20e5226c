"""Severity teacher: quality = 1 - the known degradation severity of synthetically degraded images.

Reads the ``index.csv`` written by ``edgefiq.data.degrade.make_degraded_set``
(``path,source,kind,severity``; clean copies have severity 0). Self-supervised ranking
labels: no FR model involved, nothing to compute.

Example:
    >>> t = Severity(index="faces-degraded/index.csv")               # doctest: +SKIP
    >>> t.score_paths(["Alice/Alice_0001__noise_0.50.jpg"], root="faces-degraded")   # doctest: +SKIP
    array([0.5])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgefiq.errors import DataError
from edgefiq.registry import TEACHERS
from edgefiq.data.readers import read_severity_index
from edgefiq.teachers.base import Table, Teacher


@TEACHERS.register("severity")
class Severity(Teacher):
    """Quality = 1 - severity from a degraded set's index.

    Args:
        index: the ``index.csv``; default ``<images root>/index.csv``.
    """

    name = "severity"

    def __init__(self, index: str | Path | None = None) -> None:
        self.index = Path(index) if index else None
        self._table: dict[str, float] | None = None
        self._loaded_from: Path | None = None

    def _lookup(self, root: Path) -> dict[str, float]:
        index = self.index or root / "index.csv"
        if self._table is None or self._loaded_from != index:
            self._table, self._loaded_from = read_severity_index(index), index
        return self._table

    def score_table(self, root: Path, relpaths: Sequence[str], *, on_bad_image: str = "error") -> Table:
        table = self._lookup(root)
        missing = [r for r in relpaths if r not in table]
        if missing:
            raise DataError(f"{self._loaded_from}: no severity for {missing[0]!r}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                            + "; label the folder the index was written for")
        return {"quality": np.array([1.0 - table[r] for r in relpaths], np.float64)}

    def config(self) -> dict[str, Any]:
        return {"teacher": self.name, "index": str(self.index) if self.index else "<images root>/index.csv",
                "quality": "1 - severity"}
