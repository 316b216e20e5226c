"""Epoch orderings: plain random permutation or score-stratified uniform sampling, optionally with a share
of clean images.

Teacher scores are far from uniform (most web photos are decent), so a random batch holds
few low-quality faces. ``stratified_order`` draws a bin uniformly (equal-width bins over the
score range), then an image uniformly within that bin, so every quality level is seen
equally often. Both orderings are pure functions of ``(seed, epoch)``: resuming at step k
of an epoch just skips the first k batches.

Example:
    >>> order = epoch_order(np.array([0.1, 0.2, 0.9, 0.95]), epoch=0, seed=0, kind="stratified", bins=2)
    >>> len(order)
    4
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def random_order(n: int, *, epoch: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` for ``epoch``."""
    return np.random.default_rng([seed, epoch, 17]).permutation(n)


def stratified_order(scores: np.ndarray, *, epoch: int, seed: int, bins: int = 10,
                     num_samples: int | None = None) -> np.ndarray:
    """Indices drawn uniformly over non-empty score bins, then uniformly within the bin.

    Within a bin, images are taken from a fresh permutation (without replacement until the
    bin is exhausted, then a new permutation), so small bins repeat and large ones are subsampled.

    Args:
        scores: teacher scores of the training images.
        bins: number of equal-width bins over ``[min, max]``.
        num_samples: length of the epoch (default ``len(scores)``).
    """
    scores = np.asarray(scores, np.float64)
    n = len(scores) if num_samples is None else num_samples
    rng = np.random.default_rng([seed, epoch, 29])
    lo, hi = float(scores.min()), float(scores.max())
    edges = np.linspace(lo, hi, bins + 1)
    which = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    members = [np.flatnonzero(which == b) for b in range(bins)]
    members = [m for m in members if len(m)]
    picks = rng.integers(0, len(members), size=n)
    out = np.empty(n, np.int64)
    cursors = [0] * len(members)
    perms = [rng.permutation(m) for m in members]
    for k, b in enumerate(picks):
        if cursors[b] == len(perms[b]):
            perms[b] = rng.permutation(members[b])
            cursors[b] = 0
        out[k] = perms[b][cursors[b]]
        cursors[b] += 1
    return out


def with_clean_share(order: np.ndarray, clean: np.ndarray, share: float, *, epoch: int, seed: int) -> np.ndarray:
    """``order`` with about ``share`` of its positions given to clean (undegraded) images.

    For a gate on ordinary photos the student must rank clean faces against each other, and a degraded
    set holds few of them (20% in recipes/lfw-capture.yaml's). The chosen positions take
    clean images from fresh permutations (each before any repeats); the rest of ``order`` is kept.
    ``clean``: boolean mask over the training images. Pure in ``(seed, epoch)`` like the orders above.

    Example:
        >>> with_clean_share(np.arange(6), np.array([1, 0, 0, 0, 0, 0], bool), 0.5, epoch=0, seed=0).tolist()
        [0, 1, 0, 3, 0, 5]
    """
    pool = np.flatnonzero(clean)
    if share <= 0 or not len(pool):
        return order
    rng = np.random.default_rng([seed, epoch, 31])
    pos = np.flatnonzero(rng.random(len(order)) < share)
    fill = np.concatenate([rng.permutation(pool) for _ in range(-(-len(pos) // len(pool)) or 1)])
    out = np.array(order, copy=True)
    out[pos] = fill[:len(pos)]
    return out


def epoch_order(scores: np.ndarray, *, epoch: int, seed: int, kind: Literal["random", "stratified"] = "random",
                bins: int = 10) -> np.ndarray:
    """The training order of ``epoch`` (see module docstring)."""
    if kind == "stratified":
        return stratified_order(scores, epoch=epoch, seed=seed, bins=bins)
    return random_order(len(scores), epoch=epoch, seed=seed)
