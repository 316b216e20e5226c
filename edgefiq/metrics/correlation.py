"""Correlation coefficients between two score vectors (plain numpy, ties handled).

Definitions (``a``, ``b``: 1-D arrays of equal length ``n >= 2``, finite values):

- ``plcc(a, b)``: Pearson's linear correlation coefficient
  ``sum((a - mean a)(b - mean b)) / sqrt(sum((a - mean a)^2) * sum((b - mean b)^2))``.
- ``srcc(a, b)``: Spearman's rank correlation = ``plcc(rank(a), rank(b))`` where tied values
  get the average of the ranks they span (``rank([10, 20, 20, 30]) = [1, 2.5, 2.5, 4]``).
- ``krcc(a, b)``: Kendall's tau-b
  ``(n_c - n_d) / sqrt((n0 - n1) * (n0 - n2))`` with ``n0 = n(n-1)/2``, ``n_c``/``n_d`` the
  concordant/discordant pairs, ``n1``/``n2`` the pairs tied in ``a``/``b``. Computed in
  O(n log n) (Knight's algorithm).

A constant input makes every coefficient undefined: the functions then return ``nan``.
NaN or infinite inputs raise ``ValueError``.

Example:
    >>> srcc([1, 2, 3, 4], [10, 20, 30, 40])
    1.0
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"length mismatch: {x.size} vs {y.size}")
    if x.size < 2:
        raise ValueError(f"need at least 2 values, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("inputs contain NaN or infinite values")
    return x, y


def average_ranks(a: ArrayLike) -> np.ndarray:
    """1-based ranks, ties get the mean of the ranks they span.

    Example:
        >>> average_ranks([10, 20, 20, 30]).tolist()
        [1.0, 2.5, 2.5, 4.0]
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # start index of each run of equal values in sorted order
    new = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], xs.size]  # exclusive
    run_rank = (starts + ends + 1) / 2.0  # mean of 1-based ranks starts+1 .. ends
    run_id = np.cumsum(new) - 1
    ranks = np.empty_like(x)
    ranks[order] = run_rank[run_id]
    return ranks


def plcc(a: ArrayLike, b: ArrayLike) -> float:
    """Pearson linear correlation coefficient (``nan`` if either input is constant).

    Example:
        >>> round(plcc([1, 2, 3], [2, 4, 7]), 4)
        0.9934
    """
    x, y = _pair(a, b)
    x = x - x.mean()
    y = y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    if den == 0:
        return float("nan")
    return float(np.clip((x * y).sum() / den, -1.0, 1.0))


def srcc(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation with average ranks for ties.

    Example:
        >>> srcc([1, 2, 3], [3, 2, 1])
        -1.0
    """
    x, y = _pair(a, b)
    return plcc(average_ranks(x), average_ranks(y))


def _tied_pairs(x: np.ndarray) -> int:
    _, counts = np.unique(x, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _count_inversions(v: np.ndarray) -> int:
    """Number of pairs i < j with v[i] > v[j] (strict), via a Fenwick tree over dense ranks."""
    _, dense = np.unique(v, return_inverse=True)
    m = int(dense.max()) + 1
    tree = [0] * (m + 1)
    inv = 0
    seen = 0
    for r in dense.tolist():
        # count earlier elements with rank <= r, then inversions = seen - that
        k, le = r + 1, 0
        while k > 0:
            le += tree[k]
            k -= k & -k
        inv += seen - le
        k = r + 1
        while k <= m:
            tree[k] += 1
            k += k & -k
        seen += 1
    return inv


def krcc(a: ArrayLike, b: ArrayLike) -> float:
    """Kendall rank correlation, tau-b (ties in either input handled).

    Example:
        >>> krcc([1, 2, 3, 4], [1, 3, 2, 4])
        0.6666666666666666
    """
    x, y = _pair(a, b)
    n = x.size
    n0 = n * (n - 1) // 2
    n1 = _tied_pairs(x)
    n2 = _tied_pairs(y)
    if n0 == n1 or n0 == n2:
        return float("nan")
    order = np.lexsort((y, x))  # by x, then y: pairs tied in x are never counted as discordant
    xs, ys = x[order], y[order]
    # pairs tied in both
    both = np.r_[True, (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])]
    runs = np.diff(np.r_[np.flatnonzero(both), n])
    n3 = int((runs * (runs - 1) // 2).sum())
    n_d = _count_inversions(ys)
    n_c = n0 - n1 - n2 + n3 - n_d
    return float((n_c - n_d) / np.sqrt(float(n0 - n1) * float(n0 - n2)))
