"""Face verification accuracy under the LFW protocol: k-fold cross-validated threshold on pair similarities.

The pairs are cut into ``folds`` consecutive blocks (the order of ``pairs.txt``); for each fold the
similarity threshold that maximises accuracy on the other folds is applied to the held-out fold.
A pair matches when ``similarity >= threshold``. ``tools/verify_fr.py`` runs it on the LFW dev pairs.

Example:
    >>> import numpy as np
    >>> sim = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3])
    >>> kfold_verification_accuracy(sim, np.array([True, True, False, False, True, False]), folds=3).fold_accuracies
    [1.0, 1.0, 0.5]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgefiq.errors import DataError


@dataclass(frozen=True)
class VerificationAccuracy:
    """Per-fold accuracies and the thresholds chosen on the other folds."""

    fold_accuracies: list[float]
    fold_thresholds: list[float]

    @property
    def mean(self) -> float:
        """Mean accuracy over the folds."""
        return float(np.mean(self.fold_accuracies))

    @property
    def std(self) -> float:
        """Standard deviation of the per-fold accuracies."""
        return float(np.std(self.fold_accuracies))


def _accuracy_at(similarity: np.ndarray, genuine: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy of ``similarity >= t`` against ``genuine`` for every ``t``, by sorted counts (no loop)."""
    gen = np.sort(similarity[genuine])
    imp = np.sort(similarity[~genuine])
    matched = len(gen) - np.searchsorted(gen, thresholds, side="left")   # genuine pairs with s >= t
    rejected = np.searchsorted(imp, thresholds, side="left")             # impostor pairs with s < t
    return (matched + rejected) / len(similarity)


def kfold_verification_accuracy(similarity: np.ndarray, genuine: np.ndarray, folds: int = 10) -> VerificationAccuracy:
    """LFW-protocol accuracy: per fold, the threshold that is most accurate on the other folds.

    Args:
        similarity: one similarity per pair (e.g. cosine of L2-normalised embeddings), in file order.
        genuine: True for same-identity pairs.
        folds: consecutive blocks of pairs (the header of an LFW ``pairs.txt``: ``lfw_fold_count``).

    Returns:
        The per-fold accuracies and thresholds. Candidate thresholds are the distinct training
        similarities plus one above the largest (reject everything).

    Example:
        >>> r = kfold_verification_accuracy(np.array([0.8, 0.1, 0.8, 0.2]), np.array([True, False, True, False]), 2)
        >>> r.fold_accuracies
        [1.0, 1.0]
    """
    sim = np.asarray(similarity, dtype=np.float64)
    gen = np.asarray(genuine, dtype=bool)
    if sim.shape != gen.shape or sim.ndim != 1:
        raise ValueError(f"similarity and genuine must be 1-D of one length, got {sim.shape} and {gen.shape}")
    if not 2 <= folds <= len(sim):
        raise ValueError(f"folds must be in [2, {len(sim)}] for {len(sim)} pairs, got {folds}")
    fold_id = np.arange(len(sim)) * folds // len(sim)
    accs, thrs = [], []
    for k in range(folds):
        train, test = fold_id != k, fold_id == k
        cand = np.unique(sim[train])
        cand = np.concatenate([cand, [cand[-1] + 1e-6]])
        t = float(cand[int(np.argmax(_accuracy_at(sim[train], gen[train], cand)))])
        thrs.append(t)
        accs.append(float(np.mean((sim[test] >= t) == gen[test])))
    return VerificationAccuracy(accs, thrs)


def pair_similarity(embeddings: np.ndarray, relpaths: Sequence[str],
                    pairs: Sequence[tuple[str, str, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """``(similarity, genuine)`` of ``pairs`` (``read_lfw_pairs`` tuples) from row-aligned embeddings.

    ``embeddings[i]`` is the L2-normalised embedding of ``relpaths[i]``; similarity is their dot product.

    Example:
        >>> pair_similarity(np.eye(2), ["a/1.jpg", "b/1.jpg"], [("a/1.jpg", "b/1.jpg", False)])
        (array([0.]), array([False]))
    """
    index = {r: i for i, r in enumerate(relpaths)}
    missing = sorted({p for a, b, _ in pairs for p in (a, b)} - set(index))
    if missing:
        raise DataError(f"{len(missing)} pair image(s) have no embedding, e.g. {missing[0]}")
    emb = np.asarray(embeddings)
    ia = np.array([index[a] for a, _, _ in pairs], dtype=np.int64)
    ib = np.array([index[b] for _, b, _ in pairs], dtype=np.int64)
    return np.sum(emb[ia] * emb[ib], axis=1), np.array([g for _, _, g in pairs], dtype=bool)


def lfw_fold_count(pairs_txt: str | Path) -> int:
    """Folds an LFW ``pairs.txt`` declares: the first number of a ``folds n`` header, 10 for an ``n`` header.

    Example:
        >>> lfw_fold_count("../shared/data/lfw-dev/pairs.txt")   # doctest: +SKIP
        7
    """
    head = Path(pairs_txt).read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].split()
    return int(head[0]) if len(head) == 2 else 10
