"""How well a face detector finds the annotated face and its 5 landmarks, and how fast it runs.

``evaluate_detector`` runs a ``FaceDetector`` on every image under a folder that has a line in a
landmarks TSV and reports:

- detection rate: share of images with a detected face whose landmarks lie within half an
  inter-ocular distance of the given ones (mean point error, ``HIT_NME``); that face is the
  *matched* one;
- landmark error of the matched face, normalised by the given inter-ocular distance (mean, p95);
- mean absolute pixel difference (0..1) between the 112x112 crops aligned from the matched face's
  landmarks and from the given ones (``edgefiq.data.align.align_face``);
- for each face-selection rule (``largest``, ``center``, ``score``): how often it picks the
  matched face, and the landmark error of the face it picks.

``time_detector`` gives the detector's latency per image (``edgefiq.timing.time_callable``).

Example:
    >>> from edgefiq.runtime.detect import onnx_face_detector
    >>> rep = evaluate_detector(onnx_face_detector(threads=1), "raw_sample/", "landmarks.tsv")  # doctest: +SKIP
    >>> rep["detection_rate"] >= 0.99                                                          # doctest: +SKIP
    True
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgefiq.data.align import align_face, read_landmarks_tsv
from edgefiq.data.detect import FACE_RULES, FaceDetector, Faces
from edgefiq.data.images import load_image
from edgefiq.data.readers import list_images, relpaths
from edgefiq.errors import DataError
from edgefiq.timing import time_callable

#: A detected face "is" the annotated one when its mean landmark error is below half an inter-ocular distance.
HIT_NME = 0.5


def landmark_nme(pred: np.ndarray, given: np.ndarray) -> float:
    """Mean point-to-point distance between two ``(5, 2)`` landmark sets over the given eyes' distance.

    Example:
        >>> g = np.array([[0, 0], [10, 0], [5, 5], [2, 8], [8, 8]], float)
        >>> landmark_nme(g + [1, 0], g)
        0.1
    """
    given = np.asarray(given, np.float64).reshape(5, 2)
    iod = float(np.linalg.norm(given[1] - given[0]))
    return float(np.linalg.norm(np.asarray(pred, np.float64).reshape(5, 2) - given, axis=1).mean() / max(iod, 1e-9))


def _image_row(rel: str, img: np.ndarray, faces: Faces, given: np.ndarray) -> dict[str, Any]:
    """Per-image facts: faces found, matched face and its error, crop difference, each rule's pick."""
    errs = [landmark_nme(faces.landmarks[k], given) for k in range(len(faces))]
    best = int(np.argmin(errs)) if errs else None
    hit = best is not None and errs[best] <= HIT_NME
    row: dict[str, Any] = {"path": rel, "faces": len(faces), "hit": hit,
                           "nme": errs[best] if hit else None, "crop_mad": None}
    if hit:
        a = align_face(img, faces.landmarks[best]).astype(np.float64)
        row["crop_mad"] = float(np.abs(a - align_face(img, given).astype(np.float64)).mean() / 255.0)
    for rule in FACE_RULES:
        k = faces.pick(rule, img.shape[:2])
        row[f"{rule}_is_match"] = bool(hit and k == best)
        row[f"{rule}_nme"] = errs[k] if k is not None else None
    return row


def _stats(values: Sequence[float | None]) -> dict[str, float | None]:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if not v.size:
        return {"mean": None, "p95": None, "max": None}
    return {"mean": float(v.mean()), "p95": float(np.percentile(v, 95)), "max": float(v.max())}


def evaluate_detector(detector: FaceDetector, images_root: str | Path, landmarks_tsv: str | Path,
                      limit: int | None = None) -> dict[str, Any]:
    """Detection rate, landmark error and crop difference of ``detector`` against given landmarks.

    Args:
        detector: any ``FaceDetector`` (torch or onnxruntime nets).
        images_root: folder of raw images; only images with a line in ``landmarks_tsv`` count.
        landmarks_tsv: ``relpath<TAB>x1 y1 .. x5 y5`` in the raw images' pixel coordinates.
        limit: evaluate only the first ``limit`` images (sorted by path).

    Returns:
        ``{"n_images", "detection_rate", "nme": {mean, p95, max}, "crop_mad": {...}, "rules": {rule:
        {"picks_match", "nme": {...}}}, "rows": [per-image dicts], "seconds"}``.

    Example:
        >>> evaluate_detector(det, "raw_sample/", "landmarks.tsv")["nme"]["mean"]   # doctest: +SKIP
        0.04
    """
    root = Path(images_root)
    marks = read_landmarks_tsv(landmarks_tsv)
    paths = list_images(root)
    pairs = [(p, r) for p, r in zip(paths, relpaths(paths, root)) if r in marks][:limit]
    if not pairs:
        raise DataError(f"{landmarks_tsv}: no line matches an image under {root}")
    t0 = time.perf_counter()
    rows = []
    for p, rel in pairs:
        img = load_image(p)
        rows.append(_image_row(rel, img, detector.detect(img), marks[rel]))
    n = len(rows)
    rules = {rule: {"picks_match": sum(r[f"{rule}_is_match"] for r in rows) / n,
                    "nme": _stats([r[f"{rule}_nme"] for r in rows])} for rule in FACE_RULES}
    return {"n_images": n, "detection_rate": sum(r["hit"] for r in rows) / n,
            "nme": _stats([r["nme"] for r in rows]), "crop_mad": _stats([r["crop_mad"] for r in rows]),
            "rules": rules, "rows": rows, "seconds": time.perf_counter() - t0}


