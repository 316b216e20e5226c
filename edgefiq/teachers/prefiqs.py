"""PreFIQs: face image quality is what survives pruning.

Quality = minus the Euclidean distance between the L2-normalised embeddings of the full FR
model and of a pruned copy (higher = better): a face the network represents robustly
keeps its embedding when weights are removed. Pruning (``edgefiq.prune.prune_model``):
``l1`` (unstructured L1 magnitude, ``scope`` global, per layer, per output channel or
normalized), ``random`` (unstructured, seeded) or ``structured`` (torch-pruning DepGraph,
channels removed, L1 group importance, the final embedding layer left intact). Published default: ``l1``, ``rho = 0.4``.

The pruned copy is built once per process (memory cache) and optionally saved on disk,
keyed by the weights hash, method, rho, scope and seed. Full-model embeddings come from
the shared embedding cache, so other teachers on the same FR model reuse them.

Runtime (``runtime="auto"``): on CPU with onnxruntime installed, both networks run as ONNX
graphs (``edgefiq.teachers.fr_runtime``: a ``.pt`` model and its pruned copy are exported once,
cached by hash), about 5x the throughput of torch eager mode; otherwise torch. With
``precision="bf16"`` OpenVINO runs the same graphs in bfloat16 (CPUs with native support),
1.4-1.6x faster again. ONNX FR models
are pruned in the graph without torch (``edgefiq.teachers.onnx_graph``: ``l1``/``random``;
``structured`` is a one-line error). Exported graphs hold BatchNorm folded into the
convolutions, so their weight magnitudes differ from the ``.pt`` state dict's. Folding rescales
whole output channels, so ``scope="normalized"`` (one ranking of magnitudes relative to their
output channel's L2 norm; the default for ``l1`` on every file format) and ``scope="channel"``
prune the same weights in both, and the ``.pt`` and ``.onnx`` give the same scores. With the
``global`` ranking, ``fold_bn=True`` ranks a ``.pt`` model's folded weights as the ``.onnx``'s are.

Example:
    >>> t = PreFIQs("mobilefacenet.pt", method="l1", rho=0.4)         # doctest: +SKIP
    >>> t.score_paths(["Alice/Alice_0001.jpg"], root="faces/")        # doctest: +SKIP
    array([-0.21], dtype=float32)
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from edgefiq.errors import UsageError
from edgefiq.models.fr import l2_normalise
from edgefiq.models.structure import restore_structure
from edgefiq.prune import prune_model
from edgefiq.registry import TEACHERS
from edgefiq.teachers.base import FRTeacher, Table
from edgefiq.teachers.fr_runtime import (default_threads, full_runner, onnxruntime_available, pruned_runner,
                                         run_concurrently)
from edgefiq.teachers.onnx_graph import SCOPES
from edgefiq.utils import atomic_path

log = logging.getLogger(__name__)

PRUNING_METHODS = ("l1", "random", "structured")
RUNTIMES = ("auto", "onnxruntime", "torch")
_PRUNED: dict[tuple[Any, ...], torch.nn.Module] = {}


def pruned_copy(fr: torch.nn.Module, *, method: str, rho: float, scope: str = "global", seed: int = 0,
                cache_dir: Path | None = None) -> torch.nn.Module:
    """A pruned deep copy of ``fr`` (eval mode), built once per (weights, method, rho, scope, seed).

    Example:
        >>> p = pruned_copy(fr, method="l1", rho=0.4)   # doctest: +SKIP
    """
    if method not in PRUNING_METHODS:
        raise UsageError(f"unknown PreFIQs pruning method {method!r}; choose {', '.join(PRUNING_METHODS)}")
    if not 0.0 < rho < 1.0:
        raise UsageError(f"rho must be in (0, 1), got {rho}")
    if not any(True for _ in fr.parameters()):
        raise UsageError("PreFIQs needs a PyTorch FR model (.pt) to prune; ONNX FR models cannot be pruned")
    key = (fr.weights_sha256, method, round(rho, 6), scope, seed)
    if key in _PRUNED:
        return _PRUNED[key]
    device = next(fr.parameters()).device
    disk = None
    if cache_dir is not None:
        disk = Path(cache_dir) / f"pruned-{fr.weights_sha256[:16]}-{method}-{rho:g}-{scope}-s{seed}.pt"
    model = copy.deepcopy(fr).cpu()
    if disk is not None and disk.is_file():
        try:
            saved = torch.load(disk, map_location="cpu", weights_only=True)
            if saved.get("structure"):
                model = restore_structure(model, saved["structure"])
            model.load_state_dict(saved["state"], strict=True)
            _PRUNED[key] = model.to(device).eval()
            return _PRUNED[key]
        except Exception as e:  # noqa: BLE001 - a stale or corrupt cache file is rebuilt
            log.warning("ignoring unreadable pruned-model cache %s (%s)", disk, e)
            model = copy.deepcopy(fr).cpu()
    example = torch.zeros(1, 3, *fr.preprocess.size)
    model.eval()
    with torch.enable_grad():  # torch-pruning traces the graph with autograd
        model, info = prune_model(model, example, rho=rho, method=method, scope=scope, seed=seed)
    model.eval()
    if disk is not None:
        with atomic_path(disk) as tmp:
            torch.save({"state": model.state_dict(), "structure": info.get("structure")}, tmp)
    _PRUNED[key] = model.to(device)
    return _PRUNED[key]


UNSTRUCTURED = ("l1", "random")   # pruning methods that keep the dense graph


@TEACHERS.register("prefiqs")
class PreFIQs(FRTeacher):
    """PreFIQs quality = -|| e_full - e_pruned || of L2-normalised embeddings.

    Args:
        fr_model: FR weights (``.pt``; pruning needs a PyTorch model).
        method: ``l1`` | ``random`` | ``structured``.
        rho: pruning ratio in (0, 1) (weights for l1/random, channels for structured).
        scope: ``global`` (rank all weights together), ``layer`` (rho in every layer), ``channel``
            (rho of every output channel) or ``normalized`` (global ranking of magnitudes relative to
            their output channel's L2 norm). The last two prune the same weights in a ``.pt`` and its
            BN-folded ``.onnx``. Default for ``l1``: ``normalized``, for every file format: folding a BatchNorm into
            an ``.onnx`` changes a ``global`` ranking (a much weaker teacher there, ``results/teachers.md``)
            but not a ``normalized`` one, so a ``.pt`` and its ``.onnx`` give the same teacher.
        seed: seed of ``random`` pruning.
        save_pruned: also keep the pruned copy on disk in the cache directory.
        runtime: ``auto`` | ``onnxruntime`` | ``torch`` (see the module docstring).
        precision: ``fp32`` or ``bf16`` (both networks run by OpenVINO in bfloat16, see ``FRTeacher``).
        fold_bn: prune the BatchNorm-folded weights of the exported graph (always so for ``.onnx``).
        (other arguments: see ``FRTeacher``)
    """

    name = "prefiqs"

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """The constructor's option checks, without loading the FR model (``Teacher.check_options``).

        Example:
            >>> PreFIQs.check_options({"rho": 1.4})
            Traceback (most recent call last):
            ...
            edgefiq.errors.UsageError: --rho must be in (0, 1), got 1.4
        """
        method, rho = options.get("method", "l1"), options.get("rho", 0.4)
        scope, runtime = options.get("scope"), options.get("runtime", "auto")
        onnx = bool(options.get("fold_bn")) or Path(str(options.get("fr_model") or "")).suffix.lower() == ".onnx"
        if method not in PRUNING_METHODS:
            raise UsageError(f"unknown PreFIQs pruning method {method!r}; choose {', '.join(PRUNING_METHODS)}")
        if not isinstance(rho, (int, float)) or not 0.0 < float(rho) < 1.0:
            raise UsageError(f"--rho must be in (0, 1), got {rho}")
        if scope is not None and scope not in SCOPES:
            raise UsageError(f"--scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if runtime not in RUNTIMES:
            raise UsageError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if method == "structured" and onnx:
            raise UsageError("structured PreFIQs pruning needs a PyTorch FR model (.pt); for an ONNX FR model "
                             "use --method l1 or random")
        if runtime == "torch" and onnx:
            raise UsageError("runtime 'torch' prunes PyTorch models only; ONNX graphs and fold_bn need onnxruntime")
        if runtime == "torch" and options.get("precision", "fp32") != "fp32":
            raise UsageError(f"--precision {options['precision']} runs the FR passes with OpenVINO; it cannot use "
                             "--runtime torch")

    def __init__(self, fr_model: str | Path | None = None, method: str = "l1", rho: float = 0.4, scope: str | None = None,
                 seed: int = 0, arch: str | None = None, flip: bool = False, save_pruned: bool = True,
                 runtime: str = "auto", fold_bn: bool = False, precision: str = "fp32", *, batch_size: int = 64,
                 device: str = "cpu", workers: int = 0, cache_dir: str | Path | None = None, cache: bool = True) -> None:
        self.check_options(dict(fr_model=fr_model, method=method, rho=rho, scope=scope, runtime=runtime,
                                fold_bn=fold_bn, precision=precision))
        super().__init__(fr_model, arch, flip, precision, batch_size=batch_size, device=device, workers=workers,
                         cache_dir=cache_dir, cache=cache)
        if scope is None:  # one teacher per FR model, whatever its file format (results/prefiqs_formats.md)
            scope = "normalized" if method == "l1" else "global"
        self.method, self.rho, self.scope, self.seed = method, float(rho), scope, int(seed)
        self.save_pruned, self.runtime, self.fold_bn = save_pruned, runtime, bool(fold_bn)

    @property
    def pruned(self) -> Any:
        """The pruned copy: a torch module, or (onnxruntime runtime) an ``OrtRunner`` of the pruned graph."""
        if self.uses_onnxruntime:
            return self.runners()[1]
        return self.torch_pruned()

    def torch_pruned(self) -> torch.nn.Module:
        """The pruned PyTorch copy (``.pt`` FR models only)."""
        return pruned_copy(self.fr, method=self.method, rho=self.rho, scope=self.scope, seed=self.seed,
                           cache_dir=self.cache_dir if (self.save_pruned and self.use_cache) else None)

    def networks(self) -> list[tuple[str, Any]]:
        """The FR model and the pruned copy, once each per image (twice with ``flip``). Unstructured
        pruning (``l1``, ``random``) zeroes weights but keeps the dense graph: that pass is the FR
        model's own graph. Structured pruning removes channels: that pass is the pruned copy."""
        nets = super().networks()
        if self.method in UNSTRUCTURED:
            return nets + [(f"pruned ({self.method} {self.rho}, dense graph of fr)", self.fr)] * len(nets)
        return nets + [(f"pruned ({self.method} {self.rho})", self.torch_pruned())] * len(nets)

    @property
    def uses_onnxruntime(self) -> bool:
        """Whether the FR passes run on ONNX graphs (onnxruntime, or OpenVINO for bf16) rather than torch.

        ``auto``: onnxruntime if installed and on CPU; always for ONNX models, fold_bn and bf16.
        """
        if self.runtime != "auto":
            return self.runtime == "onnxruntime"
        if self.fr_path.suffix.lower() == ".onnx" or self.fold_bn or self.precision != "fp32":
            return True
        return self.device == "cpu" and onnxruntime_available()

    def runtime_name(self) -> str:
        """What runs the FR passes: ``openvino-bf16``, ``onnxruntime`` or ``torch``."""
        if self.precision != "fp32":
            return f"openvino-{self.precision}"
        return "onnxruntime" if self.uses_onnxruntime else "torch"

    def runners(self, threads: int | None = None) -> tuple[Any, Any]:
        """``(full, pruned)`` graph runners (exported / pruned once, cached by hash in ``cache_dir``)."""
        full = full_runner(self.fr, self.cache_dir, threads, self.precision)
        pruned = pruned_runner(self.fr, self.cache_dir, method=self.method, rho=self.rho, scope=self.scope,
                               seed=self.seed, fold_bn=self.fold_bn, torch_pruned=self.torch_pruned, threads=threads,
                               precision=self.precision)
        return full, pruned

    def score_table(self, root: Path, relpaths: Sequence[str], *, on_bad_image: str = "error") -> Table:
        if not self.uses_onnxruntime:
            pruned = self.torch_pruned()
            return self._score(root, relpaths, on_bad_image,
                               lambda x, need_full: (self.embed(x, pruned), self.embed(x) if need_full else None))

        # onnxruntime: the two networks run side by side, one core each (about 1.8x one session on two threads);
        # OpenVINO pins its threads, so each bf16 network gets all the cores in turn
        side_by_side = self.precision == "fp32"
        threads = default_threads() or 2
        full, pruned = self.runners(max(1, threads // 2) if side_by_side else threads)

        def both(x: torch.Tensor, need_full: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
            xn = x.cpu().numpy()
            views = [xn, np.ascontiguousarray(xn[..., ::-1])] if self.flip else [xn]
            calls = [lambda m=m, v=v: m(v) for m in ((pruned, full) if need_full else (pruned,)) for v in views]
            out = run_concurrently(calls) if side_by_side else [c() for c in calls]
            ep = torch.from_numpy(sum(out[:len(views)]))
            return ep, (torch.from_numpy(sum(out[len(views):])) if need_full else None)

        return self._score(root, relpaths, on_bad_image, both)

    @torch.no_grad()
    def _score(self, root: Path, relpaths: Sequence[str], on_bad_image: str, embed_both: Any) -> Table:
        """Quality from ``embed_both(x, need_full) -> (pruned embeddings, full embeddings or None)`` per batch."""
        full, fps = self.cached_full(root, relpaths)
        have_full = full is not None
        if full is None:
            full = np.full((len(relpaths), 0), np.nan, np.float32)
        pr: np.ndarray | None = None
        for x, ok, idx in self.batches(root, relpaths, on_bad_image):
            ep_t, ef_t = embed_both(x, not have_full)
            ep = ep_t.float().cpu().numpy()
            if pr is None:
                pr = np.full((len(relpaths), ep.shape[1]), np.nan, np.float32)
            ep[~ok] = np.nan
            pr[idx] = ep
            if ef_t is not None:
                ef = ef_t.float().cpu().numpy()
                if full.shape[1] == 0:
                    full = np.full((len(relpaths), ef.shape[1]), np.nan, np.float32)
                ef[~ok] = np.nan
                full[idx] = ef
        if pr is None:
            return {"quality": np.zeros(0)}
        if not have_full:
            self.store_full(relpaths, fps, full)
        dist = np.linalg.norm(l2_normalise(full) - l2_normalise(pr), axis=1)
        return {"quality": -dist.astype(np.float64)}

    def config(self) -> dict[str, Any]:
        in_graph = self.fold_bn or self.fr_path.suffix.lower() == ".onnx"
        return {"teacher": self.name, "method": self.method, "rho": self.rho, "scope": self.scope,
                "seed": self.seed, "quality": "-||normalise(e_full) - normalise(e_pruned)||_2",
                "pruning": "edgefiq.teachers.onnx_graph.prune_graph (BatchNorm-folded graph weights)" if in_graph
                else "edgefiq.prune.prune_model", "runtime": self.runtime_name(),
                **self.fr_config()}
