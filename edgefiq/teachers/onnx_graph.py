"""ONNX face recognition graphs for the teachers, without torch: batchable, pruned and split copies, a batched runner.

* ``make_batchable``: graphs exported with a fixed batch (the shared ``MobileFaceNet.onnx`` has
  ``Reshape(x, [1, -1])``) get a symbolic batch dimension; ``batchable_graph`` keeps the fixed
  copy (fed one image per call) when a batch of two does not reproduce two single calls.
* ``prune_graph``: PreFIQs' unstructured pruning (``l1`` magnitude or seeded ``random``,
  ``global``, per ``layer`` or per output ``channel``) of the weight initializers of ``Conv``,
  ``Gemm`` and ``MatMul`` nodes. The embedding layer (the last such node) and anything a
  normalisation node reads are left intact. Exported graphs usually have BatchNorm folded into
  the convolutions, so the magnitudes ranked here are those of the folded weights; folding
  rescales whole output channels, so only the ``channel`` and ``normalized`` scopes prune the
  same weights as the unfolded PyTorch model.
* ``split_at_head``: the graph cut at the embedding layer's input (SER-FIQ applies dropout there).
* ``OrtRunner`` (onnxruntime, float32) and ``OvBf16Runner`` (OpenVINO, bfloat16 compute):
  ``runner(x NCHW float32) -> [N, D]``, any batch size.

Derived graphs are cached as files named by the source's hash (``cached_graph``).

Example:
    >>> g = read_graph("MobileFaceNet.onnx")                       # doctest: +SKIP
    >>> make_batchable(g); prune_graph(g, rho=0.4, method="l1")     # doctest: +SKIP
    >>> OrtRunner(g)(np.zeros((8, 3, 112, 112), np.float32)).shape  # doctest: +SKIP
    (8, 128)
"""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgefiq.errors import BackendUnavailableError, DataError, UsageError
from edgefiq.utils import atomic_path

log = logging.getLogger(__name__)

PRUNABLE_OPS = ("Conv", "Gemm", "MatMul")
NORM_OPS = ("BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
            "LpNormalization", "MeanVarianceNormalization", "RMSNormalization")
SCOPES = ("global", "layer", "channel", "normalized")  # as edgefiq.prune.api.SCOPES (torch-free here)
GRAPH_VERSION = "g1"  # part of every cached file name: bump when the derivation changes


def _onnx() -> Any:
    try:
        import onnx  # heavy: onnx takes ~1.5 s to import; only when a graph is read or edited
    except ImportError:  # pragma: no cover - onnx is a dependency
        raise BackendUnavailableError("the onnx package is not installed: pip install onnx") from None
    return onnx


def graph_sha256(path: str | Path) -> str:
    """SHA-256 of an ONNX file together with its external-data files (their names and bytes).

    Example:
        >>> len(graph_sha256("MobileFaceNet.onnx"))   # doctest: +SKIP
        64
    """
    p = Path(path)
    h = hashlib.sha256(p.read_bytes())
    for extra in sorted(p.parent.glob(p.name + ".data")) + sorted(p.parent.glob(p.stem + ".data")):
        h.update(extra.name.encode())
        h.update(extra.read_bytes())
    return h.hexdigest()


def read_graph(path: str | Path) -> Any:
    """Load an ONNX model (with its external data) as a ``ModelProto``; unreadable -> one-line DataError.

    Example:
        >>> g = read_graph("MobileFaceNet.onnx")   # doctest: +SKIP
    """
    onnx = _onnx()
    try:
        return onnx.load(str(path), load_external_data=True)
    except Exception as e:  # noqa: BLE001 - any parse failure is a data problem
        raise DataError(f"{path}: cannot read as ONNX ({str(e).splitlines()[0][:160]})") from None


def _constant_array(graph: Any, name: str) -> tuple[Any, np.ndarray] | None:
    """``(holder, value)`` of a tensor defined by an initializer or a Constant node, else None."""
    from onnx import numpy_helper  # heavy: onnx, as in _onnx

    for init in graph.initializer:
        if init.name == name:
            return init, numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for a in node.attribute:
                if a.name == "value":
                    return a.t, numpy_helper.to_array(a.t)
    return None


