"""Accuracy-controlled mixed precision: keep the fewest blocks in float that make int8 rank like fp32.

Some students lose their ranking under full int8 even with the score head in float: on the
quickstart's synthetic sample the noise-degraded images are scored from small, high-frequency
activations in the early blocks, and a per-tensor 8-bit range set by strong edges rounds them
away (SRCC vs fp32 0.93). The remedy NNCF calls accuracy control, done the same way on every
backend:

1. **Units** (:func:`precision_units`): the model's blocks as torch module names (stem, each
   inverted-residual / attention block, the last conv), the granularity at which a backend is
   told "keep this in float".
2. **Ranking** (:func:`rank_units`): a torch simulation of int8 (per-channel symmetric weights,
   per-tensor affine uint8 activations with calibration ranges) scores each unit by how much
   SRCC vs fp32 comes back when that unit alone stays float (leave-one-out). One forward pass
   per unit; no backend conversion. It runs only when the search needs an order
   (:class:`LazyRanking`): plain int8 at the starting point often passes.
3. **Search** (:func:`search_float_units`): on the real backend, the smallest ``k`` such that
   keeping the ``k`` top-ranked units in float reaches ``SRCC >= 1 - max_drop`` on the
   calibration images, by bisection (about log2(units) quantisations). The parity gate then
   checks the result on the held-out verification images as usual.

The artifact's sidecar lists the float units (``float_modules``) and every trial.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgefiq.errors import ExportError
from edgefiq.export.base import artifact_files
from edgefiq.export.parity import _srcc as parity_srcc, runner_scores, torch_scores

log = logging.getLogger(__name__)

WEIGHTED = ("Conv1d", "Conv2d", "Linear")


def _has_weights(module: Any) -> bool:
    return any(type(m).__name__ in WEIGHTED for m in module.modules())


def _layer_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Type names of the layers whose outputs backends quantise, and of reshape-only layers: the sets
    quantisation-aware training uses (``edgefiq.distill.quant_aware``), imported when torch is in use."""
    from edgefiq.distill.quant_aware import PASS_THROUGH, QUANTISED  # imports torch: export imports torch-free

    return tuple(c.__name__ for c in QUANTISED), tuple(c.__name__ for c in PASS_THROUGH)


def _is_op(module: Any) -> bool:
    """A module whose output a backend quantises: weighted, normalising, activation or pooling."""
    return any(type(m).__name__ in WEIGHTED + _layer_names()[0] for m in module.modules())


Unit = tuple[str, ...]   # torch module names kept float together


def label(unit: Unit) -> str:
    """``features.0+features.1+features.2`` for a grouped run, the module name otherwise."""
    return "+".join(unit)


def precision_units(model: Any, *, skip: Sequence[str] = ()) -> list[Unit]:
    """Block-level groups of ``model``'s modules in definition order.

    Modules reached from the root through plain attributes (``net``, ``conv_stem``) are walked
    into; elements of ``nn.Sequential``/``nn.ModuleList`` (stages and their blocks) are units
    unless they are containers themselves. In a flat sequence of layers (``conv, bn, relu,
    conv, ...``) each conv or linear starts a unit that its following norm and activation join:
    a converter fuses them into one op. Parameter-free operations on the top-level path (the
    stem's activation, global pooling) are units too: their outputs are quantised, and on the
    quickstart student the stem's activation alone costs 0.04 SRCC. Names in ``skip`` (the
    float score head) are left out.

    Example:
        >>> precision_units(timm_mobilenetv3_small)[:3]          # doctest: +SKIP
        [('net.conv_stem',), ('net.bn1',), ('net.blocks.0.0',)]
    """
    # heavy (torch): lazy, so importing edgefiq.export stays cheap and torch-free
    from torch import nn

    out: list[list[str]] = []

    def skipped(name: str) -> bool:
        return any(name == s or name.startswith(s + ".") for s in skip)

    def visit(name: str, module: Any, element: bool) -> None:
        if skipped(name) or not (_has_weights(module) or (not element and _is_op(module))):
            return
        kids = list(module.named_children())
        if isinstance(module, (nn.Sequential, nn.ModuleList)):
            run: list[str] | None = None
            for k, child in kids:
                cname = f"{name}.{k}" if name else k
                if skipped(cname):
                    run = None
                elif list(child.children()):
                    visit(cname, child, True)
                    run = None
                elif type(child).__name__ in WEIGHTED:
                    run = [cname]
                    out.append(run)
                elif run is not None and _is_op(child):
                    run.append(cname)
        elif element or not kids or not _has_weights(module):
            out.append([name])
        else:
            for k, child in kids:
                visit(f"{name}.{k}" if name else k, child, False)

    visit("", model, False)
    return [tuple(u) for u in out]


