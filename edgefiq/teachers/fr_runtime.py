"""Runners for the FR passes of the teachers: ONNX graphs exported once, cached by hash, batched.

PyTorch FR models (and their pruned copies) are exported to ONNX once per (weights hash,
pruning settings) and run with onnxruntime, which needs about half the CPU of torch eager
mode for MobileFaceNet. ONNX FR models are used directly: made batchable (or fed one image
at a time) and, for PreFIQs, pruned by ``edgefiq.teachers.onnx_graph`` without torch.
``precision="bf16"`` runs the same graphs with OpenVINO in bfloat16 (``OvBf16Runner``).

Files: ``<cache_dir>/onnx/<sha16>-<what>-<GRAPH_VERSION>.onnx``; sessions are kept per process.

Example:
    >>> full = full_runner(fr, cache_dir, threads=2)                            # doctest: +SKIP
    >>> pruned = pruned_runner(fr, cache_dir, method="l1", rho=0.4, threads=2)   # doctest: +SKIP
    >>> full(x).shape, pruned(x).shape                                           # doctest: +SKIP
    ((64, 128), (64, 128))
"""

from __future__ import annotations

import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import torch

from edgefiq.teachers.onnx_graph import (GRAPH_VERSION, GraphRunner, OrtRunner, OvBf16Runner, batchable_graph,
                                         cached_graph, graph_sha256, prune_graph, read_graph, split_at_head)
from edgefiq.utils import atomic_path

PRECISIONS = ("fp32", "bf16")
_RUNNERS: dict[tuple[Any, ...], GraphRunner] = {}
_SHA: dict[str, str] = {}
_POOL: Any = None


def onnxruntime_available() -> bool:
    """True if ``import onnxruntime`` works.

    Example:
        >>> onnxruntime_available()   # doctest: +SKIP
        True
    """
    try:
        import onnxruntime  # noqa: F401 - heavy: imported only to probe, when asked
    except ImportError:
        return False
    return True


def default_threads() -> int | None:
    """torch's CPU thread count if torch is loaded (``edgefiq label --threads`` sets it), else onnxruntime's default.

    Example:
        >>> default_threads()   # doctest: +SKIP
        2
    """
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def is_onnx_model(fr: Any) -> bool:
    """True for an FR model loaded from an ``.onnx`` file (``edgefiq.models.fr.OnnxFR``).

    Example:
        >>> is_onnx_model(load_fr_model("MobileFaceNet.onnx"))   # doctest: +SKIP
        True
    """
    return str(getattr(fr, "source", "")).lower().endswith(".onnx")


def source_sha256(fr: Any) -> str:
    """Hash keying the derived graphs: the ONNX file with its external data, or the ``.pt`` weights hash.

    Example:
        >>> source_sha256(fr)[:16]   # doctest: +SKIP
        'bea9ffc93414fdf3'
    """
    if not is_onnx_model(fr):
        return str(fr.weights_sha256)
    src = str(fr.source)
    if src not in _SHA:
        _SHA[src] = graph_sha256(src)
    return _SHA[src]


def run_concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Results of ``calls`` run on a shared thread pool (onnxruntime releases the GIL), in order.

    Example:
        >>> run_concurrently([lambda: 1, lambda: 2])
        [1, 2]
    """
    global _POOL
    if len(calls) == 1:
        return [calls[0]()]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="edgefiq-ort")
    return [f.result() for f in [_POOL.submit(c) for c in calls]]


def export_torch_fr(model: Any, path: Path, size: tuple[int, int]) -> Path:
    """Export a torch FR module (eval mode; BatchNorm is folded by the exporter) with a dynamic batch, atomically.

    Example:
        >>> export_torch_fr(fr, Path("mfn.onnx"), (112, 112))   # doctest: +SKIP
        PosixPath('mfn.onnx')
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), atomic_path(path) as tmp, torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(2, 3, *size),), str(tmp), opset_version=17, dynamo=False,
                          input_names=["input"], output_names=["emb"],
                          dynamic_axes={"input": {0: "n"}, "emb": {0: "n"}})
    return path


def _runner(key: tuple[Any, ...], path: Callable[[], Path], threads: int | None, precision: str) -> GraphRunner:
    k = (*key, threads, precision)
    if k not in _RUNNERS:
        _RUNNERS[k] = (OvBf16Runner if precision == "bf16" else OrtRunner)(path(), threads=threads)
    return _RUNNERS[k]


