"""``benchmark``: load, time and (optionally) check the accuracy of artifacts, one row per setting.

Every backend goes through the same path: ``load`` (timed) -> ``edgefiq.timing.
time_callable`` on a fixed random batch preprocessed like a real image -> row. Rows
carry artifact size (all files of the artifact, e.g. OpenVINO ``.bin`` and ONNX external
data, sidecar excluded), load time, first-inference time, p50/p90/p99 latency,
throughput (images/s at the median), and the peak resident memory of the benchmark
process so far (``edgefiq.timing.peak_rss_mb``: it only grows, so later rows include
earlier loads; ``benchmark_isolated`` / ``--isolate`` runs one process per artifact).

Status per row: ``ok``; ``ok (unverified)`` (exported with ``--no-verify``);
``failed validation`` (the sidecar's parity check failed: the artifact runs but does not
score like its source); ``failed`` (with ``reason``: load or inference error);
``unavailable`` (with ``reason``: e.g. ``--device cuda`` without a GPU: no number is made up).

Torch-free for exported artifacts. Accuracy columns (``srcc`` vs a reference CSV,
``pauc_x1e3``) need ``images`` and ``reference`` (and embeddings/an FR model for pAUC).

Example:
    >>> rows = benchmark(["m.onnx", "m.xml"], threads=(1, 2), batches=(1, 8))   # doctest: +SKIP
    >>> rows[0]["p50_ms"]                                                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgefiq import __version__
from edgefiq.bench.devices import gpu_unavailable_reason, load_gpu_model
from edgefiq.data.readers import list_images, read_label_map, relpaths, source_index_of
from edgefiq.errors import EdgefiqError, UsageError
from edgefiq.eval.core import read_embeddings
from edgefiq.eval.sources import EvalSet, QualitySource, embed_images
from edgefiq.export.base import artifact_files, meta_path, package_versions, read_meta
from edgefiq.registry import BACKENDS
from edgefiq.runtime.model import load_model
from edgefiq.runtime.score import score_paths
from edgefiq.timing import peak_rss_mb, time_callable

log = logging.getLogger("edgefiq.bench")

DEVICES = ("cpu", "cuda")


def artifact_size_bytes(path: str | Path, backend_name: str | None = None) -> int:
    """Bytes of every file the artifact consists of (sidecar excluded)."""
    p = Path(path)
    files = artifact_files(BACKENDS.get(backend_name)(), p) if backend_name in BACKENDS.names() else [p]
    return int(sum(f.stat().st_size for f in dict.fromkeys(files) if f.is_file()))


def parity_status(meta: dict[str, Any] | None) -> tuple[str, str]:
    """``(status, reason)`` from a sidecar's parity record."""
    if not meta:
        return "ok (unverified)", "no sidecar"
    par = meta.get("parity") or {}
    if par.get("verified") is False:
        return "ok (unverified)", str(par.get("reason", "not verified"))
    if par.get("passed") is False:
        return "failed validation", "parity vs source failed at export"
    if par.get("passed") is True:
        return "ok", ""
    return "ok (unverified)", "no parity record"


def _load(path: Path, device: str, threads: int) -> Any:
    if device == "cpu":
        return load_model(path, threads=threads)

    return load_gpu_model(path, threads=threads)


def _example_batch(preprocess: Any, batch: int, seed: int = 0) -> np.ndarray:
    h, w = preprocess.size
    imgs = np.random.default_rng(seed).integers(0, 256, size=(batch, h, w, 3), dtype=np.uint8)
    return preprocess.nchw().batch(list(imgs))


def _base_row(path: Path, device: str, threads: int, batch: int) -> dict[str, Any]:
    return {"artifact": path.name, "path": str(path), "backend": "", "precision": "", "device": device,
            "threads": threads, "batch": batch, "status": "", "reason": ""}


