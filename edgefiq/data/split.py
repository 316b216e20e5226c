"""The one identity-disjoint split (and the one seeded draw of identities) used everywhere.

``edgefiq distill`` (held-out validation), the ``data`` stage of ``edgefiq run`` and the
identity subsets of a run and of the benchmarks (:func:`identity_subset`) all draw identities
in the order of :func:`pick_identities`, so the same
seed gives the same identities wherever it is used: the sorted unique identities in the
order of ``numpy.random.default_rng(seed).permutation``.

Example:
    >>> identity_split(["a/1.jpg", "a/2.jpg", "b/1.jpg", "c/1.jpg"], val_fraction=0.34, seed=0)
    ([0, 1, 2], [3])
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from edgefiq.data.readers import identity_of
from edgefiq.errors import UsageError


def pick_identities(identities: Iterable[str], n: int, seed: int) -> set[str]:
    """``n`` identities drawn (seeded) from the sorted unique ``identities``.

    Example:
        >>> sorted(pick_identities(["a", "b", "c", "a"], 2, seed=0))
        ['a', 'c']
    """
    uniq = sorted(set(identities))
    order = np.random.default_rng(seed).permutation(len(uniq))
    return {uniq[i] for i in order[:n]}


def identity_split(rel: Sequence[str], *, val_fraction: float = 0.1, seed: int = 0,
                   val_identities: Iterable[str] | None = None) -> tuple[list[int], list[int]]:
    """Split image indices into (train, val) with no identity in both.

    Args:
        rel: relative paths ``<Identity>/...`` (or clean-source paths of degraded copies).
        val_fraction: share of identities drawn (seeded, :func:`pick_identities`) for validation
            when ``val_identities`` is None; at least one and at most all but one identity.
        seed: seed of the draw.
        val_identities: explicit validation identities.

    Raises:
        UsageError: the split leaves an empty side (e.g. a flat folder without identities).

    Example:
        >>> identity_split(["a/1.jpg", "b/1.jpg"], val_identities=["b"])
        ([0], [1])
    """
    ids = [identity_of(r) for r in rel]
    if val_identities is not None:
        val = set(val_identities)
    else:
        uniq = set(ids)
        if len(uniq) < 2:
            raise UsageError("identity-disjoint split needs an identity tree (<Identity>/<image>) with >= 2 identities; "
                             "give data.val_labels or data.val_identities instead")
        n_val = min(len(uniq) - 1, max(1, round(val_fraction * len(uniq))))
        val = pick_identities(uniq, n_val, seed)
    tr = [i for i, s in enumerate(ids) if s not in val]
    va = [i for i, s in enumerate(ids) if s in val]
    if not tr or not va:
        raise UsageError(f"validation split is empty on one side (train {len(tr)}, val {len(va)} images)")
    return tr, va


def identity_subset(rels: Sequence[str], max_images: int, seed: int) -> np.ndarray:
    """Sorted indices of whole identities, drawn in the seeded order of :func:`pick_identities`, until
    ``max_images`` images are reached (every copy of an image follows its identity).

    Example:
        >>> identity_subset(["a/1.jpg", "a/2.jpg", "b/1.jpg", "c/1.jpg"], 2, seed=0).tolist()
        [0, 1, 3]
    """
    ids = sorted({identity_of(r) for r in rels})
    order = np.random.default_rng(seed).permutation(len(ids))
    by_id: dict[str, list[int]] = {}
    for k, r in enumerate(rels):
        by_id.setdefault(identity_of(r), []).append(k)
    keep: list[int] = []
    for i in order:
        if len(keep) >= max_images:
            break
        keep += by_id[ids[i]]
    return np.array(sorted(keep))
