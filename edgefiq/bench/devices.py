"""GPU devices for ``edgefiq bench --device cuda``: availability checks and GPU runners.

Rows are produced only where the backend's GPU path exists on this host: onnxruntime's
``CUDAExecutionProvider``, OpenVINO's ``GPU`` device, torch CUDA for TorchScript
artifacts. Anything else reports ``unavailable`` with the reason (never a made-up number).
TFLite has no GPU path here.

Example:
    >>> gpu_unavailable_reason("tflite")
    'no GPU path for tflite in edgefiq bench'
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np


def gpu_unavailable_reason(backend: str) -> str:
    """Empty string if ``backend`` can run on a GPU here, else why not."""
    try:
        if backend == "onnx":
            if importlib.util.find_spec("onnxruntime") is None:
                return "onnxruntime not installed"
            import onnxruntime as ort

            ok = "CUDAExecutionProvider" in ort.get_available_providers()
            return "" if ok else "onnxruntime CUDAExecutionProvider not available (no GPU build / no GPU)"
        if backend == "openvino":
            if importlib.util.find_spec("openvino") is None:
                return "openvino not installed"
            import openvino as ov

            ok = any(d.startswith("GPU") for d in ov.Core().available_devices)
            return "" if ok else "OpenVINO reports no GPU device"
        if backend in ("torch", "checkpoint"):
            if importlib.util.find_spec("torch") is None:
                return "torch not installed"
            import torch

            return "" if torch.cuda.is_available() else "torch.cuda.is_available() is False (no CUDA GPU)"
    except Exception as e:  # a broken driver stack is also "unavailable"
        return f"GPU check failed: {type(e).__name__}: {e}"
    return f"no GPU path for {backend} in edgefiq bench"


def load_gpu_model(path: str | Path, threads: int | None = None) -> Any:
    """Load an artifact on the GPU as a ``QualityModel`` (call only when available)."""
    from edgefiq.export.base import read_meta, to_layout
    from edgefiq.runtime.model import QualityModel

    p = Path(path)
    meta = read_meta(p)
    layout = meta.preprocess.layout
    if meta.backend == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(p), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def run(x: np.ndarray) -> np.ndarray:
            return np.asarray(sess.run(None, {name: to_layout(x, layout)})[0], np.float32).reshape(len(x), -1)[:, 0]
    elif meta.backend == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(p), "GPU")

        def run(x: np.ndarray) -> np.ndarray:
            out = compiled(to_layout(x, layout))[compiled.output(0)]
            return np.asarray(out, np.float32).reshape(len(x), -1)[:, 0]
    elif meta.backend == "torch":
        import torch

        mod = torch.jit.load(str(p), map_location="cuda").eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                y = mod(torch.from_numpy(to_layout(x, layout)).cuda())
                torch.cuda.synchronize()
            return y.float().reshape(len(x), -1)[:, 0].cpu().numpy()
    else:
        raise ValueError(f"no GPU runner for backend {meta.backend}")
    return QualityModel(path=p, backend=meta.backend, precision=meta.precision, preprocess=meta.preprocess,
                        runner=run, meta=meta.to_dict())