def scope_module(op_name: str) -> str:
    """The torch module path a converter wrote into an op's name ("" if none).

    Handles OpenVINO's ``__module.net.blocks.0.0.conv_dw/aten::_convolution/Convolution`` and the
    ONNX exporter's ``/net/blocks/blocks.0/blocks.0.0/conv_dw/Conv`` (each scope level repeats
    its parent's dotted prefix).

    Example:
        >>> scope_module("/net/blocks/blocks.0/blocks.0.0/conv_dw/Conv")
        'net.blocks.0.0.conv_dw'
        >>> scope_module("__module.net.bn1.act/aten::hardswish_/HSwish")
        'net.bn1.act'
    """
    if op_name.startswith("__module."):
        return op_name[len("__module."):].split("/")[0]
    if not op_name.startswith("/"):
        return ""
    path: list[str] = []
    for comp in op_name.strip("/").split("/")[:-1]:
        if path and comp.startswith(path[-1] + "."):
            path[-1] = comp
        else:
            path.append(comp)
    return ".".join(path)


def in_units(module: str, units: Sequence[str]) -> bool:
    """``module`` is one of ``units`` or inside one."""
    return bool(module) and any(module == u or module.startswith(u + ".") for u in units)


def as_scoped(units: Sequence[str], scopes: set[str]) -> list[str]:
    """``units`` (torch module paths) as a converter's op scopes spell them.

    A converter names an op after the *call* path of its module, so a module reached through a container
    that is never called itself (``FaceTrunk.trunk``, a plain ``nn.Module`` holding ``conv1``) loses that
    container's name: ``trunk.conv1.0`` appears as ``conv1.0``. A unit that no scope contains is therefore
    matched without its leading components, the longest such form that some scope contains.

    Example:
        >>> as_scoped(["trunk.conv1.0", "head"], {"conv1.0", "features.0.conv", "head"})
        ['conv1.0', 'head']
    """
    def found(u: str) -> bool:
        return any(s == u or s.startswith(u + ".") for s in scopes)

    out = []
    for u in units:
        parts = u.split(".")
        out.append(next((c for c in (".".join(parts[k:]) for k in range(len(parts))) if found(c)), u))
    return out


def _srcc(a: np.ndarray, b: np.ndarray) -> float:
    """The parity gate's SRCC, with 0 for constant scores (int8 can flatten a score: no ranking left)."""
    v = parity_srcc(a, b)
    return 0.0 if np.isnan(v) else v


def head_module(model: Any) -> str | None:
    """Name of the last linear layer (the score head every backend keeps in float)."""
    names = [n for n, m in model.named_modules() if type(m).__name__ == "Linear"]
    return names[-1] if names else None


