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

__all__ = ["INTERVAL_NOTE", "bootstrap_pauc", "bootstrap_paucs", "identity_draws", "interval_text", "pauc_ratio_interval",
           "ratio_interval", "weighted_fixed_pauc"]


def identity_draws(clusters: Sequence[object], resamples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Identity resamples of ``G`` genuine comparisons: ``counts [resamples, K]`` and ``cid [G]``.

    ``clusters[g]`` is the identity of genuine comparison ``g`` (``K`` distinct ones); row ``r`` of
    ``counts`` says how often each identity was drawn (``K`` draws with replacement), so
    ``counts[r, cid]`` weights the comparisons. The same clusters and seed give the same draws.

    Example:
        >>> counts, cid = identity_draws(["a", "a", "b"], 2, seed=0)
        >>> counts[:, cid].tolist()   # a's two comparisons move together
        [[0, 0, 2], [1, 1, 1]]
    """
    _, cid = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    k = int(cid.max()) + 1 if cid.size else 0
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(resamples)]) if k else \
        np.zeros((resamples, 0), dtype=np.int64)
    return counts, cid.reshape(-1)


def _sorted_curve(pair_quality: np.ndarray, false_nonmatch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ascending pair-quality order, its tie-group boundaries and the false non-matches in that order."""
    order = np.lexsort((np.arange(pair_quality.size), pair_quality))
    return order, _tie_boundaries(pair_quality[order]), false_nonmatch[order].astype(np.float64)


def _weighted_area(order: np.ndarray, bounds: np.ndarray, fnm_sorted: np.ndarray, weights: np.ndarray,
                   limit: float) -> float:
    w = weights[order]
    cw = np.r_[0.0, np.cumsum(w)][bounds]
    cf = np.r_[0.0, np.cumsum(w * fnm_sorted)][bounds]
    left = cw[-1] - cw
    keep = left > 1e-12
    x, y = cw[keep] / cw[-1], (cf[-1] - cf[keep]) / left[keep]
    first_beyond = np.searchsorted(x, limit - 1e-9)   # the curve up to the first point at or beyond the limit
    return _area(x[: first_beyond + 1], y[: first_beyond + 1], limit)


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
    return _weighted_area(*_sorted_curve(pair_quality, false_nonmatch), weights, limit)


def bootstrap_paucs(comparisons: Comparisons, qualities: Sequence[np.ndarray], identities: Sequence[object], *,
                    fmr: float = 1e-3, limit: float = 0.3, resamples: int = 1000, seed: int = 0) -> list[np.ndarray]:
    """pAUC x1e3 of each quality in each identity resample (``[resamples]`` per quality; module docstring).

    Every quality sees the same resamples (the threshold and the identity draws are made once), so the
    element-wise ratio of two of them is the paired bootstrap of the ratio (:func:`ratio_interval`).

    Args:
        comparisons: genuine and impostor comparisons (the threshold comes from all impostors).
        qualities: per-image qualities indexed by ``comparisons.i/j``; identities: identity of every image.
        fmr, limit: as :func:`edgefiq.metrics.edc.edc_pauc`; seed: seed of the identity draws.
    """
    if any(len(q) != len(identities) for q in qualities):
        raise ValueError(f"every quality and the identities need one entry per image, got "
                         f"{[len(q) for q in qualities]} and {len(identities)}")
    gen = comparisons.genuine
    t0 = threshold_at_fmr(comparisons.similarity[~gen], fmr)
    fnm = comparisons.similarity[gen] <= t0
    genuine = comparisons.select(gen)
    counts, cid = identity_draws(np.asarray(identities, dtype=object)[comparisons.i[gen]], resamples, seed)
    weights = [c[cid].astype(np.float64) for c in counts]
    out = []
    for q in qualities:
        curve = _sorted_curve(genuine.pair_quality(q), fnm)
        out.append(np.array([_weighted_area(*curve, w, limit) for w in weights]) * 1e3)
    return out


def bootstrap_pauc(comparisons: Comparisons, quality: np.ndarray, identities: Sequence[object], *,
                   fmr: float = 1e-3, limit: float = 0.3, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """:func:`bootstrap_paucs` of one quality: its pAUC x1e3 in each identity resample. Two calls with the same
    comparisons, identities and seed use the same resamples."""
    return bootstrap_paucs(comparisons, [quality], identities, fmr=fmr, limit=limit, resamples=resamples,
                           seed=seed)[0]


def ratio_interval(values: np.ndarray, reference: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """Central ``level`` percentile interval of ``values / reference`` over paired resamples; resamples where
    the reference is 0 are left out (``nan`` if all are).

    Example:
        >>> ratio_interval(np.array([2.0, 3.0, 4.0]), np.array([2.0, 2.0, 0.0]), level=1.0)
        (1.0, 1.5)
    """
    ok = reference > 0
    if not ok.any():
        return float("nan"), float("nan")
    lo, hi = np.percentile(values[ok] / reference[ok], [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def pauc_ratio_interval(comparisons: Comparisons, quality: np.ndarray, reference: np.ndarray,
                        identities: Sequence[object], *, fmr: float = 1e-3, limit: float = 0.3,
                        resamples: int = 1000, level: float = 0.9, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``pAUC(quality) / pAUC(reference)`` over identity resamples (module docstring):
    :func:`ratio_interval` of two :func:`bootstrap_pauc` calls with the same seed.

    Args:
        comparisons: genuine and impostor comparisons (the threshold comes from all impostors).
        quality, reference: per-image qualities indexed by ``comparisons.i/j`` (e.g. a student and its teacher).
        identities: identity of every image, same indexing.
        fmr, limit: as :func:`edgefiq.metrics.edc.edc_pauc`.
        resamples: bootstrap resamples; ``level``: central coverage (0.9 = 5th to 95th percentile).
        seed: seed of the identity draws.

    Returns:
        ``(low, high)``; resamples where the reference's area is 0 are left out (``nan`` if all are).
    """
    a, b = bootstrap_paucs(comparisons, [quality, reference], identities, fmr=fmr, limit=limit, resamples=resamples,
                           seed=seed)
    return ratio_interval(a, b, level)


INTERVAL_NOTE = ("Brackets: the 90% interval of that ratio when the validation identities are resampled "
                 "(`edgefiq.metrics.bootstrap`); an interval that holds 1 cannot tell the source from the "
                 "reference on these identities.")


def interval_text(row: dict, source: str, fmr: str) -> str:
    """`` [low, high]`` of ``row["ratio_ci"][source][fmr]`` (a ``by_family`` row), or ``""`` without one.

    Example:
        >>> interval_text({"ratio_ci": {"s": {"0.001": [0.9, 1.4]}}}, "s", "0.001"), interval_text({}, "s", "0.001")
        (' [0.90, 1.40]', '')
    """
    lo, hi = ((row.get("ratio_ci") or {}).get(source) or {}).get(fmr) or (None, None)
    return f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
