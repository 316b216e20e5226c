"""edgefiq.metrics.bootstrap: the identity-resampled interval of a pAUC ratio."""

from __future__ import annotations

import numpy as np
import pytest

from edgefiq.metrics.bootstrap import (bootstrap_pauc, identity_draws, pauc_ratio_interval, ratio_interval,
                                       weighted_fixed_pauc)
from edgefiq.metrics.edc import comparisons_from_identities, edc_curve, pauc


@pytest.fixture(scope="module")
def verification():
    """60 identities x 5 images; an image's noise sets how far its embedding strays from its identity."""
    rng = np.random.default_rng(1)
    ids = [f"id{k // 5}" for k in range(300)]
    noise = rng.uniform(0.2, 2.5, 300)
    emb = np.repeat(rng.normal(size=(60, 16)), 5, axis=0) + noise[:, None] * rng.normal(size=(300, 16))
    return comparisons_from_identities(emb, ids), ids, noise


@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("ties", [False, True])
def test_unit_weights_reproduce_the_fixed_edc(verification, limit, ties):
    comps, _, noise = verification
    rng = np.random.default_rng(2)
    q = np.round(rng.random(300), 1) if ties else -noise + 0.5 * rng.random(300)
    curve = edc_curve(comps, q, fmr=1e-2, discard_limit=limit)
    g = comps.genuine
    fnm = comps.similarity[g] <= curve.threshold[0]
    assert weighted_fixed_pauc(comps.select(g).pair_quality(q), fnm, np.ones(g.sum()), limit) == \
        pytest.approx(pauc(curve, limit), abs=1e-12)


def test_identity_draws_move_an_identity_together_and_follow_the_seed():
    clusters = ["a", "a", "b", "c", "c", "c"]
    counts, cid = identity_draws(clusters, 40, seed=3)
    w = counts[:, cid]
    assert w.shape == (40, 6)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 4]).all() and (w[:, 4] == w[:, 5]).all()
    assert (counts.sum(axis=1) == 3).all()                     # three identities drawn three times
    assert (identity_draws(clusters, 40, seed=3)[0] == counts).all()
    assert (identity_draws(clusters, 40, seed=4)[0] != counts).any()


def test_ratio_interval(verification):
    comps, ids, noise = verification
    rng = np.random.default_rng(3)
    informed, rand = -noise, rng.random(300)
    assert pauc_ratio_interval(comps, informed, informed, ids, fmr=1e-2, resamples=100) == (1.0, 1.0)
    point = pauc(edc_curve(comps, rand, fmr=1e-2), 0.3) / pauc(edc_curve(comps, informed, fmr=1e-2), 0.3)
    lo, hi = pauc_ratio_interval(comps, rand, informed, ids, fmr=1e-2, resamples=300)
    assert 1 < lo < point < hi                                  # random is clearly worse than the informed quality
    lo2, hi2 = pauc_ratio_interval(comps, rand, informed, ids, fmr=1e-2, resamples=300, level=0.5)
    assert lo <= lo2 < hi2 <= hi
    # the paired resamples: two bootstrap_pauc calls with one seed give the same interval
    a, b = (bootstrap_pauc(comps, q, ids, fmr=1e-2, resamples=300) for q in (rand, informed))
    assert ratio_interval(a, b) == (lo, hi) and a.shape == (300,)
    assert np.median(b) == pytest.approx(pauc(edc_curve(comps, informed, fmr=1e-2), 0.3) * 1e3, rel=0.3)
    with pytest.raises(ValueError, match="one entry per image"):
        pauc_ratio_interval(comps, rand, informed[:10], ids)