class _Simulator:
    """Torch int8 simulation with per-unit switches (see the module docstring)."""

    def __init__(self, model: Any, units: list[Unit], calibration: np.ndarray, head: str | None) -> None:
        # heavy (torch): lazy, so importing edgefiq.export stays cheap and torch-free
        import torch

        self.torch = torch
        self.ACT, self.PASS = _layer_names()
        self.model = model.eval()
        self.units = units
        mods = dict(model.named_modules())
        self.mods = mods
        # Activations are quantised where backends quantise them: outputs of norms, activations
        # and pooling (a conv's own output is folded with its BatchNorm); weights per channel.
        self.acts: dict[Unit, list[str]] = {}
        self.weights: dict[Unit, list[str]] = {}
        for u in units:
            leaves = [(n, m) for member in u for n, m in mods[member].named_modules(prefix=member)
                      if not list(m.children()) and n != head]
            self.acts[u] = [n for n, m in leaves if type(m).__name__ in self.ACT]
            self.weights[u] = [n for n, m in leaves if type(m).__name__ in WEIGHTED]
        self.ranges: dict[str, tuple[float, float]] = {}
        self.float_output = self._calibrate(torch.from_numpy(np.ascontiguousarray(calibration)), head)

    def _calibrate(self, x: Any, head: str | None) -> str | None:
        """Record per-image activation ranges; return the leaf whose output feeds the float head."""
        seen: dict[str, list[tuple[float, float]]] = {}
        order: list[str] = []

        def rec(name: str) -> Any:
            def hook(m: Any, _i: Any, o: Any) -> None:
                if len(order) < len(self.mods):
                    order.append(name)
                if type(m).__name__ in self.ACT:
                    seen.setdefault(name, []).append((min(float(o.min()), 0.0), max(float(o.max()), 0.0)))
            return hook

        leaves = [n for n, m in self.mods.items() if n and not list(m.children())]
        handles = [self.mods[n].register_forward_hook(rec(n)) for n in leaves]
        try:
            with self.torch.no_grad():
                for i in range(len(x)):   # per-image ranges, averaged: like the backends' moving average
                    self.model(x[i:i + 1])
        finally:
            for h in handles:
                h.remove()
        self.ranges = {n: tuple(np.mean(v, axis=0)) for n, v in seen.items()}
        first = order[:order.index(head)] if head in order else []
        producers = [n for n in first if type(self.mods[n]).__name__ not in self.PASS]
        return producers[-1] if producers else None   # backends keep the head's input float too

    def scores(self, x: np.ndarray, quantised_units: Sequence[Unit]) -> np.ndarray:
        """Scores of ``x`` with the activations and weights of ``quantised_units`` fake-quantised."""
        torch = self.torch
        from edgefiq.distill.quant_aware import fake_quant_uint8   # the rounding QAT trains against (imports torch)
        handles, saved = [], []
        for u in quantised_units:
            for n in self.acts[u]:
                lo, hi = self.ranges.get(n, (0.0, 0.0))
                if hi > lo and n != self.float_output:
                    handles.append(self.mods[n].register_forward_hook(
                        lambda _m, _i, o, lo=lo, hi=hi: fake_quant_uint8(o, lo, hi)))
            for n in self.weights[u]:
                m = self.mods[n]
                w = m.weight.data
                saved.append((m, w.clone()))
                s = (w.abs().flatten(1).amax(1) / 127).clamp_min(1e-12)
                m.weight.data = torch.fake_quantize_per_channel_affine(
                    w, s, torch.zeros_like(s, dtype=torch.int32), 0, -127, 127)
        try:
            with torch.no_grad():
                return np.concatenate([self.model(torch.from_numpy(np.ascontiguousarray(x[i:i + 64])))
                                       .reshape(-1).numpy() for i in range(0, len(x), 64)])
        finally:
            for h in handles:
                h.remove()
            for m, w in saved:
                m.weight.data = w


def rank_units(model: Any, units: list[Unit], calibration: np.ndarray, reference: np.ndarray,
               head: str | None = None) -> list[tuple[Unit, float]]:
    """Units ordered by how much simulated int8 SRCC vs fp32 comes back when that unit alone stays float.

    Returns ``[(unit, srcc_with_only_this_unit_float), ...]``, most helpful first (ties keep
    model order). Leave-one-out ranks a single harmful unit first, like the alternative (the
    damage of quantising each unit alone) does; where every unit costs a little and the losses
    compound (the quickstart student) it needed fewer float units on onnxruntime (14 of 17
    against 16 of 17).
    """
    sim = _Simulator(model, units, calibration, head)
    regained = [(u, _srcc(sim.scores(calibration, [v for v in units if v != u]), reference)) for u in units]
    return sorted(regained, key=lambda t: -t[1])


