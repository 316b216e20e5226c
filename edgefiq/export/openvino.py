"""OpenVINO backend: IR (``.xml`` + ``.bin``) with a dynamic batch axis.

Conversion goes through ``openvino.convert_model`` from the torch model (default) or from
the ONNX export (``advanced.source = "onnx"``). Precisions:

* ``fp32``: full-precision weights (``save_model(..., compress_to_fp16=False)``).
* ``fp16``: fp16-compressed weights, decompressed at load time; compute stays fp32 on CPU.
* ``int8``: NNCF post-training quantisation (``nncf.quantize``) on the calibration set, with
  the score head and any ``advanced.float_modules`` (mixed precision chosen by
  ``edgefiq.export.mixed`` under ``--accuracy-control``) kept in float. Calibration methods:
  ``nncf`` (NNCF's defaults: symmetric activations), ``nncf-minmax`` (global min/max ranges),
  ``nncf-asym`` / ``nncf-asym-minmax`` (the same with asymmetric activations, NNCF's "mixed"
  preset); ``auto`` (``edgefiq.export.autocal``) tries ``auto_calibration`` in order.

The runner compiles for CPU with ``INFERENCE_PRECISION_HINT=f32`` so fp32 artifacts match
torch to float rounding. Module-level imports are torch-free.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.console import native_output_captured
from edgefiq.errors import BackendUnavailableError, UsageError
from edgefiq.export.base import BackendBase, Exported, ExportOptions, read_meta_or_none, to_layout
from edgefiq.export.mixed import as_scoped, in_units, scope_module
from edgefiq.export.onnx import export_onnx_fp32
from edgefiq.registry import BACKENDS

_PIP = "pip install openvino nncf"
# calibration method -> (NNCF preset, activation range estimator; None = NNCF's default ranges).
# The "mixed" preset quantises activations asymmetrically (OpenVINO's advice for non-ReLU
# activations such as hard-swish); "performance" symmetrically.
CALIBRATION_METHODS: dict[str, tuple[str, str | None]] = {
    "nncf": ("performance", None), "nncf-minmax": ("performance", "MINMAX"),
    "nncf-asym": ("mixed", None), "nncf-asym-minmax": ("mixed", "MINMAX")}


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailableError(f"openvino backend needs {', '.join(missing)}: `{_PIP}`")


def _convert(model: Any, example: Any, options: ExportOptions, workdir: Path) -> Any:
    """torch model -> ``openvino.Model`` with input shape ``[-1, 3, H, W]``."""
    # heavy (openvino, torch): lazy, so importing edgefiq.export stays cheap and torch-free
    import openvino as ov
    import torch

    shape = ov.PartialShape([-1, *example.shape[1:]])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if options.advanced.source == "onnx":
            src = export_onnx_fp32(model, example, workdir / "src.onnx", opset=options.opset)
            return ov.convert_model(str(src), input=[shape])
        return ov.convert_model(model.eval(), example_input=example, input=[shape])


def quantize_openvino_int8(ov_model: Any, options: ExportOptions) -> tuple[Any, dict[str, Any]]:
    """NNCF int8 quantisation of an ``openvino.Model`` (``advanced.float_modules`` stay float).

    Returns ``(quantised model, report)``: the settings used and the layers kept float.
    """
    # heavy (nncf): lazy, so importing edgefiq.export stays cheap and torch-free
    import nncf

    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    nncf.set_log_level(logging.ERROR)
    calib = options.calibration
    if calib is None:
        raise UsageError("openvino int8 needs calibration images (--calibration DIR)")
    cal_ds = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    # u8 x s8 products saturate int16 on CPUs without VNNI (AVX2): 7-bit weights everywhere avoid it.
    overflow_fix = options.advanced.overflow_fix
    method = options.advanced.calibration_method or "nncf"
    if method not in CALIBRATION_METHODS:
        raise UsageError(f"openvino: unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}")
    preset, estimator = CALIBRATION_METHODS[method]
    kw = {}
    if estimator:
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        kw["activations_range_estimator_params"] = getattr(RangeEstimatorParametersSet, estimator)
    adv = AdvancedQuantizationParameters(overflow_fix=OverflowFix(overflow_fix), **kw)
    # The 1-output regression head is tiny and sets the score's resolution: keep it in float.
    head = [op.get_friendly_name() for op in ov_model.get_ordered_ops() if op.get_type_name() == "MatMul"][-1:]
    if not options.advanced.keep_head_float:
        head = []
    float_modules = options.advanced.float_modules
    if float_modules:   # mixed precision (edgefiq.export.mixed): ops named after these torch modules
        def module_of(op: Any) -> str:
            # ops renamed by conversion (a conv with its BatchNorm fused is "Multiply_123") belong to
            # the module of the op that consumes them (that BatchNorm's Add)
            mod = scope_module(op.get_friendly_name())
            consumers = [i.get_node() for o in op.outputs() for i in o.get_target_inputs()]
            return mod or next((m for m in (scope_module(c.get_friendly_name()) for c in consumers) if m), "")

        ops = [op for op in ov_model.get_ordered_ops() if op.get_type_name() not in ("Constant", "Parameter", "Result")]
        float_modules = tuple(as_scoped(float_modules, {module_of(op) for op in ops}))
        head = head + [op.get_friendly_name() for op in ops if in_units(module_of(op), float_modules)]
    ignored = nncf.IgnoredScope(names=head, validate=False) if head else None
    report = {"overflow_fix": overflow_fix, "float_layers": head, "preset": preset,
              "activation_ranges": estimator or "nncf default"}

    with native_output_captured():   # NNCF's progress bars (shown with -v)
        return nncf.quantize(ov_model, cal_ds, subset_size=len(calib), ignored_scope=ignored,
                             advanced_parameters=adv, preset=nncf.QuantizationPreset(preset)), report


@BACKENDS.register("openvino")
class OpenVinoBackend(BackendBase):
    """OpenVINO IR: fp32, fp16 weight compression, int8 via NNCF."""

    name = "openvino"
    suffix = ".xml"
    precisions = ("fp32", "fp16", "int8")
    packages = ("torch", "openvino", "nncf")
    calibration_methods = tuple(CALIBRATION_METHODS)   # first = default
    auto_calibration = ("nncf", "nncf-asym-minmax", "nncf-asym")   # tried in order by calibration_method="auto"
    export_cost = 2
    # not history-free: OpenVINO names graph nodes from a process-wide counter, so the same export after
    # another one in the process writes other bytes; the export stage keeps its exports in one job, in one order

    def available(self) -> bool:
        return importlib.util.find_spec("openvino") is not None

    def can_export(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "openvino", "nncf"))

    def files(self, path: Path) -> list[Path]:
        """The IR is two files: ``model.xml`` (graph) and ``model.bin`` (weights)."""
        return [Path(path).with_suffix(".bin"), Path(path)]

    def export(self, model: Any, example: Any, out: Path, options: ExportOptions) -> Exported:
        """Write ``out`` (``.xml``) and its ``.bin`` in ``options.precision``."""
        _require("openvino", *(["nncf"] if options.precision == "int8" else []))
        # heavy (openvino): lazy, so importing edgefiq.export stays cheap and torch-free
        import openvino as ov

        out = Path(out)
        report: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".ov-") as tmp:
            ov_model = _convert(model, example, options, Path(tmp))
            if options.precision == "int8":
                ov_model, report = quantize_openvino_int8(ov_model, options)
            elif options.precision not in ("fp32", "fp16"):
                raise UsageError(f"openvino: unsupported precision {options.precision!r}")
            ov.save_model(ov_model, str(out), compress_to_fp16=options.precision == "fp16")
        return Exported(out, report)

    def quantization_info(self, path: Path) -> dict[str, Any]:
        return {"io_dtype": "float32"}

    def load(self, path: Path, threads: int | None = None) -> "OpenVinoRunner":
        return OpenVinoRunner(Path(path), threads)

    def gpu_unavailable_reason(self) -> str:
        """Empty when OpenVINO reports a GPU device here."""
        if importlib.util.find_spec("openvino") is None:
            return "openvino not installed"
        # heavy (openvino): lazy, so importing edgefiq.export stays cheap and torch-free
        import openvino as ov

        ok = any(d.startswith("GPU") for d in ov.Core().available_devices)
        return "" if ok else "OpenVINO reports no GPU device"

    def load_gpu(self, path: Path, threads: int | None = None) -> Any:
        """The IR compiled for OpenVINO's GPU plugin as a runner (NCHW float32 in, scores out)."""
        # heavy (openvino): lazy, so importing edgefiq.export stays cheap and torch-free
        import openvino as ov

        meta = read_meta_or_none(path)
        layout = meta.preprocess.layout if meta else "NCHW"
        compiled = ov.Core().compile_model(str(path), "GPU")

        def run(x: np.ndarray) -> np.ndarray:
            out = compiled(to_layout(x, layout))[compiled.output(0)]
            return np.asarray(out, np.float32).reshape(len(x), -1)[:, 0]

        return run


class OpenVinoRunner:
    """Scores float32 NCHW batches with the OpenVINO CPU plugin."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            # heavy (openvino): lazy, so importing edgefiq.export stays cheap and torch-free
            import openvino as ov
        except ImportError:
            raise BackendUnavailableError("openvino runner needs openvino: `pip install openvino`") from None
        meta = read_meta_or_none(path)
        self.layout = meta.preprocess.layout if meta else "NCHW"
        # CPU pinning stays at OpenVINO's default: turning it off did not make two identical runs agree
        # better on a 2-core host (results/bench.md: 17 of 24 p50 rows within 15% without pinning,
        # 10 and 19 of 24 in two runs with it; the disagreements are host noise, not the pinning).
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: to_layout(batch, self.layout)})
        return np.asarray(next(iter(out.values())), dtype=np.float32).reshape(len(batch), -1)[:, 0]
