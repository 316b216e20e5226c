"""Rho sweeps: prune a checkpoint at several ratios and tabulate what each costs and buys.

For every (method, rho) the sweep writes a pruned checkpoint (optionally fine-tuned), exports
it to ONNX fp32 and reports: parameters (and non-zero parameters), MACs, checkpoint size
(plus its gzip size, which is where unstructured sparsity shows), ONNX size, onnxruntime
latency at 1 thread (batch 1; all models timed in interleaved rounds so machine load hits
them alike), SRCC of the pruned model's scores against the unpruned model's on
``eval_images``, and the EDC pAUC (x1e3, FMR 1e-3, discard 0.3) when an FR model is given
(identities = first path component of the images).
"""

from __future__ import annotations

import gzip
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.errors import UsageError
from edgefiq.eval.sources import EvalSet, QualitySource, embed_images
from edgefiq.pipeline.recovery import RecoveryConfig, recovery_targets

log = logging.getLogger(__name__)

SWEEP_FMR = 1e-3   # the pAUC column's FMR (discard limit 0.3, fixed threshold: evaluate_sources' defaults)
SWEEP_IMPOSTORS = 200_000   # impostor comparisons sampled: the sweep evaluates every (method, rho) on them

COLUMNS = ["method", "rho", "recovery_epochs", "recovery_kd", "recovery_images", "params", "nonzero_params", "macs", "params_reduction",
           "macs_reduction", "sparsity", "ckpt_mb", "gzip_mb", "onnx_mb", "latency_ms", "latency_ratio",
           "latency_min_ms", "latency_min_ratio",
           "srcc_vs_unpruned", "pauc_x1e3"]