class LazyRanking(Sequence):
    """The units in ``rank_units`` order, ranked on first use.

    Ranking is a torch simulation per unit (most of the int8 export time the quickstart saved without it,
    results/quickstart/reproducibility.md). Plain int8 at the starting point often passes without it (every
    int8 export of the quickstart): then no order is needed, and the sidecar's ``ranking`` is ``None``. An
    empty slice (``ranked[:0]``) never ranks.
    """

    def __init__(self, model: Any, units: list[Unit], calibration: np.ndarray, reference: np.ndarray,
                 head: str | None) -> None:
        self._args = (model, units, calibration, reference, head)
        self._n = len(units)
        self.ranking: list[tuple[Unit, float]] | None = None

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice) and not range(*i.indices(self._n)):
            return []
        if self.ranking is None:
            self.ranking = rank_units(*self._args)
        return [u for u, _ in self.ranking][i]


def search_float_units(trial: Callable[[list[Any]], float], ranked: Sequence[Any], target: float, *,
                       start: int = 0, known: dict[int, float] | None = None) -> tuple[list[Any], list[dict[str, Any]]]:
    """Fewest top-ranked units to keep in float so that ``trial(float_units) >= target``.

    ``trial`` quantises on the real backend with the given units in float and returns the SRCC
    vs fp32 on the calibration images. Bisection over ``k`` (assumes keeping more units in float
    does not hurt); all units float is tried only when every smaller ``k`` failed (one conversion
    fewer when some ``k`` passes). If even all units in float miss the target, all are returned (the
    parity gate then reports the failure). ``start``: a ``k`` that passed elsewhere (the same model on
    another backend) is tried first and kept if it passes here too.

    ``known``: SRCCs already measured for some ``k`` (not tried again, not in the history).

    Returns ``(float_units, history)`` with one ``{"float_units": k, "srcc": ...}`` per trial.
    """
    history: list[dict[str, Any]] = []
    cache: dict[int, float] = dict(known or {})

    def ok(k: int) -> bool:
        if k not in cache:
            cache[k] = float(trial(list(ranked[:k])))
            history.append({"float_units": k, "srcc": round(cache[k], 5)})
            log.info("mixed precision: %d/%d units float -> SRCC vs fp32 %.4f", k, len(ranked), cache[k])
        return cache[k] >= target

    lo = max(0, min(int(start), len(ranked)))
    if ok(lo):
        return list(ranked[:lo]), history
    hi = len(ranked)   # ok(lo) is False; ok(hi) is assumed True and tried only if the bisection ends there
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    if hi == len(ranked):
        ok(hi)   # all float: recorded in the history; if even it misses the target, the caller reports that
    return list(ranked[:hi]), history