def full_graph_path(fr: Any, cache_dir: Path) -> Path:
    """The full FR model as a batchable ONNX file (exported or fixed once; the original if it cannot be fixed).

    Example:
        >>> full_graph_path(fr, Path("~/.cache/edgefiq")).name   # doctest: +SKIP
        'bea9ffc93414fdf3-full-g1.onnx'
    """
    sha = source_sha256(fr)[:16]
    if not is_onnx_model(fr):
        out = cache_dir / "onnx" / f"{sha}-torch-full-{GRAPH_VERSION}.onnx"
        return out if out.is_file() else export_torch_fr(fr, out, fr.preprocess.size)
    out = cache_dir / "onnx" / f"{sha}-full-{GRAPH_VERSION}.onnx"
    if out.is_file():
        return out
    graph, ok = batchable_graph(read_graph(fr.source))
    return cached_graph(out, lambda: graph) if ok else Path(fr.source)


def full_runner(fr: Any, cache_dir: Path, threads: int | None = None, precision: str = "fp32") -> GraphRunner:
    """Runner of the full FR model (any batch size): onnxruntime, or OpenVINO for ``precision="bf16"``.

    Example:
        >>> emb = full_runner(fr, Path("~/.cache/edgefiq"))(x)   # doctest: +SKIP
    """
    return _runner(("full", source_sha256(fr)), lambda: full_graph_path(fr, cache_dir), threads, precision)


def pruned_runner(fr: Any, cache_dir: Path, *, method: str, rho: float, scope: str = "global", seed: int = 0,
                  fold_bn: bool = False, torch_pruned: Callable[[], Any] | None = None,
                  threads: int | None = None, precision: str = "fp32") -> GraphRunner:
    """Runner of the PreFIQs pruned copy (onnxruntime, or OpenVINO for ``precision="bf16"``).

    ONNX FR models, and ``.pt`` models with ``fold_bn``, are pruned in their ONNX graph (the
    weights as deployed: BatchNorm folded); other ``.pt`` models are pruned in PyTorch
    (``torch_pruned()`` builds that copy) and exported.

    Example:
        >>> pr = pruned_runner(fr, cache, method="l1", rho=0.4)   # doctest: +SKIP
    """
    sha = source_sha256(fr)[:16]
    in_graph = is_onnx_model(fr) or fold_bn
    tag = ("graph" if is_onnx_model(fr) else "torchfold") if in_graph else "torch"
    out = cache_dir / "onnx" / f"{sha}-{tag}-{method}-{rho:g}-{scope}-s{seed}-{GRAPH_VERSION}.onnx"

    def build() -> Path:
        if out.is_file():
            return out
        if not in_graph:
            if torch_pruned is None:
                raise ValueError("torch_pruned is needed to prune a PyTorch FR model")
            return export_torch_fr(torch_pruned(), out, fr.preprocess.size)
        graph = read_graph(full_graph_path(fr, cache_dir))
        prune_graph(graph, rho=rho, method=method, scope=scope, seed=seed)
        return cached_graph(out, lambda: graph)

    return _runner(("pruned", sha, tag, method, round(rho, 6), scope, seed), build, threads, precision)


def split_runners(fr: Any, cache_dir: Path, threads: int | None = None,
                  precision: str = "fp32") -> tuple[GraphRunner, GraphRunner]:
    """``(backbone, head)`` runners of an ONNX FR model cut at its embedding layer's input (for SER-FIQ).

    Raises:
        UsageError: the graph has no such cut (``onnx_graph.split_at_head``).

    Example:
        >>> backbone, head = split_runners(fr, cache)   # doctest: +SKIP
        >>> head(backbone(x)).shape                     # doctest: +SKIP
        (64, 128)
    """
    sha = source_sha256(fr)[:16]
    paths = [cache_dir / "onnx" / f"{sha}-{part}-{GRAPH_VERSION}.onnx" for part in ("backbone", "head")]

    def build(k: int) -> Path:
        if not paths[k].is_file():
            parts = split_at_head(read_graph(full_graph_path(fr, cache_dir)))
            for p, g in zip(paths, parts):
                cached_graph(p, lambda g=g: g)
        return paths[k]

    return (_runner(("backbone", sha), lambda: build(0), threads, precision),
            _runner(("head", sha), lambda: build(1), threads, precision))
