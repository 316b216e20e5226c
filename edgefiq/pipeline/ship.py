"""Ship a run's student as a built-in model: artifacts + sidecars + card, as package data.

``build_builtin_model(run_dir, out_root, name)`` reads a finished ``edgefiq run`` folder
(``report.json``, ``eval/``, ``export/``, ``plots/``, ``recipe.yaml``) and writes
``out_root/<name>/`` atomically (a temporary folder renamed at the end):

- the chosen artifacts (default: onnx, openvino and tflite in fp32 and int8), each with its
  sidecar; the sidecar gains ``extra.score_distribution`` (the artifact's scores on the
  run's validation images, ``edgefiq.metrics.thresholds.score_distribution``) and
  ``extra.builtin`` (the model name);
- ``card.json`` and ``card.md`` (``edgefiq.pipeline.card``), and the run's EDC plots;
- in ``card.json["reference"]``: every artifact's scores on ``reference_images`` (generated,
  bit-exact on any machine) and a tolerance per artifact, for the test that the shipped
  files still score as they did when built.

The model chosen by default is the one with the lowest p50 latency among those whose fp32
SRCC against the teacher reaches ``min_srcc`` and whose every requested artifact is ok.

Example:
    >>> build_builtin_model("runs/lfw-full", "edgefiq/runtime/builtin", "edgefiq-lfw")   # doctest: +SKIP
    PosixPath('edgefiq/runtime/builtin/edgefiq-lfw')
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgefiq.errors import DataError, UsageError
from edgefiq.pipeline.records import row_key, score_file, variant

log = logging.getLogger("edgefiq.pipeline")

DEFAULT_KEYS: tuple[str, ...] = ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8", "tflite-fp32",
                                 "tflite-int8")
# reference-score tolerance, x max(1, |score|): fp32 runtimes agree to float rounding; int8 kernels differ
# between CPUs (VNNI or not, ARM) by a few quantisation steps, so its tolerance is a share of the score spread
# (1%-99% of the validation scores). Measured: onnxruntime int8 of edgefiq-lfw-edge on an AMD EPYC without
# VNNI differs from its VNNI build host by 0.255, 7% of the spread; a broken artifact is off by the spread.
FLOAT_ATOL = {"fp32": 1e-4, "fp16": 1e-2}
INT8_SPREAD_SHARE = 0.10
REFERENCE_IMAGES = {"n": 8, "seed": 0}


def artifact_key(row: dict[str, Any]) -> str:
    """The variant of a report row, e.g. ``onnx-int8`` (``edgefiq.pipeline.records.variant``)."""
    return variant(row["target"], row["precision"])


def choose_model(rows: list[dict[str, Any]], keys: Sequence[str], min_srcc: float) -> str:
    """The fastest model whose requested artifacts are all ok and whose fp32 SRCC vs the teacher is >= ``min_srcc``.

    Raises:
        DataError: no model qualifies (the message lists the best SRCC found).

    Example:
        >>> choose_model(report["rows"], DEFAULT_KEYS, 0.85)   # doctest: +SKIP
        'mobilenetv3_small_100/structured-0.3'
    """
    arts = [r for r in rows if r.get("kind") == "artifact"]
    best: tuple[float, str] | None = None
    srccs: dict[str, float] = {}
    for model in dict.fromkeys(r["model"] for r in arts):
        mine = {artifact_key(r): r for r in arts if r["model"] == model}
        fp32 = [r.get("srcc") for r in mine.values() if r["precision"] == "fp32" and r.get("srcc") is not None]
        srccs[model] = max(fp32, default=float("nan"))
        if any(k not in mine or mine[k]["status"] != "ok" for k in keys) or not srccs[model] >= min_srcc:
            continue
        p50 = min(float(mine[k].get("p50_ms") or np.inf) for k in keys)
        if best is None or p50 < best[0]:
            best = (p50, model)
    if best is None:
        top = max(srccs.items(), key=lambda kv: kv[1] if kv[1] == kv[1] else -1, default=("none", float("nan")))
        raise DataError(f"no model has every artifact of {', '.join(keys)} ok and fp32 SRCC >= {min_srcc} "
                        f"(best SRCC: {top[0]} {top[1]:.4f}); pass --model to choose one")
    return best[1]


def validation_scores(run_dir: Path, row: dict[str, Any],
                      val_labels: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(artifact scores, teacher scores, clean-photo mask) on the validation images: the eval stage's score CSV
    if present, else the artifact scores the images of ``val_labels`` (under the run's ``data/images``) now.
    Clean: kind ``clean`` in the data stage's ``index.csv`` (every image when it records no kinds)."""
    from edgefiq.data.readers import kind_index_of

    kinds = kind_index_of(run_dir / "data" / "images") or {}
    from edgefiq.data.readers import read_labels_csv

    images = run_dir / "data" / "images"
    paths, teacher = read_labels_csv(val_labels, images)
    rels = [p.relative_to(images).as_posix() for p in paths]
    cached = run_dir / "eval" / "scores" / score_file(row_key(row))
    if cached.is_file():
        with open(cached, newline="") as f:
            got = {r["path"]: float(r["quality"]) for r in csv.DictReader(f)}
        keep = [k for k, r in enumerate(rels) if r in got]
        clean = np.array([kinds.get(rels[k], "clean") == "clean" for k in keep])
        return np.array([got[rels[k]] for k in keep]), teacher[keep], clean
    from edgefiq.runtime.model import load_model
    from edgefiq.runtime.score import score_paths

    kept, scores = score_paths(load_model(run_dir / row["path"]), paths, desc=f"validation {artifact_key(row)}")
    return scores.astype(np.float64), teacher[kept], np.array([kinds.get(rels[k], "clean") == "clean" for k in kept])


