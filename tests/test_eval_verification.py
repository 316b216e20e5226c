"""edgefiq.eval.verification: the LFW k-fold verification accuracy that tools/verify_fr.py reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgefiq.errors import DataError
from edgefiq.eval.verification import kfold_verification_accuracy, lfw_fold_count, pair_similarity


def _brute_force(sim: np.ndarray, genuine: np.ndarray, folds: int) -> tuple[list[float], list[float]]:
    """The protocol written out: every candidate threshold tried one by one."""
    fold_id = np.arange(len(sim)) * folds // len(sim)
    accs, thrs = [], []
    for k in range(folds):
        train = fold_id != k
        cand = np.unique(sim[train])
        cand = np.concatenate([cand, [cand[-1] + 1e-6]])
        t = float(cand[int(np.argmax([np.mean((sim[train] >= c) == genuine[train]) for c in cand]))])
        thrs.append(t)
        accs.append(float(np.mean((sim[~train] >= t) == genuine[~train])))
    return accs, thrs


@pytest.mark.parametrize(("n", "folds", "decimals"), [(40, 2, 2), (600, 10, 8), (700, 7, 3)])
def test_kfold_accuracy_matches_the_protocol_written_out(n: int, folds: int, decimals: int) -> None:
    rng = np.random.default_rng(n)
    genuine = rng.random(n) < 0.5
    sim = np.round(rng.normal(0.6 * genuine, 0.3), decimals)   # rounding gives ties between candidates
    res = kfold_verification_accuracy(sim, genuine, folds)
    assert (res.fold_accuracies, res.fold_thresholds) == _brute_force(sim, genuine, folds)
    assert res.mean == pytest.approx(np.mean(res.fold_accuracies)) and 0.5 < res.mean <= 1.0


def test_kfold_accuracy_separable_and_refused_inputs() -> None:
    sim = np.array([0.9, 0.8, 0.2, 0.1] * 3)
    genuine = np.array([True, True, False, False] * 3)
    res = kfold_verification_accuracy(sim, genuine, 3)
    assert res.fold_accuracies == [1.0, 1.0, 1.0] and res.std == 0.0
    assert all(0.2 < t <= 0.8 for t in res.fold_thresholds)
    with pytest.raises(ValueError, match="one length"):
        kfold_verification_accuracy(sim, genuine[:-1], 3)
    with pytest.raises(ValueError, match="folds"):
        kfold_verification_accuracy(sim, genuine, 1)


def test_pair_similarity_and_fold_count(tmp_path: Path) -> None:
    emb = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    rels = ["a/a_0001.jpg", "a/a_0002.jpg", "b/b_0001.jpg"]
    sim, genuine = pair_similarity(emb, rels, [("a/a_0001.jpg", "a/a_0002.jpg", True),
                                               ("a/a_0001.jpg", "b/b_0001.jpg", False)])
    assert sim.tolist() == pytest.approx([0.6, 0.0]) and genuine.tolist() == [True, False]
    with pytest.raises(DataError, match="no embedding"):
        pair_similarity(emb, rels, [("a/a_0001.jpg", "c/c_0001.jpg", False)])
    (tmp_path / "folds.txt").write_text("7\t300\nx 1 2\n")
    (tmp_path / "view1.txt").write_text("1100\nx 1 2\n")
    assert lfw_fold_count(tmp_path / "folds.txt") == 7 and lfw_fold_count(tmp_path / "view1.txt") == 10
