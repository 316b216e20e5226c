"""Small shared helpers: atomic writes, hashing, JSON, progress bars.

Torch-free; safe to import from the device runtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` only if the block succeeds.

    Example:
        >>> with atomic_path("model.onnx") as tmp:   # doctest: +SKIP
        ...     torch.onnx.export(model, x, tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600; give the result the usual umask-based mode
            umask = os.umask(0)
            os.umask(umask)
            tmp_path.chmod(0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically (numpy scalars and Paths allowed)."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` hook: numpy scalars/arrays and paths as plain JSON values."""
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Lay out a matplotlib figure, write it as PNG atomically, close it and return the path."""
    import matplotlib.pyplot as plt  # heavy optional ([train]): lazy so importing edgefiq.utils does not load it

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def progress(iterable: Any = None, *, total: int | None = None, desc: str = "", unit: str = "img") -> Any:
    """A tqdm-style progress bar on stderr (rich), silent when stderr is not a terminal or EDGEFIQ_QUIET=1.

    Usage: ``for batch in progress(loader, total=n, desc="label"): ...``; call ``.update(k)``
    on the returned object when iterating manually (``progress(total=n)``).
    """
    return _Progress(iterable, total=total, desc=desc, unit=unit)


class _Progress:
    def __init__(self, iterable: Any, *, total: int | None, desc: str, unit: str) -> None:
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.unit = desc, unit
        enabled = os.environ.get("EDGEFIQ_QUIET") != "1" and (sys.stderr.isatty() or os.environ.get("EDGEFIQ_PROGRESS") == "1")
        self._bar = None
        if enabled:
            # rich.progress takes ~0.1 s to import: only when a bar is shown (edgefiq --help stays fast)
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 _SpeedColumn(unit), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 transient=False, console=_stderr_console())
            self._task = self._bar.add_task(desc, total=self.total)
            self._bar.start()

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _stderr_console() -> Any:
    from rich.console import Console  # slow import (rich): only when a progress bar is shown

    return Console(stderr=True)


def _speed_column_cls() -> Any:
    # slow import (rich): only when a progress bar is shown
    from rich.progress import ProgressColumn
    from rich.text import Text

    class SpeedColumn(ProgressColumn):
        def __init__(self, unit: str) -> None:
            super().__init__()
            self.unit = unit

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:7.1f} {self.unit}/s" if speed else f"    ? {self.unit}/s")

    return SpeedColumn


def _SpeedColumn(unit: str) -> Any:  # noqa: N802 - factory keeps rich import lazy
    return _speed_column_cls()(unit)