def make_batchable(model: Any) -> bool:
    """Give a fixed-batch graph a symbolic batch dimension in place; True if anything changed.

    Reshape targets whose first entry equals the fixed batch become ``0`` (copy the input's
    batch dimension); intermediate shape annotations are dropped. Check the result with
    ``batchable_graph`` (a graph that mixes the batch into other axes cannot be fixed this way).

    Example:
        >>> make_batchable(read_graph("MobileFaceNet.onnx"))   # doctest: +SKIP
        True
    """
    from onnx import numpy_helper  # heavy: onnx, as in _onnx

    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [v for v in g.input if v.name not in inits]
    dim0 = inputs[0].type.tensor_type.shape.dim[0] if inputs and inputs[0].type.tensor_type.shape.dim else None
    if dim0 is None or not dim0.HasField("dim_value"):
        return False
    batch = int(dim0.dim_value)
    for node in g.node:
        if node.op_type != "Reshape" or any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
            continue
        found = _constant_array(g, node.input[1])
        if found is not None and found[1].size and int(found[1].flat[0]) == batch:
            holder, arr = found
            arr = arr.copy()
            arr.flat[0] = 0
            holder.CopyFrom(numpy_helper.from_array(arr, holder.name))
    for v in [*inputs, *g.output]:
        dims = v.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == batch:
            dims[0].dim_param = "N"
    del g.value_info[:]
    return True


def prunable_weights(model: Any) -> list[str]:
    """Names of the weight initializers PreFIQs prunes, in graph order (the embedding layer excluded).

    Example:
        >>> len(prunable_weights(read_graph("MobileFaceNet.onnx")))   # doctest: +SKIP
        50
    """
    g = model.graph
    init_dims = {i.name: len(i.dims) for i in g.initializer}
    normed = {x for n in g.node if n.op_type in NORM_OPS for x in n.input}
    layers: list[list[str]] = []
    for n in g.node:
        if n.op_type not in PRUNABLE_OPS:
            continue
        cand = [n.input[1]] if n.op_type in ("Conv", "Gemm") else list(n.input[:2])
        names = [c for c in cand if init_dims.get(c, 0) >= 2 and c not in normed]
        if names:
            layers.append(names)
    out: list[str] = []
    for names in layers[:-1]:  # the last one computes the embedding: left dense, as in edgefiq.prune
        out += [x for x in names if x not in out]
    return out


def output_axes(model: Any) -> dict[str, int]:
    """``{weight name: axis of its output channels}`` for the weights ``prunable_weights`` returns.

    Conv weights are ``[out, in/groups, k...]`` (axis 0); a Gemm's B is ``[out, in]`` with
    ``transB=1`` and ``[in, out]`` otherwise; a MatMul's B is ``[..., in, out]`` (last axis) and
    its A ``[out, in]`` (axis 0).
    """
    axes: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type == "Conv":
            axes.setdefault(n.input[1], 0)
        elif n.op_type == "Gemm":
            trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
            axes.setdefault(n.input[1], 0 if trans_b else 1)
        elif n.op_type == "MatMul":
            axes.setdefault(n.input[0], 0)
            axes.setdefault(n.input[1], -1)
    return axes


