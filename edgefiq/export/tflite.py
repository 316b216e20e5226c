"""TFLite backend: litert-torch conversion (no TensorFlow), ai-edge-litert runtime.

Precisions:

* ``fp32``: ``litert_torch.convert(model, (example,))``.
* ``fp16``: fp16 weights (ai-edge-quantizer's fp16 recipe, ``quant_recipes.full_fp16_recipe``),
  float32 compute and I/O.
* ``int8``: PT2E static quantisation (``PT2EQuantizer`` with the symmetric per-channel config),
  calibrated on the calibration set: by default through NNCF's ``quantize_pt2e`` (its range
  estimation and fast bias correction; the 1-output score head and softmax-like ops stay
  float), or plain PT2E with histogram observers (``advanced.calibration_method =
  "pt2e-histogram"``). The model takes int8 input and returns int8 output (float32 when the
  head stays float); the scales/zero-points are stored in the sidecar and the runner
  (de)quantises, so callers still pass float32 and get float32 scores.

``channels_last`` wraps the model with ``litert_torch.to_channel_last_io`` (NHWC input,
the layout most mobile camera pipelines produce). The artifact has a fixed batch of 1;
the runner loops over a batch. Module-level imports are torch-free.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.console import native_output_captured
from edgefiq.errors import BackendUnavailableError, DataError, UsageError
from edgefiq.export.base import (BackendBase, Exported, ExportOptions, dequantize_array, quantize_array,
                                 read_meta_or_none, to_layout)
from edgefiq.registry import BACKENDS

_PIP = "pip install litert-torch ai-edge-litert ai-edge-quantizer"


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailableError(f"tflite backend needs {', '.join(missing)}: `{_PIP}`")


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence litert-torch's progress log and the quantizer's prints (unless --verbose)."""
    if os.environ.get("EDGEFIQ_VERBOSE") == "1":
        yield
        return
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")

    previous = logging.root.manager.disable
    logging.disable(logging.INFO)   # "Use JAX lowering: ..." and jax backend notices
    try:   # C++ INFO lines and torch's glog-style warnings go straight to file descriptor 2
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), native_output_captured():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _head_modules(graph_module: Any) -> list[str]:
    """Qualified name of the module that runs the graph's last ``linear`` (the 1-output score head)."""
    linears = [n for n in graph_module.graph.nodes if n.op == "call_function" and "linear" in str(n.target)]
    if not linears:
        return []
    stack = linears[-1].meta.get("nn_module_stack") or {}
    return [list(stack.values())[-1][0]] if stack else []


def _quantizer(float_modules: list[str], *, fixed_qparams: bool = True) -> Any:
    """litert-torch's PT2E quantizer (int8 symmetric per-channel weights, affine int8 activations)
    that leaves the ops of ``float_modules`` unannotated, so they stay float in the TFLite graph.

    ``fixed_qparams=False`` also leaves sigmoid/softmax-like ops (fixed 1/256 output scale) in
    float: NNCF's ``quantize_pt2e`` does not accept fixed-qparams specs.
    """
    # heavy (litert-torch): lazy, so importing edgefiq.export stays cheap and torch-free
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.pt2e_quantizer_utils import OP_TO_ANNOTATOR

    class Quantizer(pq.PT2EQuantizer):
        def _annotate_for_static_quantization_config(self, model: Any) -> Any:
            def quantize_node(node: Any) -> bool:
                names = [v[0] for v in (node.meta.get("nn_module_stack") or {}).values()]
                return not any(n == f or n.startswith(f + ".") for n in names for f in float_modules)

            for op in self.STATIC_OPS:
                if fixed_qparams or op != "fixed_qparams":
                    OP_TO_ANNOTATOR[op](model, self.global_config, quantize_node)
            return model

    return Quantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))


