"""ONNX backend: one self-contained opset-17 ``.onnx`` file with a dynamic batch axis.

Export uses the legacy TorchScript-based exporter (``dynamo=False``): the dynamo exporter
forces opset 18 and external weight files. Precisions:

* ``fp32``: the exported graph, optionally simplified with onnxslim (``advanced.slim``,
  on by default when onnxslim is installed).
* ``fp16``: weights and activations in float16 with float32 inputs/outputs
  (``onnxruntime.transformers.float16``, ``keep_io_types=True``).
* ``int8``: static quantisation in QDQ format (int8 weights per channel, uint8 activations), run
  by onnxruntime, with the final 1-output Gemm/MatMul (the score head) kept in float.
  ``advanced.calibration_method`` picks how activation ranges are set:

  - ``mean-minmax`` (default): onnxruntime ``quantize_static`` with the moving average of each
    calibration image's min/max (``CalibMovingAverage``), so a few images with outlier
    activations do not stretch a tensor's range.
  - ``minmax``, ``entropy``, ``percentile``: ``quantize_static``'s global min/max, entropy or
    percentile calibration.
  - ``nncf``: NNCF's post-training quantisation of the ONNX graph (its own quantiser placement
    and fast bias correction). It passes the gate too, but its placement leaves many Conv
    outputs unquantised, so onnxruntime cannot fuse them into QLinearConv: ~4x slower than fp32.

  On the distilled MobileNetV3-Small (``results/export.md``) global min/max gives SRCC vs fp32
  0.38: a few channels with large activations on a few images set the per-tensor ranges while
  the score lives in the small ones; ``mean-minmax`` with the float head gives 0.997. The
  quickstart's synthetic student is the opposite case, hence ``auto`` (``edgefiq.export.autocal``),
  which tries ``auto_calibration`` in order and keeps the best.

Module-level imports are torch-free: the runner only needs onnxruntime.
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
from edgefiq.export.base import BackendBase, Exported, ExportOptions, read_meta_or_none, silence_native_stderr, to_layout
from edgefiq.export.mixed import as_scoped, in_units, scope_module
from edgefiq.registry import BACKENDS

CALIBRATION_METHODS = ("mean-minmax", "minmax", "entropy", "percentile", "nncf")
_PIP = "pip install onnx onnxruntime"


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailableError(f"onnx backend needs {', '.join(missing)}: `{_PIP}`")


def export_onnx_fp32(model: Any, example: Any, out: Path, *, opset: int = 17, slim: bool = True,
                     input_name: str = "input", output_name: str = "quality") -> Path:
    """Export ``model`` to a single-file ONNX graph with a dynamic batch axis.

    Example:
        >>> export_onnx_fp32(model, torch.zeros(1, 3, 112, 112), Path("m.onnx"))   # doctest: +SKIP
    """
    # heavy (torch, onnx, onnxslim): lazy, so importing edgefiq.export stays cheap and torch-free
    import torch

    _require("onnx")
    with warnings.catch_warnings(), torch.no_grad(), silence_native_stderr():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), str(out), dynamo=False, opset_version=opset,
                          input_names=[input_name], output_names=[output_name], do_constant_folding=True,
                          dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
    if slim and importlib.util.find_spec("onnxslim") is not None:
        import onnx
        import onnxslim

        slimmed = onnxslim.slim(onnx.load(str(out)))
        if slimmed is not None:
            onnx.save(slimmed, str(out))
    return out


class _CalibrationReader:
    """Feeds a preprocessed float32 NCHW array to onnxruntime's calibrators in small batches."""

    def __init__(self, data: np.ndarray, input_name: str, batch: int = 16) -> None:
        self._chunks = [data[i:i + batch] for i in range(0, len(data), batch)]
        self._name = input_name
        self._it = iter(self._chunks)

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._it, None)
        return None if chunk is None else {self._name: np.ascontiguousarray(chunk, np.float32)}

    def rewind(self) -> None:
        self._it = iter(self._chunks)


def _nodes_in_modules(graph: Any, modules: Any) -> list[str]:
    """Names of the nodes that belong to the torch ``modules`` (prefixes), for ``nodes_to_exclude``.

    Nodes the exporter named after their module scope are matched by name; nodes without a scope
    (onnxruntime's pre-processing inlines HardSwish into ``_inlfunc_*`` nodes) inherit the module
    of the node producing their first input.
    """
    if not modules:
        return []
    producer = {o: n for n in graph.node for o in n.output}
    owner: dict[str, str] = {}
    for n in graph.node:
        mod = scope_module(n.name)
        if not mod and n.input and n.input[0] in producer:
            mod = owner.get(producer[n.input[0]].name, "")
        owner[n.name] = mod
    modules = as_scoped(list(modules), set(owner.values()))
    return [n.name for n in graph.node if in_units(owner[n.name], modules)]


