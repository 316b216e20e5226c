"""The ``Backend`` protocol and the metadata sidecar every artifact carries.

A backend is one file in ``edgefiq/export/`` with one class (a ``BackendBase`` subclass)
registered in ``edgefiq.registry.BACKENDS``:

    name: str                       # "onnx", "openvino", "tflite", "torch"
    suffix: str                     # artifact suffix, e.g. ".onnx"
    precisions: tuple[str, ...]     # subset of ("fp32", "fp16", "int8")
    def available(self) -> bool     # its runtime importable (can score an artifact)?
    def can_export(self) -> bool    # its converter importable too (can write one)?
    def export(self, model, example, out, options) -> Exported   # the artifact + what int8 did
    def load(self, path, threads=None) -> Runner
    # optional (BackendBase defaults): packages, calibration_methods, auto_calibration,
    # supports_channels_last, export_cost, history_free, files(path), quantization_info(path),
    # gpu_unavailable_reason(), load_gpu(path)

``Runner(batch)`` takes a float32 NCHW batch preprocessed with the artifact's
``Preprocess`` (layout/int8 input quantisation are the runner's business) and returns
a 1-D float32 array of scores. Module-level imports here are torch-free so the device
runtime can use runners without torch.

The sidecar (``ArtifactMeta``, ``read_meta``, ``write_meta``) and ``load_runner`` live in the
torch-free runtime layer (``edgefiq.runtime.sidecar``) and are re-exported here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, runtime_checkable

import numpy as np

from edgefiq.errors import UsageError
from edgefiq.runtime.sidecar import (META_SUFFIX, ArtifactMeta, Runner, backend_for_path, load_runner, meta_path,
                                     read_meta, read_meta_or_none, write_meta)


@runtime_checkable
class Backend(Protocol):
    """One export target: converts a torch model and loads the result for scoring.

    Everything the rest of edgefiq asks of a backend is a member here (no getattr probing):
    the CLI's ``--target``/``--calibration-method`` choices, the parity gate, ``edgefiq bench``
    (CPU and GPU rows) and the run's report all go through it. :class:`BackendBase` gives the
    defaults, so a new backend is one class in one file plus its ``BACKENDS`` entry.
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    packages: tuple[str, ...]              # pip distributions it needs (``torch`` first if it exports)
    calibration_methods: tuple[str, ...]   # int8 activation-range methods; the first is the default
    auto_calibration: tuple[str, ...]      # methods ``calibration_method="auto"`` tries, in order
    supports_channels_last: bool           # NHWC model input
    export_cost: int                       # relative worker time of its export chain (costlier targets start first)
    history_free: bool                     # its files are the same whatever the process exported before, so its
                                           # exports may be split over worker processes

    def available(self) -> bool: ...

    def can_export(self) -> bool: ...

    def export(self, model: Any, example: Any, out: Path, options: "ExportOptions") -> "Exported": ...

    def load(self, path: Path, threads: int | None = None) -> Runner: ...

    def files(self, path: Path) -> list[Path]: ...

    def quantization_info(self, path: Path) -> dict[str, Any]: ...

    def gpu_unavailable_reason(self) -> str: ...

    def load_gpu(self, path: Path, threads: int | None = None) -> Runner: ...


class BackendBase:
    """Defaults of the optional :class:`Backend` members: no int8 calibration choices, NCHW only,
    one file per artifact, nothing to add to the sidecar's ``quantization``, no GPU path.

    Example:
        >>> class Toy(BackendBase):
        ...     name, suffix, precisions = "toy", ".toy", ("fp32",)
        >>> Toy().files(Path("m.toy")), Toy().gpu_unavailable_reason()
        ([PosixPath('m.toy')], 'no GPU path for toy in edgefiq bench')
    """

    name: str = ""
    suffix: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    packages: tuple[str, ...] = ()
    calibration_methods: tuple[str, ...] = ()
    auto_calibration: tuple[str, ...] = ()
    supports_channels_last: bool = False
    export_cost: int = 0
    history_free: bool = False   # unknown until shown: the export stage keeps its exports in one job

    def available(self) -> bool:
        """Whether the backend's runtime can be imported here: it can score an artifact."""
        return True

    def can_export(self) -> bool:
        """Whether the backend's converter can be imported here too: it can write an artifact."""
        return self.available()

    def export(self, model: Any, example: Any, out: Path, options: "ExportOptions") -> "Exported":
        """Convert ``model`` (traced with ``example``) to ``out``."""
        raise NotImplementedError(f"{self.name} backend cannot export")

    def load(self, path: Path, threads: int | None = None) -> Runner:
        """A runner scoring NCHW float32 batches with the artifact at ``path``."""
        raise NotImplementedError(f"{self.name} backend cannot load")

    def files(self, path: Path) -> list[Path]:
        """Every file that makes up the artifact ``path`` (sidecar excluded)."""
        return [Path(path)]

    def quantization_info(self, path: Path) -> dict[str, Any]:
        """What the sidecar's ``quantization`` records about ``path`` (e.g. input scale/zero-point)."""
        return {}

    def gpu_unavailable_reason(self) -> str:
        """Empty if ``edgefiq bench --device cuda`` can run this backend here, else why not."""
        return f"no GPU path for {self.name} in edgefiq bench"

    def load_gpu(self, path: Path, threads: int | None = None) -> Runner:
        """A runner on the GPU (call only when :meth:`gpu_unavailable_reason` is empty)."""
        raise NotImplementedError(self.gpu_unavailable_reason())