def _pt2e_int8(module: Any, example: Any, calibration: np.ndarray, channels_last: bool, *, method: str = "nncf",
               float_modules: tuple[str, ...] = (), report: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """PT2E-quantise ``module`` (already channel-last wrapped if asked); returns (module, quant_config).

    ``nncf``: NNCF's ``quantize_pt2e`` with the litert-torch quantizer (NNCF's activation range
    estimation and fast bias correction) and the score head kept in float. ``pt2e-histogram``:
    plain ``prepare_pt2e``/``convert_pt2e`` with histogram observers on every op.
    ``float_modules``: torch module names left unquantised (mixed precision).
    """
    # heavy (torch, litert-torch, torchao, nncf): lazy, so importing edgefiq.export stays cheap and torch-free
    import torch
    from litert_torch.quantize import quant_config as qc
    from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

    layout = (lambda x: x.transpose(0, 2, 3, 1)) if channels_last else (lambda x: x)
    batches = [torch.from_numpy(np.ascontiguousarray(layout(calibration[i:i + 1]))) for i in range(len(calibration))]
    graph = torch.export.export(module, (example,)).module()
    if method == "nncf":
        import nncf
        from nncf.experimental.torch.fx import quantize_pt2e as nncf_quantize_pt2e

        nncf.set_log_level(logging.ERROR)
        head = _head_modules(graph) + list(float_modules)
        quantizer = _quantizer(head, fixed_qparams=False)
        converted = nncf_quantize_pt2e(graph, quantizer, nncf.Dataset(batches), subset_size=len(batches),
                                       fold_quantize=False)
        if report is not None:
            report.update(quantizer="nncf+litert-pt2e", float_layers=head)
    elif method == "pt2e-histogram":
        quantizer = _quantizer(list(float_modules))
        prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for x in batches:
                prepared(x)
        converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        if report is not None:
            report.update(quantizer="litert-pt2e", float_layers=list(float_modules))
    else:
        raise UsageError(f"tflite int8: unknown calibration method {method!r}")
    return _eval_flags(move_exported_model_to_eval(converted)), qc.QuantConfig(pt2e_quantizer=quantizer)


def _eval_flags(graph_module: Any) -> Any:
    """Set ``training=False`` on an exported graph whose ops ``move_exported_model_to_eval`` made eval.

    Exported graphs refuse ``.eval()`` and keep ``training=True``, so litert-torch warned "Your
    model is converted in training mode" although batch norm uses running statistics and
    dropout is off in the graph (tests/test_console.py checks the ops). The flag now says so too.
    """
    for m in graph_module.modules():
        m.training = False
    return graph_module


@BACKENDS.register("tflite")
class TfliteBackend(BackendBase):
    """TFLite via litert-torch: fp32, fp16 weights, int8 PT2E (int8 I/O), optional NHWC input."""

    name = "tflite"
    suffix = ".tflite"
    precisions = ("fp32", "fp16", "int8")
    packages = ("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "nncf")
    calibration_methods = ("nncf", "pt2e-histogram")   # first = default
    # tried in order by calibration_method="auto". pt2e-histogram first: on the face_trunk students of the LFW
    # recipes (0.998-0.999 vs nncf's 0.989-0.991) and the quickstart's (0.998 vs 0.932) it ranks the calibration
    # images closer to fp32 and ends auto in one trial (nncf's cost about 30 s on the quickstart). The LFW
    # MobileNetV3-Small is the opposite case (plain histogram observers 0.17, README "Export"): it pays one
    # extra trial and keeps nncf, as before.
    auto_calibration = ("pt2e-histogram", "nncf")
    supports_channels_last = True
    # each int8 trial is a litert-torch conversion: the costliest chain (quickstart on 2 cores, worker time:
    # TFLite 137 s, OpenVINO 87 s, onnxruntime 72 s before pt2e-histogram went first)
    export_cost = 3
    history_free = True   # byte-identical files with 1 or 2 export workers (tests/test_pipeline_e2e.py)

    def available(self) -> bool:
        return importlib.util.find_spec("ai_edge_litert") is not None

    def can_export(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "litert_torch", "ai_edge_litert"))

    def export(self, model: Any, example: Any, out: Path, options: ExportOptions) -> Exported:
        """Convert ``model`` to ``out`` in ``options.precision``."""
        _require("litert_torch", "ai_edge_litert")
        report: dict[str, Any] = {}
        with _quiet():
            # heavy (litert-torch, torch): lazy, so importing edgefiq.export stays cheap and torch-free
            import litert_torch
            import torch

            module = model.eval()
            if options.channels_last:
                module = litert_torch.to_channel_last_io(module, args=[0]).eval()
                example = example.permute(0, 2, 3, 1).contiguous()
            quant = None
            if options.precision == "fp16":
                _require("ai_edge_quantizer")
                from litert_torch.generative.quantize import quant_recipes

                quant = quant_recipes.full_fp16_recipe()
            elif options.precision == "int8":
                if options.calibration is None:
                    raise UsageError("tflite int8 needs calibration images (--calibration DIR)")
                module, quant = _pt2e_int8(module, example, options.calibration, options.channels_last,
                                           method=options.advanced.calibration_method or self.calibration_methods[0],
                                           float_modules=options.advanced.float_modules,
                                           report=report)
            elif options.precision != "fp32":
                raise UsageError(f"tflite: unsupported precision {options.precision!r}")
            with torch.no_grad():
                edge = litert_torch.convert(module, (example,), quant_config=quant)
            edge.export(str(out))
        return Exported(Path(out), report)

    def quantization_info(self, path: Path) -> dict[str, Any]:
        """Input/output dtype, scale and zero-point as the interpreter reports them."""
        # heavy (ai-edge-litert): lazy, so importing edgefiq.export stays cheap and torch-free
        from ai_edge_litert.interpreter import Interpreter

        with native_output_captured(also_stdout=False):
            it = Interpreter(model_path=str(path))
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        return {"io_dtype": np.dtype(i["dtype"]).name,
                "input": {"dtype": np.dtype(i["dtype"]).name, "scale": float(i["quantization"][0]),
                          "zero_point": int(i["quantization"][1]), "shape": [int(s) for s in i["shape"]]},
                "output": {"dtype": np.dtype(o["dtype"]).name, "scale": float(o["quantization"][0]),
                           "zero_point": int(o["quantization"][1])}}

    def load(self, path: Path, threads: int | None = None) -> "TfliteRunner":
        return TfliteRunner(Path(path), threads)


class TfliteRunner:
    """Scores float32 NCHW batches with the LiteRT interpreter, (de)quantising int8 I/O."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            # heavy (ai-edge-litert): lazy, so importing edgefiq.export stays cheap and torch-free
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise BackendUnavailableError("tflite runner needs ai-edge-litert: `pip install ai-edge-litert`") from None

        with native_output_captured(also_stdout=False):   # "INFO: Created TensorFlow Lite XNNPACK delegate"
            self.interpreter = Interpreter(model_path=str(path), num_threads=int(threads) if threads else None)
            self.interpreter.allocate_tensors()
        i, o = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self._in, self._out = i["index"], o["index"]
        self.in_dtype, self.out_dtype = np.dtype(i["dtype"]), np.dtype(o["dtype"])
        self.in_q = tuple(i["quantization"])
        self.out_q = tuple(o["quantization"])
        meta = read_meta_or_none(path)
        self.layout = "NHWC" if int(i["shape"][-1]) == 3 and int(i["shape"][1]) != 3 else "NCHW"
        if meta is not None:
            q = meta.quantization.get("input") or {}
            if q and (q.get("dtype") != self.in_dtype.name or not np.isclose(q.get("scale", 0.0), self.in_q[0])):
                raise DataError(f"{path}: sidecar quantisation {q} does not match the model's input {i['quantization']}")
            if meta.preprocess.layout != self.layout:
                raise DataError(f"{path}: sidecar layout {meta.preprocess.layout} but the model takes {self.layout}")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = to_layout(batch, self.layout)
        if self.in_dtype.kind in "iu":
            x = quantize_array(x, self.in_q[0], self.in_q[1], self.in_dtype)
        out = np.empty(len(x), np.float32)
        for k in range(len(x)):   # fixed batch of 1 (XNNPACK cannot reshape the flattened head)
            self.interpreter.set_tensor(self._in, x[k:k + 1])
            self.interpreter.invoke()
            y = self.interpreter.get_tensor(self._out).reshape(-1)[:1]
            out[k] = dequantize_array(y, *self.out_q)[0] if self.out_dtype.kind in "iu" else y[0]
        return out