def _score_head(graph: Any, keep_head_float: bool) -> list[str]:
    """Name of the graph's last Gemm/MatMul (the 1-output score head) if it stays float, else nothing."""
    return [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")][-1:] if keep_head_float else []


def quantize_onnx_nncf(src: Path, out: Path, calibration: np.ndarray, *, input_name: str = "input",
                       keep_head_float: bool = True, float_modules: tuple[str, ...] = (),
                       report: dict[str, Any] | None = None) -> Path:
    """NNCF int8 QDQ quantisation of ``src`` into ``out``; the result runs on onnxruntime.

    Example:
        >>> quantize_onnx_nncf(Path("m.onnx"), Path("m_int8.onnx"), calib)   # doctest: +SKIP
    """
    # heavy (nncf, onnx): lazy, so importing edgefiq.export stays cheap and torch-free
    import nncf
    import onnx
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    nncf.set_log_level(logging.ERROR)
    model = onnx.load(str(src))
    head = _score_head(model.graph, keep_head_float) + _nodes_in_modules(model.graph, float_modules)
    dataset = nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))], lambda x: {input_name: x})

    with native_output_captured():   # NNCF's progress bars (shown with -v)
        q = nncf.quantize(model, dataset, subset_size=len(calibration),
                          ignored_scope=nncf.IgnoredScope(names=head) if head else None,
                          advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE))
    onnx.save(q, str(out))
    if report is not None:
        report.update(quantizer="nncf", float_layers=head)
    return out


