"""OpenVINO backend: IR (``.xml`` + ``.bin``) with a dynamic batch axis.

Conversion goes through ``openvino.convert_model`` from the torch model (default) or from
the ONNX export (``advanced["source"] = "onnx"``). Precisions:

* ``fp32``: full-precision weights (``save_model(..., compress_to_fp16=False)``).
* ``fp16``: fp16-compressed weights, decompressed at load time; compute stays fp32 on CPU.
* ``int8``: NNCF post-training quantisation (``nncf.quantize``) on the calibration set;
  with ``advanced["accuracy_control"] = MAX_DROP``, NNCF's accuracy-aware quantisation
  (``nncf.quantize_with_accuracy_control``) keeps the SRCC against the fp32 model on the
  validation set within ``MAX_DROP`` by reverting the most harmful layers to float.

The runner compiles for CPU with ``INFERENCE_PRECISION_HINT=f32`` so fp32 artifacts match
torch to float rounding. Module-level imports are torch-free.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.errors import BackendUnavailableError, UsageError
from edgefiq.export.base import ExportOptions, read_meta_or_none, to_layout
from edgefiq.registry import BACKENDS

_PIP = "pip install openvino nncf"


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailableError(f"openvino backend needs {', '.join(missing)}: `{_PIP}`")


def _convert(model: Any, example: Any, options: ExportOptions, workdir: Path) -> Any:
    """torch model -> ``openvino.Model`` with input shape ``[-1, 3, H, W]``."""
    import warnings

    import openvino as ov
    import torch

    shape = ov.PartialShape([-1, *example.shape[1:]])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if options.advanced.get("source", "torch") == "onnx":
            from edgefiq.export.onnx import export_onnx_fp32

            src = export_onnx_fp32(model, example, workdir / "src.onnx", opset=options.opset)
            return ov.convert_model(str(src), input=[shape])
        return ov.convert_model(model.eval(), example_input=example, input=[shape])


def _srcc_vs(reference: np.ndarray):  # noqa: ANN202 - returns an NNCF validation_fn
    """NNCF validation function: SRCC of the candidate model's scores against the fp32 ``reference``."""
    from edgefiq.metrics import srcc

    def validate(compiled: Any, items: Any) -> tuple[float, list[float]]:
        idx, scores = [], []
        for i, x in items:
            idx.append(i)
            scores.append(float(np.asarray(compiled(x)[0]).reshape(-1)[0]))
        ref, got = reference[np.asarray(idx)], np.asarray(scores)
        # metric mode: SRCC for the set, -|error| per item so NNCF can rank the most damaged items
        return float(srcc(got, ref)) if len(got) > 2 else 1.0, (-np.abs(got - ref)).tolist()

    return validate


def quantize_openvino_int8(ov_model: Any, options: ExportOptions) -> Any:
    """NNCF int8 quantisation (optionally accuracy-controlled) of an ``openvino.Model``."""
    import logging

    import nncf

    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    nncf.set_log_level(logging.ERROR)
    calib = options.calibration
    if calib is None:
        raise UsageError("openvino int8 needs calibration images (--calibration DIR)")
    cal_ds = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    # u8 x s8 products saturate int16 on CPUs without VNNI (AVX2): 7-bit weights everywhere avoid it.
    overflow_fix = str(options.advanced.get("overflow_fix", "enable"))
    adv = AdvancedQuantizationParameters(overflow_fix=OverflowFix(overflow_fix))
    # The 1-output regression head is tiny and sets the score's resolution: keep it in float.
    head = [op.get_friendly_name() for op in ov_model.get_ordered_ops() if op.get_type_name() == "MatMul"][-1:]
    if not options.advanced.get("keep_head_float", True):
        head = []
    ignored = nncf.IgnoredScope(names=head) if head else None
    report = options.advanced.setdefault("quantization_report", {})
    report.update(overflow_fix=overflow_fix, float_layers=head)
    max_drop = options.advanced.get("accuracy_control")
    if max_drop is None:
        return nncf.quantize(ov_model, cal_ds, subset_size=len(calib), ignored_scope=ignored, advanced_parameters=adv)
    val = options.advanced["validation"]
    ref = np.asarray(options.advanced["validation_reference"], np.float64)
    val_ds = nncf.Dataset([(i, val[i:i + 1]) for i in range(len(val))], lambda item: item[1])
    q = nncf.quantize_with_accuracy_control(ov_model, cal_ds, val_ds, _srcc_vs(ref), max_drop=float(max_drop),
                                            drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib),
                                            ignored_scope=ignored, advanced_quantization_parameters=adv)
    report["accuracy_control_max_drop"] = float(max_drop)
    return q


@BACKENDS.register("openvino")
class OpenVinoBackend:
    """OpenVINO IR: fp32, fp16 weight compression, int8 via NNCF (optionally accuracy-controlled)."""

    name = "openvino"
    suffix = ".xml"
    precisions = ("fp32", "fp16", "int8")
    packages = ("torch", "openvino", "nncf")
    calibration_methods = ("nncf",)   # first = default
    supports_accuracy_control = True

    def available(self) -> bool:
        return importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("nncf") is not None

    def files(self, path: Path) -> list[Path]:
        """The IR is two files: ``model.xml`` (graph) and ``model.bin`` (weights)."""
        return [Path(path).with_suffix(".bin"), Path(path)]

    def export(self, model: Any, example: Any, out: Path, options: ExportOptions) -> Path:
        """Write ``out`` (``.xml``) and its ``.bin`` in ``options.precision``."""
        _require("openvino", *(["nncf"] if options.precision == "int8" else []))
        import openvino as ov

        out = Path(out)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".ov-") as tmp:
            ov_model = _convert(model, example, options, Path(tmp))
            if options.precision == "int8":
                ov_model = quantize_openvino_int8(ov_model, options)
            elif options.precision not in ("fp32", "fp16"):
                raise UsageError(f"openvino: unsupported precision {options.precision!r}")
            ov.save_model(ov_model, str(out), compress_to_fp16=options.precision == "fp16")
        return out

    def quantization_info(self, path: Path) -> dict[str, Any]:
        return {"io_dtype": "float32"}

    def load(self, path: Path, threads: int | None = None) -> "OpenVinoRunner":
        return OpenVinoRunner(Path(path), threads)


class OpenVinoRunner:
    """Scores float32 NCHW batches with the OpenVINO CPU plugin."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise BackendUnavailableError("openvino runner needs openvino: `pip install openvino`") from None
        meta = read_meta_or_none(path)
        self.layout = meta.preprocess.layout if meta else "NCHW"
        # CPU pinning stays at OpenVINO's default: turning it off did not make two identical runs agree
        # better on a 2-core host (tools/bench_latency.py: 17 of 24 p50 rows within 15% without pinning,
        # 10 and 19 of 24 in two runs with it; the disagreements are host noise, not the pinning).
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: to_layout(batch, self.layout)})
        return np.asarray(next(iter(out.values())), dtype=np.float32).reshape(len(batch), -1)[:, 0]