def prune_graph(model: Any, *, rho: float, method: str = "l1", scope: str = "global", seed: int = 0) -> dict[str, Any]:
    """Zero exactly ``round(rho * n)`` prunable weights in place (per layer with ``scope="layer"``,
    per output channel with ``scope="channel"``).

    Raises:
        UsageError: ``structured`` (channel removal needs the PyTorch model), bad rho/scope,
            or a graph without prunable weights.

    Example:
        >>> info = prune_graph(g, rho=0.4, method="l1")   # doctest: +SKIP
        >>> round(info["sparsity"], 2)                    # doctest: +SKIP
        0.4
    """
    from onnx import numpy_helper  # heavy: onnx, as in _onnx

    if method == "structured":
        raise UsageError("structured PreFIQs pruning needs a PyTorch FR model (.pt); for an ONNX FR model "
                         "use --method l1 or random")
    if method not in ("l1", "random"):
        raise UsageError(f"unknown PreFIQs pruning method {method!r}; choose l1 or random for ONNX FR models")
    if not 0.0 < rho < 1.0 or scope not in SCOPES:
        raise UsageError(f"rho must be in (0, 1) and scope one of {', '.join(SCOPES)}, got {rho}, {scope!r}")
    names = prunable_weights(model)
    if not names:
        raise UsageError("the ONNX FR model has no Conv/Gemm/MatMul weight initializers to prune")
    inits = {i.name: i for i in model.graph.initializer}
    arrays = {n: numpy_helper.to_array(inits[n]) for n in names}
    rng = np.random.default_rng(seed)

    ranked = dict(arrays)  # what the magnitudes are taken of

    def keep_mask(a: np.ndarray) -> np.ndarray:
        s = np.abs(a.astype(np.float64)).ravel() if method == "l1" else rng.random(a.size)
        k = int(round(rho * s.size))
        keep = np.ones(s.size, bool)
        if k:
            keep[np.argpartition(s, k - 1, kind="introselect")[:k]] = False
        return keep

    if scope == "normalized" and method == "l1":  # magnitudes relative to their output channel's L2 norm
        axes = output_axes(model)
        for n, a in arrays.items():
            rows = np.moveaxis(np.abs(a.astype(np.float64)), axes[n], 0)
            norms = np.sqrt((rows.reshape(rows.shape[0], -1) ** 2).sum(1)).clip(1e-12)
            ranked[n] = np.moveaxis(rows / norms.reshape(-1, *[1] * (rows.ndim - 1)), 0, axes[n])
    if scope == "channel":
        axes = output_axes(model)
        masks = {}
        for n, a in arrays.items():
            rows = np.moveaxis(a, axes[n], 0)
            keep = np.stack([keep_mask(r) for r in rows.reshape(rows.shape[0], -1)]).reshape(rows.shape)
            masks[n] = np.moveaxis(keep, 0, axes[n])
    elif scope == "layer":
        masks = {n: keep_mask(a).reshape(a.shape) for n, a in arrays.items()}
    else:
        flat = keep_mask(np.concatenate([a.ravel() for a in ranked.values()]))
        bounds = np.cumsum([0] + [a.size for a in arrays.values()])
        masks = {n: flat[s:e].reshape(a.shape) for (n, a), s, e in zip(arrays.items(), bounds[:-1], bounds[1:])}
    zeros = 0
    for n, a in arrays.items():
        inits[n].CopyFrom(numpy_helper.from_array((a * masks[n]).astype(a.dtype), n))
        zeros += int((~masks[n]).sum())
    total = sum(a.size for a in arrays.values())
    return {"method": method, "rho": rho, "scope": scope, "seed": seed, "pruned_weights": zeros,
            "prunable_weights": total, "sparsity": zeros / total, "layers": len(names)}


def split_at_head(model: Any) -> tuple[Any, Any]:
    """``(backbone, head)``: the graph up to the embedding layer's input feature, and from it to the output.

    Raises:
        UsageError: the graph has no such cut (no Conv/Gemm/MatMul embedding layer fed by a feature).

    Example:
        >>> backbone, head = split_at_head(g)   # doctest: +SKIP
    """
    # heavy: onnx (~1.5 s) only when a graph is edited
    from onnx.shape_inference import infer_shapes
    from onnx.utils import Extractor

    g = model.graph
    heads = [n for n in g.node if n.op_type in PRUNABLE_OPS]
    inits = {i.name for i in g.initializer}
    graph_in = [v.name for v in g.input if v.name not in inits]
    if not heads or heads[-1].input[0] in inits or heads[-1].input[0] in graph_in:
        raise UsageError("SER-FIQ on this ONNX FR model: no embedding layer fed by a feature to apply dropout to")
    feat = heads[-1].input[0]
    try:
        ex = Extractor(infer_shapes(model))
        return ex.extract_model(graph_in[:1], [feat]), ex.extract_model([feat], [g.output[0].name])
    except Exception as e:  # noqa: BLE001 - an uncuttable graph is a usage limit, said in one line
        raise UsageError(f"SER-FIQ on this ONNX FR model: cannot cut the graph before its embedding layer "
                         f"({str(e).splitlines()[0][:120]})") from None


def cached_graph(path: Path, build: Callable[[], Any]) -> Path:
    """``path`` if it exists, else ``build()`` (a ModelProto) saved there atomically.

    Example:
        >>> cached_graph(cache / "mfn-l1-0.4.onnx", lambda: pruned)   # doctest: +SKIP
    """
    if path.is_file():
        return path

    onnx = _onnx()
    model = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return path


