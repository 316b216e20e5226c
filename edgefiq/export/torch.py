"""Torch backend: a TorchScript reference artifact (``.torchscript``), fp32 only.

Useful as the reference runner on machines with torch (servers, benchmarks): the same
numbers as the eager model, with no Python class needed to load it. ``advanced["mode"]``
chooses ``trace`` (default) or ``script``. Module-level imports are torch-free; the runner
imports torch when it loads an artifact.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.errors import BackendUnavailableError, UsageError
from edgefiq.export.base import BackendBase, Exported, ExportOptions, read_meta_or_none, to_layout
from edgefiq.registry import BACKENDS

_PIP = "pip install torch"


@BACKENDS.register("torch")
class TorchBackend(BackendBase):
    """TorchScript (trace or script) of the eager model; scores with torch on CPU."""

    name = "torch"
    suffix = ".torchscript"
    precisions = ("fp32",)
    packages = ("torch",)
    calibration_methods = ()   # first = default

    def available(self) -> bool:
        return importlib.util.find_spec("torch") is not None

    def export(self, model: Any, example: Any, out: Path, options: ExportOptions) -> Exported:
        """Trace (or script) ``model`` and save it to ``out``."""
        # heavy (torch): lazy, so importing edgefiq.export stays cheap and torch-free
        import torch

        if options.precision != "fp32":
            raise UsageError(f"torch backend exports fp32 only, not {options.precision}")
        mode = options.advanced.mode
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if mode == "script":
                ts = torch.jit.script(model.eval())
            else:
                ts = torch.jit.trace(model.eval(), example, check_trace=False)
            ts = torch.jit.freeze(ts.eval())
            torch.jit.save(ts, str(out))
        return Exported(Path(out))

    def quantization_info(self, path: Path) -> dict[str, Any]:
        return {"io_dtype": "float32"}

    def load(self, path: Path, threads: int | None = None) -> "TorchRunner":
        return TorchRunner(Path(path), threads)

    def gpu_unavailable_reason(self) -> str:
        """Empty when torch sees a CUDA GPU here."""
        if importlib.util.find_spec("torch") is None:
            return "torch not installed"
        # heavy (torch): lazy, so importing edgefiq.export stays cheap and torch-free
        import torch

        return "" if torch.cuda.is_available() else "torch.cuda.is_available() is False (no CUDA GPU)"

    def load_gpu(self, path: Path, threads: int | None = None) -> Any:
        """The TorchScript module on CUDA as a runner (NCHW float32 in, scores out)."""
        # heavy (torch): lazy, so importing edgefiq.export stays cheap and torch-free
        import torch

        meta = read_meta_or_none(path)
        layout = meta.preprocess.layout if meta else "NCHW"
        mod = torch.jit.load(str(path), map_location="cuda").eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                y = mod(torch.from_numpy(to_layout(x, layout)).cuda())
                torch.cuda.synchronize()
            return y.float().reshape(len(x), -1)[:, 0].cpu().numpy()

        return run


class TorchRunner:
    """Scores float32 NCHW batches with a TorchScript module."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            # heavy (torch): lazy, so importing edgefiq.export stays cheap and torch-free
            import torch
        except ImportError:
            raise BackendUnavailableError(f"torch runner needs torch: `{_PIP}`") from None
        if threads:
            torch.set_num_threads(int(threads))

        self._torch = torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.module(torch.from_numpy(to_layout(batch, "NCHW")))
        return out.detach().float().numpy().reshape(len(batch), -1)[:, 0]