@dataclass(frozen=True)
class AdvancedExportOptions:
    """Rarely changed export settings (as NNCF's ``Advanced*Parameters``): read by backends, never written.

    Attributes:
        calibration_method: the int8 quantiser/ranges (None: the backend's first ``calibration_methods``).
        float_modules: torch module names left unquantised (mixed precision, ``edgefiq.export.mixed``).
        keep_head_float: the score head stays float in int8 artifacts.
        slim: onnx fp32 graphs simplified with onnxslim.
        source: openvino converts from ``torch`` or from the ``onnx`` export.
        overflow_fix: NNCF's overflow fix for OpenVINO int8 (``enable``, ``disable``, ``first_layer_only``).
        mode: torch backend, ``trace`` or ``script``.
        trial_cache: folder where onnxruntime keeps calibration ranges across trials of one export.
        float_units_hint: accuracy control starts its search at this many float blocks.
        calibration_method_hint: the calibration method that passed on another model for this target.

    Example:
        >>> AdvancedExportOptions(float_modules=("net.conv_stem",)).keep_head_float
        True
    """

    calibration_method: str | None = None
    float_modules: tuple[str, ...] = ()
    keep_head_float: bool = True
    slim: bool = True
    source: Literal["torch", "onnx"] = "torch"
    overflow_fix: str = "enable"
    mode: Literal["trace", "script"] = "trace"
    trial_cache: Path | None = None
    float_units_hint: int = 0
    calibration_method_hint: str | None = None


@dataclass(frozen=True)
class ExportOptions:
    """What an export asks of a backend. Rarely used settings live in ``advanced``."""

    precision: str = "fp32"
    calibration: np.ndarray | None = None   # float32 NCHW batch, preprocessed, for int8
    channels_last: bool = False              # NHWC I/O where the backend supports it
    opset: int = 17
    advanced: AdvancedExportOptions = field(default_factory=AdvancedExportOptions)

    def with_advanced(self, **changes: Any) -> ExportOptions:
        """A copy with some advanced settings changed."""
        return dataclasses.replace(self, advanced=dataclasses.replace(self.advanced, **changes))


@dataclass(frozen=True)
class Exported:
    """What ``Backend.export`` wrote: the artifact, and what its int8 quantiser did.

    ``quantization`` (empty for float exports) goes into the sidecar's ``quantization`` record,
    e.g. ``{"calibration": "percentile", "float_layers": [...]}``.
    """

    path: Path
    quantization: dict[str, Any] = field(default_factory=dict)


__all__ = ["META_SUFFIX", "ArtifactMeta", "Backend", "BackendBase", "ExportOptions", "Exported", "Runner", "ScoreFn", "artifact_files",
           "backend_for_path", "dequantize_array", "load_runner", "meta_path", "package_versions", "quantize_array",
           "read_meta", "read_meta_or_none", "silence_native_stderr", "to_layout", "write_meta"]

ScoreFn = Callable[[np.ndarray], np.ndarray]


# --- helpers shared by the backends (torch-free) -------------------------------------------

def to_layout(batch: np.ndarray, layout: str) -> np.ndarray:
    """Bring a float32 batch to the model's native ``layout`` (``NCHW`` or ``NHWC``).

    Runners accept the contract's NCHW batch; a batch already in the native layout (e.g.
    from ``meta.preprocess.batch`` of a channel-last artifact) passes through unchanged.

    Example:
        >>> to_layout(np.zeros((2, 3, 8, 8), np.float32), "NHWC").shape
        (2, 8, 8, 3)
    """
    x = np.asarray(batch, dtype=np.float32)
    if x.ndim != 4:
        raise UsageError(f"expected a 4-D image batch, got shape {x.shape}")
    if layout == "NHWC" and x.shape[1] == 3 and x.shape[3] != 3:
        x = x.transpose(0, 2, 3, 1)
    elif layout == "NCHW" and x.shape[3] == 3 and x.shape[1] != 3:
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def quantize_array(x: np.ndarray, scale: float, zero_point: int, dtype: Any) -> np.ndarray:
    """Affine-quantise float ``x`` to an integer ``dtype`` (``round(x / scale) + zero_point``, clipped)."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_array(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Inverse of :func:`quantize_array`: ``(q - zero_point) * scale`` as float32."""
    return ((np.asarray(q).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` (distribution names); missing ones are left out."""
    out: dict[str, str] = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def artifact_files(backend: Backend, path: str | Path) -> list[Path]:
    """Every file that makes up ``path`` for ``backend`` (e.g. OpenVINO ``.xml`` + ``.bin``), sidecar excluded."""
    return list(backend.files(Path(path)))


def silence_native_stderr() -> Any:
    """Context manager sending file descriptors 1 and 2 to /dev/null (converters' C++ logs, e.g.
    the legacy ONNX exporter's "Torch IR graph at exception" dump), unless EDGEFIQ_VERBOSE=1.

    Python exceptions are unaffected; the caller turns them into one-line errors.
    """
    @contextlib.contextmanager
    def _cm() -> Any:
        if os.environ.get("EDGEFIQ_VERBOSE") == "1":
            yield
            return
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = [os.dup(1), os.dup(2)]
        except (OSError, ValueError):  # no real fds (e.g. some embedded consoles)
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (*saved, devnull):
                os.close(fd)

    return _cm()