class GraphRunner:
    """A runner of an ONNX graph over ``[N, C, H, W]`` float32 batches of any size -> ``[N, D]`` float32.

    Subclasses set ``input_name`` and ``fixed_batch`` (the graph's batch size if it is fixed) and
    implement ``_run(x) -> first output``; graphs with a fixed batch are fed slices of it.
    """

    input_name = "input"
    fixed_batch: int | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.raw(x)
        return out.reshape(out.shape[0], -1)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The first output as the graph gives it (``[N, ...]``), float32."""
        arr = np.ascontiguousarray(x, np.float32)
        b = self.fixed_batch
        if b is None or b == arr.shape[0]:
            out = self._run(arr)
        else:  # a fixed batch size: feed it in slices of b, padding the last one
            pad = (-arr.shape[0]) % b
            arr_p = np.concatenate([arr, np.repeat(arr[-1:], pad, axis=0)]) if pad else arr
            out = np.concatenate([self._run(arr_p[i:i + b]) for i in range(0, len(arr_p), b)])[: arr.shape[0]]
        return np.asarray(out, np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OrtRunner(GraphRunner):
    """onnxruntime (CPU, float32) runner of an ONNX graph.

    Args:
        model: ``.onnx`` path or ``ModelProto``.
        threads: intra-op threads (``None``: onnxruntime's default).

    Example:
        >>> OrtRunner("mfn.onnx", threads=2)(x).shape   # doctest: +SKIP
        (64, 128)
    """

    def __init__(self, model: str | Path | Any, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort  # heavy: a session only when a graph is run
        except ImportError:
            raise BackendUnavailableError("onnxruntime is not installed: pip install onnxruntime") from None
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads, so.inter_op_num_threads = int(threads), 1
        src = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
        try:
            self.session = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            where = model if isinstance(model, (str, Path)) else "ONNX graph"
            raise DataError(f"{where}: onnxruntime cannot load it ({str(e).splitlines()[0][:160]})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


def native_bf16(core: Any = None) -> bool:
    """True if OpenVINO's CPU plugin computes in bfloat16 natively here (AVX512_BF16 or AMX).

    Args:
        core: an ``openvino.Core`` to ask (default: a new one).

    Example:
        >>> native_bf16()   # doctest: +SKIP
        True
    """
    if core is None:
        try:
            import openvino as ov  # heavy optional: only for bf16 graphs
        except ImportError:
            return False
        core = ov.Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OvBf16Runner(GraphRunner):
    """OpenVINO CPU runner of an ONNX graph computing in bfloat16 (inputs and outputs float32).

    PreFIQs labels 1.4-1.6x faster than with float32 onnxruntime on CPUs with native bfloat16;
    the embeddings differ from float32 by bfloat16 rounding (PreFIQs on MobileFaceNet: SRCC
    0.9995 against float32, ``results/label_speed.md``). OpenVINO pins its threads, so give one
    runner all the cores and run two of them one after the other rather than side by side.

    Raises:
        BackendUnavailableError: openvino is not installed.
        UsageError: the CPU has no native bfloat16.

    Example:
        >>> OvBf16Runner("mfn.onnx", threads=2)(x).shape   # doctest: +SKIP
        (64, 128)
    """

    def __init__(self, model: str | Path, threads: int | None = None) -> None:
        try:
            import openvino as ov  # heavy optional: only for bf16 graphs
        except ImportError:
            raise BackendUnavailableError("--precision bf16 runs the FR passes with OpenVINO: pip install openvino") from None
        core = ov.Core()
        if not native_bf16(core):
            raise UsageError("--precision bf16 needs a CPU with native bfloat16 (AVX512_BF16 or AMX); "
                             "this one has none: use --precision fp32")
        try:
            graph = core.read_model(str(model))
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{model}: OpenVINO cannot read it ({str(e).splitlines()[0][:160]})") from None
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        shape = graph.inputs[0].get_partial_shape()
        self.fixed_batch = shape[0].get_length() if shape[0].is_static else None
        self.request = core.compile_model(graph, "CPU", config).create_infer_request()

    def _run(self, x: np.ndarray) -> np.ndarray:
        return next(iter(self.request.infer({0: x}).values())).copy()


def batchable_graph(model: Any) -> tuple[Any, bool]:
    """``(graph, batchable)``: a batchable copy if two random images batched equal two single calls, else ``model``.

    Example:
        >>> g, ok = batchable_graph(read_graph("MobileFaceNet.onnx"))   # doctest: +SKIP
        >>> ok
        True
    """
    cand = copy.deepcopy(model)
    if not make_batchable(cand):
        return model, _input_batch(model) is None
    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)
    try:
        one = OrtRunner(model, threads=1)(x)
        two = OrtRunner(cand, threads=1)(x)
    except Exception as e:  # noqa: BLE001 - an unfixable graph is fed one image at a time
        log.info("fixed-batch ONNX graph stays fixed (%s)", str(e).splitlines()[0][:120])
        return model, False
    if two.shape != one.shape or not np.allclose(one, two, rtol=1e-4, atol=1e-5):
        return model, False
    return cand, True


def _input_batch(model: Any) -> int | None:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return int(dims[0].dim_value) if dims and dims[0].HasField("dim_value") else None