def quantize_onnx_int8(src: Path, out: Path, calibration: np.ndarray, *, method: str = "mean-minmax",
                       input_name: str = "input", keep_head_float: bool = True, float_modules: tuple[str, ...] = (),
                       report: dict[str, Any] | None = None, cache_dir: Path | None = None) -> Path:
    """Static QDQ int8 quantisation of ``src`` into ``out`` (per-channel weights).

    ``method`` is ``nncf`` (NNCF's quantiser) or an onnxruntime calibration method for
    ``quantize_static``: ``mean-minmax``, ``minmax``, ``entropy``, ``percentile``.
    ``cache_dir``: onnxruntime keeps the calibration ranges of ``method`` there and reuses them
    (trials of one export that differ only in the blocks kept float; the ranges do not depend on them).

    Example:
        >>> quantize_onnx_int8(Path("m.onnx"), Path("m_int8.onnx"), calib, method="entropy")   # doctest: +SKIP
    """
    if method == "nncf":
        _require("nncf")
        return quantize_onnx_nncf(src, out, calibration, input_name=input_name, keep_head_float=keep_head_float,
                                  float_modules=float_modules, report=report)
    # heavy (onnx, onnxruntime): lazy, so importing edgefiq.export stays cheap and torch-free
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"mean-minmax": CalibrationMethod.MinMax, "minmax": CalibrationMethod.MinMax,
               "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise UsageError(f"unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}")

    class Reader(_CalibrationReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".ortq-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre)).graph
        head = _score_head(graph, keep_head_float) + _nodes_in_modules(graph, float_modules)
        # one image per batch: the moving average then runs over per-image ranges, and the
        # histogram calibrators need equal batch sizes to stack their arrays
        batch = 16 if method == "minmax" else 1

        with native_output_captured():   # the histogram calibrators print their progress (shown with -v)
            quantize_static(str(pre), str(out), Reader(calibration, input_name, batch),
                            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=methods[method], nodes_to_exclude=head,
                            extra_options={"CalibTensorRangeSymmetric": False,
                                           "CalibMovingAverage": method == "mean-minmax"},
                            calibration_cache_path=Path(cache_dir) / f"ort-{method}.json" if cache_dir else None)
    if report is not None:
        report.update(quantizer="onnxruntime", float_layers=head)
    return out


@BACKENDS.register("onnx")
class OnnxBackend(BackendBase):
    """ONNX + onnxruntime: fp32, fp16 (fp32 I/O) and int8 (static QDQ)."""

    name = "onnx"
    suffix = ".onnx"
    precisions = ("fp32", "fp16", "int8")
    packages = ("torch", "onnx", "onnxslim", "onnxruntime")
    calibration_methods = CALIBRATION_METHODS   # first = default
    auto_calibration = ("mean-minmax", "minmax", "percentile")   # tried in order by calibration_method="auto"
    export_cost = 1
    history_free = True   # byte-identical files with 1 or 2 export workers (tests/test_pipeline_e2e.py)

    def available(self) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def can_export(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "onnx", "onnxruntime"))

    def export(self, model: Any, example: Any, out: Path, options: ExportOptions) -> Exported:
        """Write ``out`` in ``options.precision`` (int8 needs ``options.calibration``)."""
        _require("onnx", "onnxruntime")
        out = Path(out)
        slim = options.advanced.slim
        if options.precision == "fp32":
            return Exported(export_onnx_fp32(model, example, out, opset=options.opset, slim=slim))
        report: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".onnx-") as tmp:
            fp32 = export_onnx_fp32(model, example, Path(tmp) / "fp32.onnx", opset=options.opset, slim=slim)
            if options.precision == "fp16":
                # heavy (onnx, onnxruntime): lazy, so importing edgefiq.export stays cheap and torch-free
                import onnx
                from onnxruntime.transformers.float16 import convert_float_to_float16

                m16 = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
                onnx.save(m16, str(out))
            elif options.precision == "int8":
                if options.calibration is None:
                    raise UsageError("onnx int8 needs calibration images (--calibration DIR)")
                quantize_onnx_int8(fp32, out, options.calibration,
                                   method=options.advanced.calibration_method or CALIBRATION_METHODS[0],
                                   keep_head_float=options.advanced.keep_head_float,
                                   float_modules=options.advanced.float_modules,
                                   report=report, cache_dir=options.advanced.trial_cache)
            else:
                raise UsageError(f"onnx: unsupported precision {options.precision!r}")
        return Exported(out, report)

    def files(self, path: Path) -> list[Path]:
        """The graph and, when its weights are stored externally (the dynamo exporter, large models), the
        external data file next to it (``model.onnx.data``, ``model.onnx_data`` or ``model.data``)."""
        p = Path(path)
        external = [p.with_name(p.name + ".data"), p.with_name(p.stem + ".onnx_data"), p.with_suffix(".data")]
        return [p, *(e for e in dict.fromkeys(external) if e.is_file())]

    def quantization_info(self, path: Path) -> dict[str, Any]:
        """ONNX keeps float32 I/O at every precision; nothing for the caller to quantise."""
        return {"io_dtype": "float32"}

    def load(self, path: Path, threads: int | None = None) -> "OnnxRunner":
        return OnnxRunner(Path(path), threads)

    def gpu_unavailable_reason(self) -> str:
        """Empty when onnxruntime has its CUDA execution provider here."""
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime not installed"
        # heavy (onnxruntime): lazy, so importing edgefiq.export stays cheap and torch-free
        import onnxruntime as ort

        ok = "CUDAExecutionProvider" in ort.get_available_providers()
        return "" if ok else "onnxruntime CUDAExecutionProvider not available (no GPU build / no GPU)"

    def load_gpu(self, path: Path, threads: int | None = None) -> Any:
        """An onnxruntime CUDA session as a runner (NCHW float32 in, scores out)."""
        # heavy (onnxruntime): lazy, so importing edgefiq.export stays cheap and torch-free
        import onnxruntime as ort

        meta = read_meta_or_none(path)
        layout = meta.preprocess.layout if meta else "NCHW"
        sess = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def run(x: np.ndarray) -> np.ndarray:
            return np.asarray(sess.run(None, {name: to_layout(x, layout)})[0], np.float32).reshape(len(x), -1)[:, 0]

        return run


class OnnxRunner:
    """Scores float32 NCHW batches with onnxruntime (CPU)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            # heavy (onnxruntime): lazy, so importing edgefiq.export stays cheap and torch-free
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError(f"onnx runner needs onnxruntime: `{_PIP}`") from None
        meta = read_meta_or_none(path)
        self.layout = meta.preprocess.layout if meta else "NCHW"
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        # Busy-wait spinning of idle intra-op threads competes with any other process for the cores
        # (2-thread p50 varied by up to 2x between identical runs on a 2-core host); block instead.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: to_layout(batch, self.layout)})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(batch), -1)[:, 0]

