"""Quality thresholds in plain numpy: score distributions, reject fractions, and the FNMR a threshold leaves.

Definitions (shared by ``edgefiq score --reject-fraction`` and ``edgefiq eval``):

Score distribution
    ``score_distribution(scores)`` summarises a model's scores on a reference image set
    (for a built-in model: its validation images): ``n``, ``mean``, ``std``, ``min``,
    ``max`` and the quantiles at ``levels`` = 0, 0.001, ..., 1 (numpy's linear
    interpolation). It is stored in a model's sidecar (``extra.score_distribution``) and card.

Threshold for a reject fraction
    ``threshold_for_fraction(dist, f)`` is the ``f``-quantile of the distribution, read
    by linear interpolation between the stored levels. An image is *rejected* iff its
    score is strictly below the threshold, so on images drawn like the reference set a
    fraction ``f`` is rejected (exactly ``f``, up to ties and interpolation, on the
    reference set itself).

Threshold table (``discard_thresholds``)
    For each fraction ``f``: the image-quality threshold ``t`` = ``f``-quantile of the
    qualities of the evaluated images; comparisons with an image below ``t`` are
    discarded; the comparison threshold is set once at the target FMR on all impostor
    comparisons (the ``fixed`` convention of :mod:`edgefiq.metrics.edc`); the FNMR is
    that of the genuine comparisons that remain. Unlike an EDC point, ``f`` counts
    *images* (what a quality gate rejects), not comparisons; the table also gives the
    fraction of genuine comparisons the threshold discards.

Example:
    >>> d = score_distribution(np.arange(101, dtype=float))
    >>> threshold_for_fraction(d, 0.1)
    10.0
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgefiq.metrics.edc import threshold_at_fmr

LEVELS = np.round(np.linspace(0.0, 1.0, 1001), 6)  # quantile levels stored in sidecars and cards
DEFAULT_FRACTIONS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


def score_distribution(scores: Sequence[float] | np.ndarray, levels: np.ndarray = LEVELS) -> dict[str, Any]:
    """Summary of ``scores`` (finite values) with quantiles at ``levels``, JSON-ready.

    Raises:
        ValueError: no finite score.

    Example:
        >>> score_distribution([1.0, 2.0, 3.0])["mean"]
        2.0
    """
    q = np.asarray(scores, dtype=np.float64).reshape(-1)
    q = q[np.isfinite(q)]
    if q.size == 0:
        raise ValueError("no finite scores to summarise")
    return {"n": int(q.size), "mean": float(q.mean()), "std": float(q.std()), "min": float(q.min()),
            "max": float(q.max()), "levels": [float(v) for v in levels],
            "quantiles": [float(v) for v in np.quantile(q, levels)]}


def threshold_for_fraction(distribution: dict[str, Any], fraction: float) -> float:
    """The score below which ``fraction`` of the distribution's reference images lie.

    Raises:
        ValueError: ``fraction`` outside [0, 1] or a distribution without quantiles.

    Example:
        >>> threshold_for_fraction({"levels": [0.0, 1.0], "quantiles": [0.2, 0.6]}, 0.5)
        0.4
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"reject fraction must be in [0, 1], got {fraction}")
    levels, quantiles = distribution.get("levels"), distribution.get("quantiles")
    if not levels or not quantiles or len(levels) != len(quantiles):
        raise ValueError("score distribution has no quantiles")
    return round(float(np.interp(fraction, levels, quantiles)), 12)


def to_0_100(distribution: dict[str, Any], scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Scores on the ISO/IEC 29794-1 convention: integers 0-100, higher is better, each score's position
    (percentile) in ``distribution`` (a monotone map; ties and scores outside the range go to the ends).

    Example:
        >>> to_0_100({"levels": [0.0, 0.5, 1.0], "quantiles": [0.0, 1.0, 4.0]}, [-1.0, 1.0, 2.5, 9.0]).tolist()
        [0, 50, 75, 100]
    """
    levels, quantiles = distribution.get("levels"), distribution.get("quantiles")
    if not levels or not quantiles or len(levels) != len(quantiles):
        raise ValueError("score distribution has no quantiles")
    q = np.maximum.accumulate(np.asarray(quantiles, dtype=np.float64))
    return np.rint(100.0 * np.interp(np.asarray(scores, dtype=np.float64), q, levels)).astype(np.int64)


def accept_mask(scores: np.ndarray, threshold: float) -> np.ndarray:
    """True where a score passes the gate (``score >= threshold``; below it is rejected).

    Example:
        >>> accept_mask(np.array([0.1, 0.5, 0.9]), 0.5).tolist()
        [False, True, True]
    """
    return np.asarray(scores, dtype=np.float64) >= threshold


def discard_thresholds(comparisons: Any, quality: np.ndarray, fmr: float,
                       fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[dict[str, Any]]:
    """Per image reject fraction: the quality threshold and the FNMR at ``fmr`` it leaves (module doc).

    Args:
        comparisons: an ``edgefiq.metrics.edc.Comparisons``.
        quality: per-image quality, indexed by ``comparisons.i/j``.
        fmr: target FMR of the (fixed) comparison threshold.
        fractions: image fractions to reject; 0 is always included first.

    Returns:
        Rows ``{fraction, threshold, images_rejected, genuine_discarded, fnmr, fmr}``.

    Example:
        >>> from edgefiq.metrics.edc import Comparisons
        >>> c = Comparisons(i=[0, 1, 0], j=[1, 2, 2], similarity=[0.2, 0.9, 0.5], genuine=[True, True, False])
        >>> [r["fnmr"] for r in discard_thresholds(c, np.array([0.1, 0.5, 0.9]), 0.5, [0.3])]
        [0.5, 0.0]
    """
    q = np.asarray(quality, dtype=np.float64)
    gen = comparisons.genuine
    t_cmp = threshold_at_fmr(comparisons.similarity[~gen], fmr)
    pair_q = comparisons.pair_quality(q)
    n_gen = int(gen.sum())
    rows = []
    for f in [0.0, *[float(x) for x in fractions if x > 0]]:
        t = float(np.quantile(q, f)) if f > 0 else float(q.min())
        keep = gen & (pair_q >= t)
        g = int(keep.sum())
        fnm = int((keep & (comparisons.similarity <= t_cmp)).sum())
        rows.append({"fraction": f, "threshold": t, "images_rejected": float((q < t).mean()),
                     "genuine_discarded": 1.0 - g / n_gen if n_gen else None,
                     "fnmr": fnm / g if g else None, "fmr": float(fmr)})
    return rows