def benchmark(artifacts: Sequence[str | Path], *, threads: Sequence[int] = (1,), batches: Sequence[int] = (1,),
              device: str = "cpu", warmup: int = 5, min_runs: int = 30, min_time_s: float = 1.0,
              images: str | Path | None = None, reference: str | Path | None = None,
              fr_model: str | Path | None = None, embeddings: str | Path | None = None,
              embeddings_index: str | Path | None = None, fmr: float = 1e-3, limit: float = 0.3,
              max_images: int | None = None, rounds: int = 1) -> list[dict[str, Any]]:
    """Benchmark every artifact at every (threads, batch) on one device.

    Args:
        artifacts: exported artifacts (with sidecars) or edgefiq ``.pt`` checkpoints.
        threads, batches: settings to sweep.
        device: ``cpu`` or ``cuda`` (GPU rows are ``unavailable`` where no GPU/provider exists).
            ``ssh://`` devices go through ``edgefiq.bench.remote.benchmark_remote``.
        warmup, min_runs, min_time_s: timing protocol (``edgefiq.timing``).
        images, reference: accuracy: score ``images`` and correlate with the ``path,quality``
            CSV ``reference`` (SRCC).
        fr_model, embeddings, embeddings_index: add pAUC x1e3 (identity folders of ``images``).
        fmr, limit: EDC settings for the pAUC column (fixed-threshold convention).
        max_images: score at most this many images (sorted) for the accuracy columns.
        rounds: split the timing into this many interleaved rounds (every artifact in turn, then
            again), each with ``min_time_s / rounds`` and ``min_runs / rounds``; ``p50_ms`` is the
            median of the rounds' medians (see :func:`merge_rounds`). A busy spell on a shared
            machine then hits one round of every artifact instead of every run of one artifact.

    Returns:
        One dict per (artifact, threads, batch).

    Example:
        >>> benchmark(["student.onnx"], threads=(1,), batches=(1,), min_time_s=0.2)[0]["status"]   # doctest: +SKIP
        'ok'
    """
    if device not in DEVICES:
        raise UsageError(f"--device must be cpu, cuda or ssh://user@host[:port], got {device!r}")
    if rounds != 1:
        return _in_rounds(benchmark, artifacts, rounds, dict(
            threads=threads, batches=batches, device=device, warmup=warmup, min_runs=min_runs, min_time_s=min_time_s,
            fmr=fmr, limit=limit, images=images, reference=reference, fr_model=fr_model, embeddings=embeddings,
            embeddings_index=embeddings_index, max_images=max_images))
    if (images is None) != (reference is None) or (images is None and (fr_model or embeddings)):
        raise UsageError("accuracy columns need --images DIR and --reference scores.csv (plus --fr-model/--embeddings for pAUC)")
    accuracy_ctx = _AccuracyContext.build(images, reference, fr_model, embeddings, embeddings_index,
                                          fmr, limit, max_images) if images is not None else None
    rows: list[dict[str, Any]] = []
    for art in artifacts:
        path = Path(art)
        meta = _read_meta_dict(path)
        status, reason = parity_status(meta) if path.suffix not in (".pt", ".pth") else ("ok (unverified)", "checkpoint")
        acc: dict[str, Any] = {}
        for th in threads:
            for bs in batches:
                row = _base_row(path, device, th, bs)
                row.update(backend=(meta or {}).get("backend", "checkpoint" if path.suffix in (".pt", ".pth") else ""),
                           precision=(meta or {}).get("precision", ""))
                try:
                    row["size_mb"] = artifact_size_bytes(path, row["backend"]) / 1e6 if path.exists() else None
                    if device == "cuda":
                        why = gpu_unavailable_reason(row["backend"] or "onnx")
                        if why:
                            row.update(status="unavailable", reason=why)
                            rows.append(row)
                            continue
                    t0 = time.perf_counter_ns()
                    model = _load(path, device, th)
                    row["load_ms"] = (time.perf_counter_ns() - t0) / 1e6
                    row.update(backend=model.backend, precision=model.precision)
                    x = _example_batch(model.preprocess, bs)
                    row.update(time_callable(lambda: model.score_batch(x), warmup=warmup, min_runs=min_runs,
                                             min_time_s=min_time_s, batch=bs))
                    if accuracy_ctx is not None and not acc:
                        acc = accuracy_ctx.evaluate(model)
                    row.update(acc)
                    row.update(status=status, reason=reason)
                except Exception as e:  # a runtime crash is a result of the benchmark, not of edgefiq
                    row.update(status="failed", reason=_failure_reason(e))
                row["peak_rss_mb"] = peak_rss_mb()
                rows.append(row)
                log.info("[bench] %s threads=%d batch=%d: %s", path.name, th, bs, _p50_text(row))
    return rows