def detector_agreement(a: FaceDetector, b: FaceDetector, images: Sequence[np.ndarray]) -> dict[str, float]:
    """How far two detectors (e.g. torch and onnxruntime nets) disagree on the same images.

    Returns the share of images with the same number of faces, and over those the largest absolute
    difference of boxes and landmarks (pixels) and of scores.

    Example:
        >>> detector_agreement(torch_det, onnx_det, imgs)["same_count"]   # doctest: +SKIP
        1.0
    """
    same, box, mark, score = 0, 0.0, 0.0, 0.0
    for img in images:
        fa, fb = a.detect(img), b.detect(img)
        if len(fa) != len(fb):
            continue
        same += 1
        if len(fa):
            box = max(box, float(np.abs(fa.boxes - fb.boxes).max()))
            mark = max(mark, float(np.abs(fa.landmarks - fb.landmarks).max()))
            score = max(score, float(np.abs(fa.scores - fb.scores).max()))
    return {"images": len(images), "same_count": same / max(len(images), 1), "max_box_px": box,
            "max_landmark_px": mark, "max_score": score}


def time_detector(detector: FaceDetector, images: Sequence[np.ndarray], *, min_runs: int = 20,
                  min_time_s: float = 5.0) -> dict[str, Any]:
    """Latency of ``detector.detect`` per image, cycling through ``images``, with the load average.

    Returns ``time_callable``'s summary plus ``loadavg_before``/``loadavg_after`` (1-minute
    ``os.getloadavg``): other processes on the machine slow every timing.

    Example:
        >>> time_detector(det, imgs[:10])["p50_ms"]   # doctest: +SKIP
        45.1
    """
    cycle = itertools.cycle(images)
    before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t = time_callable(lambda: detector.detect(next(cycle)), warmup=2, min_runs=min_runs, min_time_s=min_time_s)
    after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {**t, "loadavg_before": before, "loadavg_after": after}


def _f(v: float | None, fmt: str = ".4f") -> str:
    return "n/a" if v is None else format(v, fmt)


def detect_markdown(report: dict[str, Any]) -> str:
    """``results/detect.md`` from ``{"accuracy": evaluate_detector(...), "agreement": ..., "latency": {...},
    "env": {...}, "targets": {...}}`` (the dict ``tools/bench_detect.py`` writes as JSON).

    Example:
        >>> print(detect_markdown(report))   # doctest: +SKIP
    """
    acc, tg = report["accuracy"], report["targets"]
    ok = {"rate": acc["detection_rate"] >= tg["detection_rate"],
          "nme": (acc["nme"]["mean"] or 1e9) <= tg["nme_mean"], "mad": (acc["crop_mad"]["mean"] or 1e9) <= tg["crop_mad"]}
    lines = [f"# Face detection (MTCNN) on {report['data']}", "",
             f"Command: `{report['command']}`  ", f"Date: {report['env'].get('date', '?')}; "
             f"detector for accuracy: {acc.get('backend', '?')}, options {report.get('options', {})}", "",
             "| metric | value | target | |", "|---|---|---|---|",
             f"| detection rate ({acc['n_images']} images; landmarks within {HIT_NME} IOD) | "
             f"{acc['detection_rate']:.1%} | >= {tg['detection_rate']:.0%} | {'pass' if ok['rate'] else 'FAIL'} |",
             f"| landmark error / inter-ocular distance, mean | {_f(acc['nme']['mean'])} | <= {tg['nme_mean']} | "
             f"{'pass' if ok['nme'] else 'FAIL'} |",
             f"| landmark error / inter-ocular distance, p95 (max) | {_f(acc['nme']['p95'])} ({_f(acc['nme']['max'])})"
             " | | |",
             f"| crop mean abs difference (x255), mean | {_f((acc['crop_mad']['mean'] or 0) * 255, '.2f')} | "
             f"<= {tg['crop_mad'] * 255:.0f} | {'pass' if ok['mad'] else 'FAIL'} |",
             f"| crop mean abs difference (x255), p95 (max) | {_f((acc['crop_mad']['p95'] or 0) * 255, '.2f')} "
             f"({_f((acc['crop_mad']['max'] or 0) * 255, '.2f')}) | | |", "",
             "Face-selection rules (which face `edgefiq data align --select RULE` crops when an image has several):", "",
             "| rule | picks the annotated face | landmark error of its pick: mean | p95 |", "|---|---|---|---|"]
    for rule, r in acc["rules"].items():
        lines.append(f"| {rule} | {r['picks_match']:.1%} | {_f(r['nme']['mean'])} | {_f(r['nme']['p95'])} |")
    ag = report.get("agreement")
    if ag:
        lines += ["", f"onnxruntime vs torch nets on the same {ag['images']} images: same face count on "
                      f"{ag['same_count']:.1%}, max difference: boxes {ag['max_box_px']:.2e} px, landmarks "
                      f"{ag['max_landmark_px']:.2e} px, scores {ag['max_score']:.2e}."]
    lines += ["", "Latency per 250x250 image (whole cascade, 1 thread):", "",
              "| runtime | p50 ms | mean ms | p90 ms | runs | load avg (1 min) before / after | other busy cores |",
              "|---|---|---|---|---|---|---|"]
    for name, t in report["latency"].items():
        lines.append(f"| {name} | {t['p50_ms']:.1f} | {t['mean_ms']:.1f} | {t['p90_ms']:.1f} | {t['runs']} | "
                     f"{_f(t['loadavg_before'], '.2f')} / {_f(t['loadavg_after'], '.2f')} | {_f(t['other_cpu'], '.2f')} |")
    lines += ["", report.get("note", ""), ""]
    return "\n".join(lines)