def parse_rhos(spec: str) -> list[float]:
    """``"0.1:0.9:0.1"`` (start:stop:step, inclusive) or ``"0.3,0.5"`` -> list of ratios.

    Example:
        >>> parse_rhos("0.1:0.5:0.2")
        [0.1, 0.3, 0.5]
        >>> parse_rhos("0.4")
        [0.4]
    """
    try:
        if ":" in spec:
            start, stop, step = (float(v) for v in spec.split(":"))
            if step <= 0:
                raise ValueError
            n = int(np.floor((stop - start) / step + 1e-9)) + 1
            out = [round(start + i * step, 6) for i in range(n)]
        else:
            out = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--rho {spec!r}: give a ratio (0.5), a list (0.3,0.5) or a range start:stop:step") from None
    bad = [r for r in out if not 0.0 <= r < 1.0]
    if not out or bad:
        raise UsageError(f"--rho {spec!r}: ratios must be in [0, 1)")
    return out


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep and how to measure it.

    Attributes:
        rhos: pruning ratios.
        methods: any of ``structured``, ``l1``, ``random``.
        prune: extra ``prune_model`` keywords (importance, scope, round_to, ...).
        recovery: fine-tuning per pruned model (``epochs=0`` = none).
        eval_images: images scored for SRCC vs the unpruned model (and pAUC); ``None`` = no accuracy columns.
        max_eval_images: cap (a seeded sample) on the number of evaluation images.
        fr_model: FR model for pAUC (``edgefiq.models.fr.load_fr_model``).
        latency_rounds, latency_runs: interleaved timing rounds x timed runs per round.
        keep_artifacts: keep pruned checkpoints and ONNX files (else only the table is kept).
    """

    rhos: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    methods: tuple[str, ...] = ("structured",)
    prune: dict[str, Any] = field(default_factory=dict)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    eval_images: str | None = None
    max_eval_images: int | None = None
    fr_model: str | None = None
    latency_rounds: int = 5
    latency_runs: int = 20
    keep_artifacts: bool = True


def _gzip_mb(path: Path) -> float:
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=6)) / 1e6


def _onnx(ckpt: Path, out_dir: Path) -> Path:
    """fp32 ONNX of a checkpoint through ``edgefiq.export`` (parity-checked)."""
    from edgefiq.export import export_checkpoint

    return export_checkpoint(ckpt, "onnx", out_dir, precision="fp32", name=ckpt.stem,
                             overwrite=True).path


def interleaved_latency(paths: list[Path], *, rounds: int, runs: int) -> list[dict[str, float]]:
    """Batch-1 latency of each ONNX file on onnxruntime with 1 thread, timed in alternating rounds.

    Returns per file ``{"p50_ms": median of the rounds' medians, "min_ms": fastest call}``; on a
    shared machine the minimum is the least load-sensitive figure.

    Example:
        >>> interleaved_latency([Path("a.onnx"), Path("b.onnx")], rounds=3, runs=10)   # doctest: +SKIP
        [{'p50_ms': 3.1, 'min_ms': 2.9}, {'p50_ms': 1.9, 'min_ms': 1.8}]
    """
    from edgefiq.timing import time_callable
    from edgefiq.export.base import load_runner

    runners = []
    for p in paths:
        run, meta = load_runner(p, threads=1)
        h, w = meta.preprocess.size
        x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
        runners.append((run, x))
    p50s: list[list[float]] = [[] for _ in paths]
    mins: list[list[float]] = [[] for _ in paths]
    for _ in range(rounds):
        for k, (run, x) in enumerate(runners):
            t = time_callable(lambda run=run, x=x: run(x), warmup=2, min_runs=runs, min_time_s=0.0)
            p50s[k].append(t["p50_ms"])
            mins[k].append(t["min_ms"])
    return [{"p50_ms": float(np.median(a)), "min_ms": float(np.min(b))} for a, b in zip(p50s, mins)]


class _Accuracy:
    """Scores of the unpruned model and FR comparisons, computed once per sweep."""

    def __init__(self, dense: Any, preprocess: Any, cfg: SweepConfig) -> None:
        from edgefiq.data.readers import list_images, relpaths, source_index_of
        from edgefiq.pipeline.recovery import score_images

        root = Path(cfg.eval_images)  # type: ignore[arg-type]
        if not root.is_dir():
            raise UsageError(f"--eval-images {root}: not a folder")
        paths = list_images(root)
        if cfg.max_eval_images and len(paths) > cfg.max_eval_images:
            keep = np.sort(np.random.default_rng(0).choice(len(paths), cfg.max_eval_images, replace=False))
            paths = [paths[i] for i in keep]
        if len(paths) < 3:
            raise UsageError(f"--eval-images {root}: need at least 3 images, found {len(paths)}")
        self.paths, self.preprocess = paths, preprocess
        self.reference = score_images(dense, paths, preprocess, desc="unpruned")
        self.evalset = EvalSet(relpaths(paths, root))
        if cfg.fr_model:
            emb, _ = embed_images(cfg.fr_model, paths)
            # copies of one photo (a degraded set's index.csv records them) are not verification attempts
            self.evalset = EvalSet.build(emb, self.evalset.rels, same_source=source_index_of(root),
                                         max_impostors=SWEEP_IMPOSTORS, seed=0)

    def _measure(self, q: np.ndarray) -> dict[str, float | None]:
        res = self.evalset.evaluate([QualitySource("unpruned", self.reference), QualitySource("pruned", q)],
                                    fmrs=(SWEEP_FMR,), edc_sources={"pruned"})
        out: dict[str, float | None] = {"srcc_vs_unpruned": res.correlation("unpruned", "pruned")}
        if self.evalset.comparisons is not None:
            out["pauc_x1e3"] = res.row("pruned", SWEEP_FMR, "fixed")["pauc_x1e3"]
        return out

    def evaluate(self, model: Any) -> dict[str, float | None]:
        from edgefiq.pipeline.recovery import score_images

        return self._measure(score_images(model, self.paths, self.preprocess, desc="pruned"))

    def reference_row(self) -> dict[str, float | None]:
        return {**self._measure(self.reference), "srcc_vs_unpruned": 1.0}


def sweep(ckpt: str | Path, out_dir: str | Path, cfg: SweepConfig) -> list[dict[str, Any]]:
    """Prune ``ckpt`` at every (method, rho) of ``cfg``, measure each, write ``sweep.json`` + ``sweep.md``.

    The first row is the unpruned model (rho 0). Rows whose pruning or export fails carry
    ``status="failed"`` and the reason instead of stopping the sweep.

    Returns:
        The table rows (also written to ``out_dir/sweep.json`` and ``out_dir/sweep.md``).

    Example:
        >>> rows = sweep("best.pt", "runs/prune_sweep", SweepConfig(rhos=(0.3, 0.5), methods=("l1",)))  # doctest: +SKIP
    """
    from edgefiq.errors import EdgefiqError
    from edgefiq.models.checkpoint import load_checkpoint
    from edgefiq.pipeline.pruning import example_input, prune_checkpoint
    from edgefiq.prune.common import profile
    from edgefiq.utils import atomic_write_text, write_json

    t0 = time.perf_counter()
    ckpt, out = Path(ckpt), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = load_checkpoint(ckpt)
    x = example_input(base.preprocess.size)
    acc = _Accuracy(base.model, base.preprocess, cfg) if cfg.eval_images else None
    cost = profile(base.model, x)
    ref = {"method": "unpruned", "rho": 0.0, "recovery_epochs": 0, **cost,
           "nonzero_params": sum(int((p != 0).sum()) for p in base.model.parameters()),
           "params_reduction": 0.0, "macs_reduction": 0.0, "ckpt_mb": ckpt.stat().st_size / 1e6,
           "gzip_mb": _gzip_mb(ckpt), "status": "ok", "checkpoint": str(ckpt)}
    if acc is not None:
        ref.update(acc.reference_row())
    rows: list[dict[str, Any]] = [ref]
    onnx_paths: dict[int, Path] = {}
    try:
        onnx_paths[0] = _onnx(ckpt, out / "onnx")
    except EdgefiqError as e:
        ref.update(status="failed", reason=f"onnx export: {e}")
    for method in cfg.methods:
        for rho in cfg.rhos:
            tag = f"{method}_rho{rho:.2f}" + (f"_ft{cfg.recovery.epochs}" if cfg.recovery.epochs else "")
            row: dict[str, Any] = {"method": method, "rho": rho, "recovery_epochs": cfg.recovery.epochs,
                                   "recovery_kd": recovery_targets(cfg.recovery)}
            rows.append(row)
            log.info("[prune sweep] %s", tag)
            try:
                pt = prune_checkpoint(ckpt, out / f"{tag}.pt", rho=rho, method=method, recovery=cfg.recovery,
                                      **cfg.prune)
                ck = load_checkpoint(pt)
                p = ck.pruning or {}
                row.update(params=p["params_after"], macs=p["macs_after"],
                           nonzero_params=sum(int((q != 0).sum()) for q in ck.model.parameters()),
                           params_reduction=p["params_reduction"], macs_reduction=p["macs_reduction"],
                           sparsity=p.get("sparsity"), ckpt_mb=pt.stat().st_size / 1e6, gzip_mb=_gzip_mb(pt),
                           recovery_val_srcc=(p.get("recovery") or {}).get("val_srcc"), checkpoint=str(pt),
                           status="ok")
                if acc is not None:
                    row.update(acc.evaluate(ck.model))
                onnx_paths[len(rows) - 1] = _onnx(pt, out / "onnx")
            except EdgefiqError as e:
                row.update(status="failed", reason=str(e).splitlines()[0][:200])
            except (RuntimeError, ValueError) as e:  # a model torch-pruning cannot handle is a sweep result
                row.update(status="failed", reason=f"{type(e).__name__}: {str(e).splitlines()[0][:180]}")
    if onnx_paths:
        _add_latency(rows, onnx_paths, cfg)
    if not cfg.keep_artifacts:
        shutil.rmtree(out / "onnx", ignore_errors=True)
        for r in rows[1:]:
            if r.get("checkpoint"):
                Path(r["checkpoint"]).unlink(missing_ok=True)
    meta = {"checkpoint": str(ckpt), "arch": base.arch, "input_size": list(base.preprocess.size),
            "eval_images": cfg.eval_images, "n_eval_images": len(acc.paths) if acc else 0,
            "fr_model": cfg.fr_model, "prune": cfg.prune, "recovery": vars(cfg.recovery),
            "latency": f"onnxruntime fp32, 1 thread, batch 1, median of {cfg.latency_rounds} interleaved rounds "
                       f"x {cfg.latency_runs} runs (latency_min: fastest call)", "seconds": round(time.perf_counter() - t0, 1)}
    write_json(out / "sweep.json", {"meta": meta, "rows": rows})
    atomic_write_text(out / "sweep.md", format_markdown(rows, meta))
    return rows


def _add_latency(rows: list[dict[str, Any]], onnx_paths: dict[int, Path], cfg: SweepConfig) -> None:
    """ONNX size and interleaved latency of every exported row, and the ratios to the unpruned row (row 0)."""
    keys = sorted(onnx_paths)
    lat = interleaved_latency([onnx_paths[k] for k in keys], rounds=cfg.latency_rounds, runs=cfg.latency_runs)
    for k, t in zip(keys, lat):
        rows[k].update(latency_ms=t["p50_ms"], latency_min_ms=t["min_ms"], onnx_mb=onnx_paths[k].stat().st_size / 1e6)
    if 0 in onnx_paths:
        for k in keys:
            rows[k]["latency_ratio"] = rows[k]["latency_ms"] / rows[0]["latency_ms"]
            rows[k]["latency_min_ratio"] = rows[k]["latency_min_ms"] / rows[0]["latency_min_ms"]


def _fmt(v: Any, col: str) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if col.endswith("reduction") or col in ("sparsity",):
            return f"{100 * v:.1f}%"
        if col in ("macs",):
            return f"{v / 1e6:.1f}M"
        return f"{v:.4g}"
    if isinstance(v, int) and col in ("params", "nonzero_params", "macs"):
        return f"{v / 1e6:.3f}M"
    return str(v)


def format_markdown(rows: list[dict[str, Any]], meta: dict[str, Any] | None = None, title: str | None = None) -> str:
    """The sweep table as Markdown (one row per model; failed rows show their reason)."""
    cols = [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]
    lines = [f"### {title}", ""] if title else []
    if meta:
        lines += [f"- checkpoint: `{meta.get('checkpoint')}` ({meta.get('arch')}, input {meta.get('input_size')})",
                  f"- latency: {meta.get('latency')}",
                  f"- SRCC/pAUC on {meta.get('n_eval_images')} images of `{meta.get('eval_images')}`"
                  + (f", FR model `{meta['fr_model']}`" if meta.get("fr_model") else ""), ""]
    lines += ["| " + " | ".join(cols) + " | status |", "|" + "---|" * (len(cols) + 1)]
    for r in rows:
        status = r.get("status", "")
        if r.get("reason"):
            status += f": {r['reason']}"
        lines.append("| " + " | ".join(_fmt(r.get(c), c) for c in cols) + f" | {status} |")
    return "\n".join(lines) + "\n"