def copy_artifact(run_dir: Path, row: dict[str, Any], dest: Path, stem: str) -> Path:
    """Copy one artifact (all its files, e.g. OpenVINO .xml + .bin) and its sidecar as ``dest/<stem><suffix>``."""
    from edgefiq.export.base import artifact_files, meta_path
    from edgefiq.registry import BACKENDS

    src = run_dir / row["path"]
    backend = BACKENDS.get(row["target"])()
    for f in artifact_files(backend, src):
        shutil.copy2(f, dest / (stem + f.suffix))
    out = dest / (stem + src.suffix)
    shutil.copy2(meta_path(src), meta_path(out))
    return out


def add_to_sidecar(artifact: Path, **extra: Any) -> None:
    """Merge ``extra`` into the ``extra`` mapping of an artifact's sidecar."""
    from edgefiq.export.base import meta_path
    from edgefiq.runtime.sidecar import read_meta
    from edgefiq.utils import write_json

    meta = read_meta(artifact)
    meta.extra.update(extra)
    write_json(meta_path(artifact), meta.to_dict())


def reference_record(artifact: Path, precision: str, dist: dict[str, Any]) -> dict[str, Any]:
    """Scores of the artifact on the generated reference images, with the tolerance a re-run must meet."""
    from edgefiq.runtime.builtin_models import reference_images
    from edgefiq.runtime.model import load_model

    qm = load_model(artifact, threads=1)
    imgs = reference_images(REFERENCE_IMAGES["n"], tuple(qm.preprocess.size), REFERENCE_IMAGES["seed"])
    scores = qm.score_arrays(imgs, batch_size=1).astype(np.float64)
    scale = max(1.0, float(np.abs(scores).max()))
    spread = float(np.interp(0.99, dist["levels"], dist["quantiles"]) - np.interp(0.01, dist["levels"], dist["quantiles"]))
    atol = FLOAT_ATOL[precision] * scale if precision in FLOAT_ATOL else max(INT8_SPREAD_SHARE * spread, 1e-4 * scale)
    return {"scores": [float(s) for s in scores], "atol": atol}


def budget_keys(rows: dict[str, dict[str, Any]], max_mb: float) -> list[str]:
    """The artifacts to ship within ``max_mb``: every int8 artifact (small; the fast ones on ARM and VNNI
    CPUs), then the others fastest first while the total size stays within the budget.

    Example:
        >>> budget_keys({"onnx-fp32": {"size_bytes": 6e6, "p50_ms": 1.0}, "onnx-int8": {"size_bytes": 2e6},
        ...              "tflite-fp32": {"size_bytes": 6e6, "p50_ms": 0.8}}, 10.0)
        ['onnx-int8', 'tflite-fp32']
    """
    chosen = [k for k in rows if k.endswith("-int8")]
    used = sum(float(rows[k].get("size_bytes") or 0) for k in chosen)
    for k in sorted((k for k in rows if k not in chosen), key=lambda k: float(rows[k].get("p50_ms") or np.inf)):
        size = float(rows[k].get("size_bytes") or 0)
        if used + size <= max_mb * 1e6:
            chosen.append(k)
            used += size
    return chosen