def _p50_text(row: dict[str, Any]) -> str:
    """A bench row's log result: ``p50 0.784 ms`` (3 significant digits, the status after it unless ok), or
    the status alone when nothing was timed.

    Example:
        >>> _p50_text({"p50_ms": 0.6420954999999999, "status": "ok"}), _p50_text({"status": "unavailable"})
        ('p50 0.642 ms', 'unavailable')
    """
    p50, status = row.get("p50_ms"), row["status"]
    if not isinstance(p50, (int, float)):
        return status
    return f"p50 {p50:.3g} ms" + ("" if status == "ok" else f" ({status})")


def _failure_reason(e: Exception) -> str:
    """One line for a failed row: an edgefiq error's own message, else the exception type and first line."""
    if isinstance(e, EdgefiqError):
        return str(e).splitlines()[0][:200]
    return f"{type(e).__name__}: {str(e).splitlines()[0][:180] if str(e) else ''}"


def benchmark_isolated(artifacts: Sequence[str | Path], *, rounds: int = 1, **kwargs: Any) -> list[dict[str, Any]]:
    """``benchmark`` with each artifact in a fresh ``python -m edgefiq bench`` process.

    Peak RSS then belongs to one artifact (plus the interpreter), not to everything loaded
    before it. Keyword arguments are those of ``benchmark``. With ``rounds > 1`` every round
    starts a fresh process per artifact (round-robin over the artifacts), so a per-process
    state (thread placement on a 2-core VM) is sampled ``rounds`` times too.

    Example:
        >>> rows = benchmark_isolated(["a.onnx", "b.xml"], threads=(1,))   # doctest: +SKIP
    """
    flags = {"threads": "--threads", "batches": "--batch-size", "device": "--device", "warmup": "--warmup",
             "min_runs": "--min-runs", "min_time_s": "--min-time", "images": "--images", "reference": "--reference",
             "fr_model": "--fr-model", "embeddings": "--embeddings", "embeddings_index": "--embeddings-index"}
    unknown = set(kwargs) - set(flags)
    if unknown:
        raise UsageError(f"isolated benchmark does not support {sorted(unknown)}")
    if rounds != 1:
        return _in_rounds(benchmark_isolated, artifacts, rounds, kwargs)
    args: list[str] = []
    for k, v in kwargs.items():
        if v is None:
            continue
        args += [flags[k], ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, art in enumerate(artifacts):
            out = Path(tmp) / f"{n}.json"
            res = subprocess.run([sys.executable, "-m", "edgefiq", "-q", "bench", str(art), *args, "--no-png",
                                  "-o", str(out)], capture_output=True, text=True)
            if not out.is_file():   # exit code 1 with a report = a failed row, kept as such
                err = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
                rows.append({**_base_row(Path(art), str(kwargs.get("device", "cpu")), 0, 0), "status": "failed",
                             "reason": f"benchmark process failed: {err}"})
                continue
            for r in json.loads(out.read_text())["rows"]:
                r["path"] = str(art)
                r["isolated"] = True
                rows.append(r)
    return rows


_ACCURACY_ARGS = ("images", "reference", "fr_model", "embeddings", "embeddings_index", "max_images")


def _in_rounds(run: Any, artifacts: Sequence[str | Path], rounds: int, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """``run`` (``benchmark`` or ``benchmark_isolated``) ``rounds`` times with 1/rounds of the timing
    budget each, merged by :func:`merge_rounds`. Accuracy does not depend on timing: it is scored
    in the first round only."""
    if rounds < 1:
        raise UsageError(f"--rounds must be >= 1, got {rounds}")
    first = {**kwargs, "min_runs": max(1, -(-int(kwargs.get("min_runs", 30)) // rounds)),
             "min_time_s": float(kwargs.get("min_time_s", 1.0)) / rounds}
    later = {k: v for k, v in first.items() if k not in _ACCURACY_ARGS}
    return merge_rounds([run(artifacts, **(first if r == 0 else later)) for r in range(rounds)])


def merge_rounds(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per setting from per-round rows (same settings, same order in every round).

    ``p50/p90/p99/mean_ms``: median over the rounds of each round's value; ``min_ms``: the
    minimum; ``runs``: the sum; ``first_ms``/``load_ms``: the first round's (a cold start);
    ``p50_rounds_ms``: each round's median, and ``p50_spread``: (max - min) / median of those;
    ``other_cpu``: the mean over the rounds (``other_cpu_rounds``: each round's).
    A row that failed in any round keeps that round's failure.

    Example:
        >>> merge_rounds([[{"p50_ms": 1.0, "runs": 5}], [{"p50_ms": 3.0, "runs": 5}], [{"p50_ms": 2.0, "runs": 5}]])[0]["p50_ms"]
        2.0
    """
    if not rounds:
        return []
    merged: list[dict[str, Any]] = []
    for per in zip(*rounds):
        failed = [r for r in per if "p50_ms" not in r]
        if failed:
            merged.append({**failed[0], "rounds": len(per)})
            continue
        row = dict(per[0])
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
            if all(key in r for r in per):
                row[key] = float(np.median([r[key] for r in per]))
        row["min_ms"] = float(min(r.get("min_ms", r["p50_ms"]) for r in per))
        row["runs"] = int(sum(r.get("runs", 0) for r in per))
        p50s = [float(r["p50_ms"]) for r in per]
        others = [r.get("other_cpu") for r in per]
        if all(o is not None for o in others):
            row.update(other_cpu=float(np.mean(others)), other_cpu_rounds=[float(o) for o in others])
        row.update(rounds=len(per), p50_rounds_ms=p50s,
                   p50_spread=float((max(p50s) - min(p50s)) / row["p50_ms"]) if row["p50_ms"] > 0 else 0.0)
        if "throughput" in row and row["p50_ms"] > 0:
            row["throughput"] = float(row.get("batch", 1) * 1000.0 / row["p50_ms"])
        if any("peak_rss_mb" in r for r in per):
            row["peak_rss_mb"] = max(float(r.get("peak_rss_mb", 0.0)) for r in per)
        merged.append(row)
    return merged


def _read_meta_dict(path: Path) -> dict[str, Any] | None:
    if not meta_path(path).is_file():
        return None
    try:
        return read_meta(path).to_dict()
    except EdgefiqError:
        return None


class _AccuracyContext:
    """Images, reference scores and (optionally) comparisons shared by every artifact."""

    def __init__(self, paths: list[Path], rels: list[str], ref: np.ndarray, evalset: EvalSet, fmr: float,
                 limit: float):
        self.paths, self.rels, self.ref, self.evalset, self.fmr, self.limit = paths, rels, ref, evalset, fmr, limit

    @classmethod
    def build(cls, images: Any, reference: Any, fr_model: Any, embeddings: Any, embeddings_index: Any,
              fmr: float, limit: float, max_images: int | None) -> "_AccuracyContext":
        if reference is None:
            raise UsageError("accuracy columns need --reference scores.csv (path,quality)")
        root = Path(images)
        all_rels = relpaths(list_images(root), root)
        ref_map = read_label_map(reference)
        rels = [r for r in all_rels if r in ref_map]
        emb_map = read_embeddings(embeddings, embeddings_index, all_rels) if embeddings is not None else None
        if emb_map is not None:
            rels = [r for r in rels if r in emb_map]
        if max_images:
            rels = rels[:max_images]
        if len(rels) < 2:
            raise UsageError(f"{reference}: fewer than 2 images of {root} have a reference score")
        es = EvalSet(rels)
        if emb_map is not None or fr_model is not None:
            if emb_map is not None:
                emb = np.stack([emb_map[r] for r in rels])
            else:
                emb, _ = embed_images(fr_model, [root / r for r in rels], 64)
            # copies of one photo (a degraded set's index.csv records them) are not verification attempts
            es = EvalSet.build(emb, rels, same_source=source_index_of(root))
        return cls([root / r for r in rels], rels, np.array([ref_map[r] for r in rels]), es, fmr, limit)

    def evaluate(self, model: Any) -> dict[str, Any]:
        kept, q = score_paths(model, self.paths, relpaths=self.rels, batch_size=32, desc="accuracy")
        if len(kept) != len(self.paths):
            raise EdgefiqError("some accuracy images could not be read")
        res = self.evalset.evaluate([QualitySource("reference", self.ref), QualitySource("model", q)],
                                    fmrs=[self.fmr], limit=self.limit, edc_sources={"model"})
        out: dict[str, Any] = {"srcc": res.correlation("reference", "model"), "n_images": len(q)}
        if self.evalset.comparisons is not None:
            out["pauc_x1e3"] = res.row("model", self.fmr, "fixed")["pauc_x1e3"]
        return out


def select_artifacts(paths: Sequence[str | Path]) -> list[str]:
    """The benchmarkable files among ``paths``: drops sidecars and an artifact's companion files.

    ``edgefiq bench export/*`` expands to ``student.onnx student.onnx.json student.xml
    student.bin ...``; the ``.json`` sidecars, the OpenVINO ``.bin`` weights next to their
    ``.xml`` and ONNX external ``.data`` files are parts of an artifact, not artifacts.

    Raises:
        UsageError: a path that does not exist; nothing left to benchmark.

    Example:
        >>> select_artifacts(["m.onnx", "m.onnx.json", "report.md"])
        ['m.onnx']
    """
    kept = []
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"artifact not found: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    for p in map(Path, paths):
        companion = p.suffix == ".bin" and p.with_suffix(".xml").is_file()
        external = p.suffix == ".data" or p.name.endswith(".onnx_data")
        if p.suffix in (".json", ".md", ".png", ".csv", ".txt") or companion or external:
            log.debug("[bench] skipping %s (not an artifact)", p)
            continue
        kept.append(str(p))
    if not kept:
        raise UsageError("no artifact to benchmark among the given files (sidecars .json, .bin weights, "
                         "reports are skipped); pass .onnx, .xml, .tflite, .ts or .pt files")
    return kept


def failed_rows(rows: list[dict[str, Any]]) -> list[str]:
    """One message per row whose status is ``failed`` or ``failed validation`` (bench exits 1 on any).

    Example:
        >>> failed_rows([{"artifact": "m.onnx", "threads": 1, "batch": 1, "status": "failed", "reason": "x"}])
        ['m.onnx threads=1 batch=1: failed (x)']
    """
    return [f"{r['artifact']} threads={r['threads']} batch={r['batch']}: {r['status']}"
            + (f" ({r['reason']})" if r.get("reason") else "")
            for r in rows if str(r.get("status", "")).startswith("failed")]


FLOOR_METRICS = ("throughput", "srcc")   # the row metrics where higher is better: what `--floor` can bound


def check_floors(rows: list[dict[str, Any]], floors: dict[str, float]) -> list[str]:
    """Violations of ``metric >= value`` floors (a row without the metric violates it)."""
    bad = []
    for r in rows:
        for k, v in floors.items():
            got = r.get(k)
            if not isinstance(got, (int, float)) or not np.isfinite(got) or got < v:
                bad.append(f"{r['artifact']} threads={r['threads']} batch={r['batch']}: {k}={got} < {v}"
                           + (f" ({r['status']}: {r['reason']})" if r.get("status", "").startswith(("failed", "unavail")) else ""))
    return bad


def environment() -> dict[str, Any]:
    """Host facts recorded with every benchmark."""
    return {"host": platform.node(), "machine": platform.machine(), "processor": platform.processor(),
            "python": platform.python_version(), "cpus": os.cpu_count(), "edgefiq": __version__,
            "versions": package_versions("onnxruntime", "openvino", "ai-edge-litert", "torch", "numpy")}
