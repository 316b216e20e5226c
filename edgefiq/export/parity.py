"""The parity gate: an exported artifact must score like the torch fp32 model it came from.

Gates (``TOLERANCES``), applied to the artifact's scores ``y`` against the torch scores ``r``
on a verification batch:

* ``fp32``: ``max|y - r| <= 1e-4 * scale``
* ``fp16``: ``max|y - r| <= 1e-2 * scale``
* ``int8``: ``SRCC(y, r) >= 0.99`` (int8 shifts scores by design; what must survive is the
  ranking, which is what a quality score is used for); mean/max abs diff are reported.

``scale = max(1, max|r|)``: the absolute tolerances are meant for scores of order one; a
student trained on a teacher with larger scores (feature norms of ~20-30, say) is held to
the same *relative* precision. Every report also records ``diff_over_spread`` (max abs
diff divided by the 5-95 % range of the reference scores) and the SRCC, because a small
absolute error can still reorder faces when the scores are tightly packed. Torch-free
except :func:`torch_scores`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgefiq.errors import DataError, ParityError

TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs_diff": 1e-4},
    "fp16": {"max_abs_diff": 1e-2},
    "int8": {"srcc_min": 0.99},
}
MIN_RANK_IMAGES = 16   # SRCC on fewer images says little


def torch_scores(model: Any, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Reference scores of an eager torch ``model`` on a float32 NCHW array.

    Example:
        >>> ref = torch_scores(model, np.zeros((4, 3, 112, 112), np.float32))   # doctest: +SKIP
    """
    import torch

    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size]))).float().reshape(-1).numpy())
    return np.concatenate(outs).astype(np.float32)


def runner_scores(runner: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Scores of an artifact runner on a float32 NCHW array, in batches."""
    return np.concatenate([np.asarray(runner(x[i:i + batch_size]), np.float32).reshape(-1)
                           for i in range(0, len(x), batch_size)])


def _srcc(a: np.ndarray, b: np.ndarray) -> float:
    from edgefiq.metrics import srcc

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(srcc(a, b))


def parity_report(reference: np.ndarray, scores: np.ndarray, precision: str,
                  tolerances: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Compare artifact ``scores`` with torch ``reference`` under the gate for ``precision``.

    Returns a JSON-friendly dict with ``passed``, the metrics, the tolerance and its scale.

    Example:
        >>> r = parity_report(np.array([0.1, 0.5, 0.9]), np.array([0.1, 0.5, 0.9]), "fp32")
        >>> r["passed"], r["max_abs_diff"]
        (True, 0.0)
    """
    ref = np.asarray(reference, np.float64).reshape(-1)
    got = np.asarray(scores, np.float64).reshape(-1)
    if ref.shape != got.shape:
        raise ParityError(f"artifact returned {got.shape[0]} scores for {ref.shape[0]} images")
    tol = dict((tolerances or TOLERANCES)[precision])
    diff = np.abs(got - ref)
    finite = bool(np.isfinite(got).all())
    scale = float(max(1.0, np.max(np.abs(ref)))) if len(ref) else 1.0
    spread = float(np.subtract(*np.percentile(ref, [95, 5]))) if len(ref) else 0.0
    rep: dict[str, Any] = {
        "precision": precision, "n": int(len(ref)), "finite": finite,
        "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
        "mean_abs_diff": float(diff.mean()) if len(diff) else 0.0,
        "srcc_vs_fp32": _srcc(got, ref) if finite else float("nan"),
        "reference_range": [float(ref.min()), float(ref.max())] if len(ref) else [],
        "scale": scale, "diff_over_spread": float(diff.max() / spread) if spread > 0 and len(diff) else None,
        "tolerance": tol,
    }
    passed = finite
    if "max_abs_diff" in tol:
        rep["effective_max_abs_diff"] = tol["max_abs_diff"] * scale
        passed = passed and rep["max_abs_diff"] <= rep["effective_max_abs_diff"]
    if "srcc_min" in tol:
        if len(ref) < MIN_RANK_IMAGES:
            raise DataError(f"the {precision} parity gate ranks images: needs >= {MIN_RANK_IMAGES} verification "
                            f"images, got {len(ref)} (pass --verify DIR or a larger --calibration)")
        passed = passed and bool(rep["srcc_vs_fp32"] >= tol["srcc_min"])
    rep["passed"] = bool(passed)
    return rep


def describe_failure(rep: dict[str, Any]) -> str:
    """One line saying which gate failed, e.g. ``fp16 max abs diff 0.03 > 0.01 on 200 images``."""
    n = rep["n"]
    if not rep["finite"]:
        return f"{rep['precision']} artifact returned NaN/inf scores on {n} images"
    if "effective_max_abs_diff" in rep and rep["max_abs_diff"] > rep["effective_max_abs_diff"]:
        return (f"{rep['precision']} max abs diff {rep['max_abs_diff']:.3g} > {rep['effective_max_abs_diff']:.3g} "
                f"vs torch fp32 on {n} images")
    return (f"{rep['precision']} SRCC vs torch fp32 {rep['srcc_vs_fp32']:.4f} < {rep['tolerance'].get('srcc_min')} "
            f"on {n} images (mean abs diff {rep['mean_abs_diff']:.3g})")