def _model_rows(report: dict[str, Any], model: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    mine = {artifact_key(r): r for r in report["rows"] if r.get("kind") == "artifact" and r["model"] == model}
    missing = [k for k in keys if k not in mine]
    if missing:
        raise UsageError(f"model {model!r} has no artifact {', '.join(missing)} in the report "
                         f"(has: {', '.join(mine) or 'none'})")
    bad = [f"{k}: {mine[k]['status']}" for k in keys if mine[k]["status"] != "ok"]
    if bad:
        raise DataError(f"model {model!r}: not every artifact is ok ({'; '.join(bad)})")
    return {k: mine[k] for k in keys}


def build_builtin_model(run_dir: str | Path, out_root: str | Path, name: str, *, model: str | None = None,
                        keys: Sequence[str] | None = None, val_labels: str | Path | None = None,
                        min_srcc: float = 0.0, max_mb: float = 10.0, min_speedup: float = 0.0,
                        make_default: bool = True,
                        card_options: dict[str, Any] | None = None) -> Path:
    """Write the built-in model folder ``out_root/name`` from a finished run (module docstring).

    Args:
        run_dir: an ``edgefiq run`` folder with report.json (every requested artifact ok).
        out_root: the built-in root, e.g. ``edgefiq/runtime/builtin``.
        name: folder and model name (``builtin:<name>``).
        model: report model name (e.g. ``mobilenetv3_small_100/structured-0.3``); default: ``choose_model``.
        keys: artifacts to ship, ``<target>-<precision>``. None: every one of ``DEFAULT_KEYS`` must be ok,
            and ``budget_keys`` picks those that fit in ``max_mb``.
        val_labels: validation label CSV (default: the run's ``label/val.csv``).
        min_srcc: refuse a model whose fp32 SRCC vs the teacher is lower.
        max_mb: refuse a folder larger than this.
        min_speedup: refuse when no shipped artifact is this many times faster than the teacher on its
            runtime (report column ``speedup``: teacher p50 / artifact p50, 1 thread).
        make_default: write ``out_root/DEFAULT`` so the model is the default built-in one.
        card_options: overrides of the card text (``edgefiq.pipeline.card.CARD_DEFAULTS``).

    Raises:
        DataError: missing run files, an artifact not ok, SRCC below ``min_srcc``, too large.

    Example:
        >>> build_builtin_model("runs/lfw-full", "edgefiq/runtime/builtin", "edgefiq-lfw",   # doctest: +SKIP
        ...                     min_srcc=0.85)
    """
    from edgefiq.metrics import srcc
    from edgefiq.metrics.thresholds import score_distribution
    from edgefiq.pipeline.card import make_card, write_card

    run, root = Path(run_dir), Path(out_root)
    if not (run / "report.json").is_file():
        raise DataError(f"{run}: no report.json; run `edgefiq run RECIPE -o {run}` first")
    report = json.loads((run / "report.json").read_text())
    model = model or choose_model(report["rows"], keys or DEFAULT_KEYS, min_srcc)
    rows = _model_rows(report, model, keys or DEFAULT_KEYS)
    if keys is None:
        rows = {k: rows[k] for k in budget_keys(rows, max_mb)}
    best = max((float(r.get("speedup") or 0.0) for r in rows.values()), default=0.0)
    if best < min_speedup:
        raise DataError(f"{model}: fastest speed-up over the teacher {best:.1f}x < {min_speedup:g}x "
                        "(0 = no teacher latency in the report)")
    labels = Path(val_labels) if val_labels else run / "label" / "val.csv"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shipped: dict[str, dict[str, Any]] = {}
    for key, row in rows.items():
        scores, teacher, clean = validation_scores(run, row, labels)
        agreement = float(srcc(scores, teacher))
        if row["precision"] == "fp32" and agreement < min_srcc:
            raise DataError(f"{model} {key}: validation SRCC vs teacher {agreement:.4f} < {min_srcc}")
        path = copy_artifact(run, row, tmp, f"{name}_{key.replace('-', '_')}")
        dist, dist_clean = score_distribution(scores), score_distribution(scores[clean]) if clean.any() else None
        add_to_sidecar(path, score_distribution=dist, score_distribution_clean=dist_clean, builtin=name)
        shipped[key] = {"row": row, "path": path, "distribution": dist, "distribution_clean": dist_clean,
                        "srcc": agreement,
                        "reference": reference_record(path, row["precision"], dist)}
    card = make_card(name, model, report, run, shipped, REFERENCE_IMAGES, card_options or {})
    if card["size_bytes"] > max_mb * 1e6:
        shutil.rmtree(tmp)
        raise DataError(f"{name}: {card['size_bytes'] / 1e6:.1f} MB of artifacts > {max_mb} MB; ship fewer --artifacts")
    write_card(tmp, card, run)
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    if make_default:
        from edgefiq.utils import atomic_write_text

        atomic_write_text(root / "DEFAULT", name + "\n")
    log.info("built-in model %s (%s) -> %s", name, model, final)
    return final