def quantise_and_score(backend: Any, model: Any, example: Any, path: Path, options: Any, calibration: np.ndarray, *,
                       threads: int | None = None, **advanced: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """One int8 trial: export ``model`` to ``path`` with ``options`` and these ``AdvancedExportOptions``
    changed, then score ``calibration`` with the backend's own runner. Returns (scores, the quantiser's
    report). Accuracy control and auto calibration (``edgefiq.export.autocal``) are made of such trials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    done = backend.export(model, example, path, options.with_advanced(**advanced))
    return runner_scores(backend.load(path, threads), calibration), dict(done.quantization)


def export_mixed(backend: Any, model: Any, example: Any, out: Path, options: Any, *, max_drop: float,
                 threads: int | None = None, start: int = 0,
                 methods: Sequence[str] = ()) -> tuple[dict[str, Any], dict[str, Any], str, list[dict[str, Any]]]:
    """Int8-export ``model`` to ``out`` keeping the fewest blocks float for SRCC vs fp32 >= 1 - max_drop.

    Every trial is a real ``backend.export`` scored by the backend's runner on the calibration
    images (``options.calibration``); the passing trial's files become ``out``.

    ``methods`` (``calibration_method="auto"``): calibration methods tried in order at the
    starting point (``start`` float units, the hint of another target or model); the first that
    reaches the target ends the search there, else the one ranking best carries the bisection.
    Without ``methods`` the calibration method of ``options`` is used.

    Returns the ``mixed_precision`` record for the sidecar, the passing trial's quantiser report,
    the calibration method used and the method trials (``{"method", "float_units", "srcc_vs_fp32"}``
    or ``{"method", "error"}``; empty without ``methods``).

    Example:
        >>> export_mixed(BACKENDS.get("onnx")(), model, x[:1], Path("m_int8.onnx"), opts, max_drop=0.01)[0]  # doctest: +SKIP
        {'max_drop': 0.01, 'units': 17, 'float_modules': ['net.conv_stem', ...], 'trials': [...], ...}
    """
    calib = options.calibration
    reference = torch_scores(model, calib)
    head = head_module(model)
    units = precision_units(model, skip=[head] if head else [])
    ranked = LazyRanking(model, units, calib, reference, head)
    trials = Path(out).parent / ".mixed-trials"
    reports: dict[tuple[int, str], dict[str, Any]] = {}
    max_diff: dict[tuple[int, str], float] = {}
    float_tol = 1e-4 * max(1.0, float(np.max(np.abs(reference))))   # the fp32 parity tolerance
    target = 1.0 - max_drop
    method = options.advanced.calibration_method or "default"
    start = max(0, min(int(start), len(units)))

    def trial(float_units: list[Unit], how: str) -> float:
        k = len(float_units)
        scores, reports[k, how] = quantise_and_score(
            backend, model, example, trials / f"{how}-k{k}" / Path(out).name, options, calib,
            threads=threads, float_modules=tuple(m for u in float_units for m in u), calibration_method=how,
            trial_cache=trials / "cache")
        max_diff[k, how] = float(np.max(np.abs(scores - reference)))
        return _srcc(scores, reference)

    (trials / "cache").mkdir(parents=True, exist_ok=True)   # calibration statistics a backend reuses across trials
    try:
        method, method_trials, known = _choose_method(trial, ranked[:start], methods, target) if methods else (
            method, [], {})
        float_units, history = search_float_units(lambda f: trial(f, method), ranked, target, start=start,
                                                  known=known)
        history = [{"float_units": start, "srcc": round(v, 5)} for v in known.values()] + history
        k = len(float_units)
        if k < len(units) and max_diff[k, method] <= float_tol:
            raise ExportError(
                f"accuracy control: the {len(units) - k} block(s) left in int8 do not change the "
                f"scores (max |d| {max_diff[k, method]:.1e} vs fp32 on the calibration images): no block "
                f"that int8 touches stays within SRCC drop {max_drop:g}; this model does not quantise: keep fp32, "
                "allow a larger --accuracy-control, or retrain it")
        if k == len(units):
            partial = [t for t in history if t["float_units"] < len(units)]
            best = max(partial, key=lambda t: t["srcc"]) if partial else None
            tried = (f"best with some int8: {best['float_units']} of {len(units)} blocks float, SRCC "
                     f"{best['srcc']:.4f}" if best else "only all-float was tried")
            raise ExportError(
                f"accuracy control: no block can stay int8 within SRCC drop {max_drop:g} vs fp32 ({tried}); this "
                "model does not quantise: keep fp32, allow a larger --accuracy-control, or retrain it")
        for f in artifact_files(backend, trials / f"{method}-k{k}" / Path(out).name):
            os.replace(f, Path(out).parent / f.name)
    finally:
        shutil.rmtree(trials, ignore_errors=True)
    return {"max_drop": float(max_drop), "metric": "srcc_vs_fp32 on the calibration images", "units": len(units),
            "float_units": [label(u) for u in float_units], "float_modules": [m for u in float_units for m in u],
            "int8_units": len(units) - len(float_units),
            "ranking": None if ranked.ranking is None else [
                {"unit": label(u), "simulated_srcc_if_float": round(v, 5)} for u, v in ranked.ranking],
            "trials": history}, reports[k, method], method, method_trials


def _choose_method(trial: Callable[[list[Unit], str], float], float_units: list[Unit], methods: Sequence[str],
                   target: float) -> tuple[str, list[dict[str, Any]], dict[int, float]]:
    """Try each calibration method with ``float_units`` in float; the first reaching ``target`` wins, else
    the best. Returns ``(method, trials, {len(float_units): its SRCC})``."""
    from edgefiq.export.autocal import try_methods  # cycle: export.autocal imports this module at its top

    method, srcc, _, tried = try_methods(methods, lambda how: (trial(float_units, how), None), target,
                                         float_units=len(float_units))
    return method, tried, {len(float_units): srcc}
