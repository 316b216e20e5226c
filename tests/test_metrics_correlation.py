"""SRCC / PLCC / KRCC on hand-computed cases, ties, and against a brute-force tau-b."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edgefiq.metrics import krcc, plcc, srcc
from edgefiq.metrics.correlation import average_ranks


def test_average_ranks_ties():
    assert average_ranks([3, 1, 3, 2, 3]).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]


def test_plcc_hand():
    # a = [1,2,3], b = [2,4,7]: centred a = [-1,0,1], b = [-7/3,-1/3,8/3]
    # cov = 7/3 + 8/3 = 5; |a| = sqrt(2); |b|^2 = (49+1+64)/9 = 114/9
    assert plcc([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))


def test_srcc_hand_with_ties():
    # ranks a = [1, 2.5, 2.5, 4], ranks b = [1, 2, 3, 4] -> pearson of the ranks
    a, b = [10, 20, 20, 30], [1, 2, 3, 4]
    ra, rb = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4.0])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    expected = (ra * rb).sum() / math.sqrt((ra**2).sum() * (rb**2).sum())
    assert srcc(a, b) == pytest.approx(expected)
    assert srcc([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0


def test_krcc_hand():
    # one discordant pair (2,3) out of 6: (5 - 1) / 6
    assert krcc([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ties: a=[1,1,2], b=[1,2,3]: pairs (0,1) tied in a, (0,2),(1,2) concordant
    # tau_b = (2 - 0) / sqrt((3 - 1) * (3 - 0))
    assert krcc([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


def _tau_b_brute(a, b):
    n_c = n_d = t_a = t_b = 0
    n = len(a)
    for i, j in itertools.combinations(range(n), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0:
            t_a += 1
        if db == 0:
            t_b += 1
        if da * db > 0:
            n_c += 1
        elif da * db < 0:
            n_d += 1
    n0 = n * (n - 1) / 2
    return (n_c - n_d) / math.sqrt((n0 - t_a) * (n0 - t_b))


@pytest.mark.parametrize("seed", range(5))
def test_krcc_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, 60).astype(float)   # many ties
    b = a + rng.integers(-3, 4, 60)
    assert krcc(a, b) == pytest.approx(_tau_b_brute(a.tolist(), b.tolist()))


def test_constant_is_nan_and_bad_input_raises():
    assert math.isnan(srcc([1, 1, 1], [1, 2, 3]))
    assert math.isnan(plcc([1, 1, 1], [1, 2, 3]))
    assert math.isnan(krcc([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="length"):
        srcc([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        plcc([1, float("nan")], [1, 2])
