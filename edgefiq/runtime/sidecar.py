"""The artifact sidecar (``<artifact>.json``) and loading any artifact with its backend's runner.

Torch-free: numpy and the standard library only. ``load_runner`` finds the backend that
made a file (from its sidecar, else its suffix) in ``edgefiq.registry.BACKENDS``; the
registry imports ``edgefiq.export`` by name on first lookup, so the runtime does not depend
on the export package (and each backend's heavy runtime is imported inside ``load``).

Example:
    >>> meta_path("model.onnx").name
    'model.onnx.json'
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edgefiq import __version__
from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import DataError, EdgefiqError, UsageError
from edgefiq.registry import BACKENDS
from edgefiq.utils import write_json

log = logging.getLogger(__name__)

META_SUFFIX = ".json"


@runtime_checkable
class Runner(Protocol):
    """Scores a preprocessed NCHW float32 batch: ``runner(x) -> np.ndarray[N]``."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass
class ArtifactMeta:
    """Contents of ``<artifact>.json``: everything a runner needs plus provenance."""

    backend: str
    precision: str
    preprocess: Preprocess
    arch: str = ""
    input_name: str = "input"
    output_name: str = "quality"
    pruning: dict[str, Any] | None = None
    source_sha256: str = ""
    parity: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)  # e.g. input scale/zero-point
    versions: dict[str, str] = field(default_factory=dict)
    edgefiq_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The sidecar as plain JSON data."""
        d = dict(self.__dict__)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtifactMeta":
        """Read a sidecar dict; unknown keys are kept in ``extra``."""
        d = dict(d)
        d["preprocess"] = Preprocess.from_dict(d.get("preprocess", {}))
        known = set(cls.__dataclass_fields__)
        extra = {k: v for k, v in d.items() if k not in known}
        meta = cls(**{k: v for k, v in d.items() if k in known})
        meta.extra.update(extra)
        return meta


def meta_path(artifact: str | Path) -> Path:
    """Sidecar path: ``model.onnx`` -> ``model.onnx.json``."""
    p = Path(artifact)
    return p.with_name(p.name + META_SUFFIX)


def write_meta(artifact: str | Path, meta: ArtifactMeta) -> Path:
    """Write the sidecar next to ``artifact`` atomically."""
    return write_json(meta_path(artifact), meta.to_dict())


def read_meta(artifact: str | Path) -> ArtifactMeta:
    """Read the sidecar of ``artifact``.

    Raises:
        DataError: the sidecar is missing or unreadable (with the expected path).
    """
    mp = meta_path(artifact)
    if not mp.is_file():
        raise DataError(f"{artifact}: metadata sidecar {mp.name} not found; re-export with `edgefiq export`")
    try:
        return ArtifactMeta.from_dict(json.loads(mp.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise DataError(f"{mp}: unreadable metadata ({e})") from None


def read_meta_or_none(artifact: str | Path) -> ArtifactMeta | None:
    """The sidecar of ``artifact`` if it exists (runners fall back to defaults without one)."""
    return read_meta(artifact) if meta_path(artifact).is_file() else None


def read_preprocess(artifact: str | Path) -> Preprocess | None:
    """The ``preprocess`` entry of ``artifact``'s sidecar, or None (no sidecar, or an unreadable one: logged).

    For files that may carry a foreign or partial sidecar (e.g. a user's ONNX FR model).

    Example:
        >>> read_preprocess("no-such-model.onnx") is None
        True
    """
    side = meta_path(artifact)
    if side.is_file():
        try:
            d = json.loads(side.read_text())
            if isinstance(d.get("preprocess"), dict):
                return Preprocess.from_dict(d["preprocess"])
        except (ValueError, TypeError):
            log.warning("%s: ignoring unreadable sidecar", side)
    return None


def backend_for_path(path: str | Path) -> str:
    """Name of the backend that produced ``path``, from its sidecar, else from its suffix."""
    p = Path(path)
    if p.suffix == ".json":   # a sidecar (or report) passed instead of its artifact
        art = p.with_name(p.name[: -len(".json")])
        hint = f"the sidecar of {art}: pass {art} itself" if art.is_file() else "a JSON file, not a model artifact"
        raise UsageError(f"{p} is {hint}")
    if meta_path(p).is_file():
        return read_meta(p).backend
    for name in BACKENDS.names():
        if p.name.endswith(BACKENDS.get(name).suffix):
            return name
    raise UsageError(f"{p}: cannot tell which backend made this file (no sidecar, unknown suffix)")


def load_runner(path: str | Path, threads: int | None = None) -> tuple[Runner, ArtifactMeta]:
    """Load any artifact with the right backend. Returns ``(runner, meta)``.

    Example:
        >>> run, meta = load_runner("out/student.onnx", threads=1)   # doctest: +SKIP
        >>> scores = run(meta.preprocess.batch(images))               # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: artifact not found")
    name = backend_for_path(p)
    backend = BACKENDS.get(name)()
    try:
        runner = backend.load(p, threads)
    except EdgefiqError:
        raise
    except Exception as e:  # a corrupt or foreign file: the runtime's own traceback helps nobody
        reason = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
        raise DataError(f"{p}: not a loadable {name} model ({reason}); re-export it with `edgefiq export`") from None
    return runner, read_meta(p)
