"""How sure a pAUC ratio is: a bootstrap over identities of the fixed-threshold EDC.

A per-family table compares a student's pAUC with its teacher's on a few thousand images, where the
false non-matches that make up the area come from a few dozen identities. Whether 1.2x the teacher is
a real gap or the luck of which identities were held out is what :func:`pauc_ratio_interval` says.

Method (cluster bootstrap, paired):
    The genuine comparisons are grouped by identity (each genuine comparison joins two images of
    one identity). A resample draws as many identities as there are, with replacement, and weights
    every genuine comparison by how often its identity was drawn. The same weights serve both
    qualities, so the ratio's interval reflects how the two differ, not how hard the identities are.
    The threshold is the full set's (``fixed`` convention, ``edgefiq.metrics.edc``): impostors do not
    change an FNMR at a fixed threshold, and the threshold's own uncertainty is left out.

With every weight 1 the weighted curve is exactly ``edc_curve(..., convention="fixed")``: discards
happen in complete tie groups, and a tie group's share of the discard axis is its weight.

Example:
    >>> import numpy as np
    >>> from edgefiq.metrics.edc import Comparisons
    >>> c = Comparisons(i=[0, 2, 4, 0], j=[1, 3, 5, 2], similarity=[0.1, 0.9, 0.8, 0.5],
    ...                 genuine=[True, True, True, False])
    >>> q = np.array([0.1, 0.2, 0.9, 0.8, 0.5, 0.6])
    >>> pauc_ratio_interval(c, q, q, ["a", "a", "b", "b", "c", "c"], fmr=0.5, limit=0.5, resamples=50)
    (1.0, 1.0)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgefiq.metrics.edc import Comparisons, _area, _tie_boundaries, threshold_at_fmr

__all__ = ["identity_weights", "pauc_ratio_interval", "weighted_fixed_pauc"]


def identity_weights(clusters: Sequence[object], resamples: int, seed: int = 0) -> np.ndarray:
    """``[resamples, G]`` weights of ``G`` genuine comparisons, one row per identity resample.

    ``clusters[g]`` is the identity of genuine comparison ``g``; a row counts how often each
    comparison's identity was drawn (as many draws as identities, with replacement).

    Example:
        >>> identity_weights(["a", "a", "b"], 2, seed=0).tolist()   # a's two comparisons move together
        [[0.0, 0.0, 2.0], [1.0, 1.0, 1.0]]
    """
    _, cid = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    n = int(cid.max()) + 1 if cid.size else 0
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)]) if n else \
        np.zeros((resamples, 0))
    return counts[:, cid].astype(np.float64)


def weighted_fixed_pauc(pair_quality: np.ndarray, false_nonmatch: np.ndarray, weights: np.ndarray,
                        limit: float) -> float:
    """pAUC (not scaled) of the fixed-threshold EDC over weighted genuine comparisons.

    Args:
        pair_quality: ``[G]`` pair quality of the genuine comparisons.
        false_nonmatch: ``[G]`` bool, rejected at the fixed threshold.
        weights: ``[G]`` non-negative weights (all 1 = :func:`edgefiq.metrics.edc.edc_curve`).
        limit: discard fraction the area stops at.

    Example:
        >>> weighted_fixed_pauc(np.array([0.1, 0.5]), np.array([True, False]), np.ones(2), 0.5)
        0.125
    """
    order = np.lexsort((np.arange(pair_quality.size), pair_quality))
    bounds = _tie_boundaries(pair_quality[order])
    w = weights[order]
    cw = np.r_[0.0, np.cumsum(w)][bounds]
    cf = np.r_[0.0, np.cumsum(w * false_nonmatch[order])][bounds]
    total = cw[-1]
    left = total - cw
    keep = left > 1e-12
    x, y = cw[keep] / total, (cf[-1] - cf[keep]) / left[keep]
    first_beyond = np.searchsorted(x, limit - 1e-9)   # the curve up to the first point at or beyond the limit
    return _area(x[: first_beyond + 1], y[: first_beyond + 1], limit)


def pauc_ratio_interval(comparisons: Comparisons, quality: np.ndarray, reference: np.ndarray,
                        identities: Sequence[object], *, fmr: float = 1e-3, limit: float = 0.3,
                        resamples: int = 1000, level: float = 0.9, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``pAUC(quality) / pAUC(reference)`` over identity resamples (module docstring).

    Args:
        comparisons: genuine and impostor comparisons (the threshold comes from all impostors).
        quality, reference: per-image qualities indexed by ``comparisons.i/j`` (e.g. a student and its teacher).
        identities: identity of every image, same indexing.
        fmr, limit: as :func:`edgefiq.metrics.edc.edc_pauc`.
        resamples: bootstrap resamples; ``level``: central coverage (0.9 = 5th to 95th percentile).
        seed: seed of the identity draws (the same draws for every call with that seed).

    Returns:
        ``(low, high)``; resamples where the reference's area is 0 are left out (``nan`` if all are).
    """
    if not len(quality) == len(reference) == len(identities):
        raise ValueError(f"quality, reference and identities need one entry per image, got "
                         f"{len(quality)}, {len(reference)} and {len(identities)}")
    gen = comparisons.genuine
    t0 = threshold_at_fmr(comparisons.similarity[~gen], fmr)
    fnm = comparisons.similarity[gen] <= t0
    ids = np.asarray(identities, dtype=object)[comparisons.i[gen]]
    pq = [comparisons.select(gen).pair_quality(q) for q in (quality, reference)]
    ratios = []
    for w in identity_weights(ids, resamples, seed):
        a, b = (weighted_fixed_pauc(p, fnm, w, limit) for p in pq)
        if b > 0:
            ratios.append(a / b)
    if not ratios:
        return float("nan"), float("nan")
    lo, hi = np.percentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
