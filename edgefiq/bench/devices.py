"""GPU devices for ``edgefiq bench --device cuda``: availability checks and GPU runners.

Each backend says whether it has a GPU path here and loads an artifact onto it
(``Backend.gpu_unavailable_reason`` / ``Backend.load_gpu``; onnxruntime's
``CUDAExecutionProvider``, OpenVINO's ``GPU`` device, torch CUDA for TorchScript). A backend
without one, or an unavailable one, reports ``unavailable`` with the reason (never a made-up
number). An edgefiq ``.pt`` checkpoint runs on the GPU through torch.

Example:
    >>> gpu_unavailable_reason("tflite")
    'no GPU path for tflite in edgefiq bench'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefiq.registry import BACKENDS
from edgefiq.runtime.model import QualityModel
from edgefiq.runtime.sidecar import read_meta


def gpu_unavailable_reason(backend: str) -> str:
    """Empty string if ``backend`` (a registered backend name, or ``checkpoint``) can run on a GPU here, else why not."""
    name = "torch" if backend == "checkpoint" else backend
    if name not in BACKENDS:
        return f"no GPU path for {backend} in edgefiq bench"
    try:
        return BACKENDS.get(name)().gpu_unavailable_reason()
    except Exception as e:  # a broken driver stack (or an unknown backend) is also "unavailable"
        return f"GPU check failed: {type(e).__name__}: {e}"


def load_gpu_model(path: str | Path, threads: int | None = None) -> Any:
    """Load an artifact on the GPU as a ``QualityModel`` (call only when available)."""
    p = Path(path)
    meta = read_meta(p)
    run = BACKENDS.get(meta.backend)().load_gpu(p, threads)
    return QualityModel(path=p, backend=meta.backend, precision=meta.precision, preprocess=meta.preprocess,
                        runner=run, meta=meta.to_dict())
