"""EDC / pAUC: hand-computed cases for both conventions, a brute-force cross-check, ties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edgefiq.metrics.edc import (Comparisons, comparisons_from_identities, comparisons_from_pairs,
                                 edc_curve, edc_pauc, pauc, pauc_x1e3, threshold_at_fmr)


def _comparisons(sims, genuine, pair_q):
    """Comparison c uses images (2c, 2c+1); image 2c carries the pair quality, 2c+1 is better."""
    n = len(sims)
    q = np.empty(2 * n)
    q[0::2] = pair_q
    q[1::2] = 10.0
    comps = Comparisons(i=np.arange(n) * 2, j=np.arange(n) * 2 + 1, similarity=sims, genuine=genuine)
    return comps, q


# 4 genuine, 4 impostor comparisons (similarity, pair quality)
GEN = [(0.9, 0.8), (0.2, 0.1), (0.7, 0.5), (0.3, 0.3)]
IMP = [(0.1, 0.2), (0.25, 0.05), (0.4, 0.6), (0.05, 0.7)]
SIMS = [s for s, _ in GEN + IMP]
GENUINE = [True] * 4 + [False] * 4
PQ = [q for _, q in GEN + IMP]


def test_threshold_definition():
    # M=4, fmr=0.25 -> k = floor(1) + 1 = 2nd largest = 0.25; match iff sim > 0.25
    assert threshold_at_fmr(np.array([0.1, 0.25, 0.4, 0.05]), 0.25) == 0.25
    # fmr below 1/M -> largest impostor, realised FMR 0
    assert threshold_at_fmr(np.array([0.1, 0.25, 0.4, 0.05]), 0.01) == 0.4


def test_fixed_hand_computed():
    comps, q = _comparisons(SIMS, GENUINE, PQ)
    c = edc_curve(comps, q, fmr=0.25, convention="fixed", discard_limit=0.75)
    # t = 0.25; genuine rejected: 0.2 only -> FNMR(0) = 1/4.
    # genuine by quality: 0.2(.1), 0.3(.3), 0.7(.5), 0.9(.8); discarding the first removes the error
    assert c.discard.tolist() == [0, 0.25, 0.5, 0.75]
    assert c.fnmr.tolist() == [0.25, 0, 0, 0]
    assert c.threshold.tolist() == [0.25] * 4
    assert c.discard_over == "genuine"
    # trapezoid 0..0.25: (0.25 + 0)/2 * 0.25, then 0 up to 0.3
    assert pauc(c, 0.3) == pytest.approx(0.03125)
    assert pauc_x1e3(c, 0.3) == pytest.approx(31.25)
    # this quality is the oracle here: normalised 0
    assert c.oracle_fnmr.tolist() == [0.25, 0, 0, 0]
    assert pauc(c, 0.3, normalise=True) == pytest.approx(0.0)


def test_reestimate_hand_computed():
    comps, q = _comparisons(SIMS, GENUINE, PQ)
    c = edc_curve(comps, q, fmr=0.25, convention="reestimate", discard_limit=0.5, step=0.125)
    # all 8 by pair quality: i.25(.05) g.2(.1) i.1(.2) g.3(.3) g.7(.5) i.4(.6) i.05(.7) g.9(.8)
    # k=0: t=0.25 (M=4), rejects g.2 -> 1/4
    # k=1: imps {.1,.4,.05}, floor(.75)=0 -> t=.4; rejects g.2, g.3 -> 2/4
    # k=2: genuine {.3,.7,.9}, t=.4 -> 1/3;  k=3: imps {.4,.05} t=.4 -> 1/3;  k=4: {.7,.9} -> 0
    assert c.discard.tolist() == [0, 0.125, 0.25, 0.375, 0.5]
    assert c.fnmr.tolist() == pytest.approx([0.25, 0.5, 1 / 3, 1 / 3, 0.0])
    assert c.threshold.tolist() == [0.25, 0.4, 0.4, 0.4, 0.4]
    expected = (0.25 + 0.5) / 2 * 0.125 + (0.5 + 1 / 3) / 2 * 0.125 + (1 / 3) * 0.05
    assert pauc(c, 0.3) == pytest.approx(expected)


def test_fixed_over_all_comparisons_hand():
    comps, q = _comparisons(SIMS, GENUINE, PQ)
    c = edc_curve(comps, q, fmr=0.25, convention="fixed", discard_over="all", discard_limit=0.25)
    # first i.25 (FNMR unchanged 1/4), then g.2 -> 0/3
    assert c.discard.tolist() == [0, 0.125, 0.25]
    assert c.fnmr.tolist() == pytest.approx([0.25, 0.25, 0.0])


def test_ties_never_split_and_order_independent():
    sims = [0.9, 0.2, 0.7, 0.3, 0.1, 0.25, 0.4, 0.05]
    pq = [0.5, 0.1, 0.5, 0.1, 0.3, 0.3, 0.3, 0.3]  # two tied genuine groups of 2
    comps, q = _comparisons(sims, GENUINE, pq)
    c = edc_curve(comps, q, fmr=0.25, convention="fixed", discard_limit=0.5)
    assert c.discard.tolist() == [0, 0.5]  # the group {g.2, g.3} goes together
    assert c.fnmr.tolist() == [0.25, 0.0]
    perm = np.random.default_rng(3).permutation(8)
    comps_p = Comparisons(i=comps.i[perm], j=comps.j[perm], similarity=comps.similarity[perm],
                          genuine=comps.genuine[perm])
    for conv in ("fixed", "reestimate"):
        a = edc_curve(comps, q, fmr=0.25, convention=conv, discard_limit=1.0, step=None if conv == "fixed" else 0.05)
        b = edc_curve(comps_p, q, fmr=0.25, convention=conv, discard_limit=1.0, step=None if conv == "fixed" else 0.05)
        assert a.discard.tolist() == b.discard.tolist() and a.fnmr.tolist() == b.fnmr.tolist()


def test_constant_quality_is_flat():
    comps, q = _comparisons(SIMS, GENUINE, [0.5] * 8)
    c = edc_curve(comps, q, fmr=0.25)
    assert c.discard.tolist() == [0.0]
    assert pauc(c, 0.3) == pytest.approx(0.25 * 0.3)
    assert pauc(c, 0.3, normalise=True) == pytest.approx(1.0)


def test_pauc_needs_curve_up_to_limit():
    comps, q = _comparisons(SIMS, GENUINE, PQ)
    c = edc_curve(comps, q, fmr=0.25, discard_limit=0.2)
    with pytest.raises(ValueError, match="discard_limit"):
        pauc(c, 0.3)


# ---------------------------------------------------------------- brute force (loops only)

def _brute_threshold(imp, fmr):
    s = sorted(imp, reverse=True)
    k = min(int(math.floor(fmr * len(s) + 1e-9)), len(s) - 1)
    return s[k]


def _brute_curve(sims, genuine, pq, fmr, convention, limit):
    """Independent EDC: discard whole quality levels (<= v), recompute from scratch each time."""
    n_all = len(sims)
    idx_pool = [c for c in range(n_all) if genuine[c]] if convention == "fixed" else list(range(n_all))
    t_fixed = _brute_threshold([sims[c] for c in range(n_all) if not genuine[c]], fmr)
    levels = sorted(set(pq[c] for c in idx_pool))
    out = []
    for cut in [None] + levels:
        kept = [c for c in idx_pool if cut is None or pq[c] > cut]
        frac = (len(idx_pool) - len(kept)) / len(idx_pool)
        gen_kept = [c for c in kept if genuine[c]]
        if not gen_kept:
            break
        if convention == "fixed":
            t = t_fixed
        else:
            imp_kept = [sims[c] for c in kept if not genuine[c]]
            if not imp_kept:
                break
            t = _brute_threshold(imp_kept, fmr)
        out.append((frac, sum(1 for c in gen_kept if sims[c] <= t) / len(gen_kept)))
        if frac >= limit:
            break
    return out


def _brute_pauc(points, limit):
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 >= limit:
            break
        if x1 > limit:
            y1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            x1 = limit
        area += (x1 - x0) * (y0 + y1) / 2
    if points[-1][0] < limit:
        area += (limit - points[-1][0]) * points[-1][1]
    return area


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("convention", ["fixed", "reestimate"])
def test_matches_brute_force_on_random_data(seed, convention):
    rng = np.random.default_rng(seed)
    n_img = 60
    ids = rng.integers(0, 12, n_img)
    emb = rng.normal(size=(n_img, 8)) + 1.5 * rng.normal(size=(12, 8))[ids]
    quality = np.round(rng.random(n_img), 1)  # coarse: many ties
    comps = comparisons_from_identities(emb, ids.tolist())
    pq = np.minimum(quality[comps.i], quality[comps.j]).tolist()
    sims, gen = comps.similarity.tolist(), comps.genuine.tolist()
    for fmr in (1e-2, 1e-1):
        curve = edc_curve(comps, quality, fmr=fmr, convention=convention, discard_limit=0.3,
                          step=1e-6 if convention == "reestimate" else None)
        brute = _brute_curve(sims, gen, pq, fmr, convention, 0.3)
        assert curve.discard.tolist() == pytest.approx([p[0] for p in brute])
        assert curve.fnmr.tolist() == pytest.approx([p[1] for p in brute])
        assert pauc(curve, 0.3) == pytest.approx(_brute_pauc(brute, 0.3))
    assert edc_pauc(comps, quality, fmr=0.1, convention=convention) == pytest.approx(
        1e3 * _brute_pauc(_brute_curve(sims, gen, pq, 0.1, convention, 0.3), 0.3))


# ---------------------------------------------------------------- comparison builders

def test_comparisons_from_identities_all_pairs():
    rng = np.random.default_rng(0)
    ids = [0, 0, 1, 1, 1, 2, 3]
    emb = rng.normal(size=(7, 5))
    c = comparisons_from_identities(emb, ids, chunk=3)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    expected = {(i, j): (float(e[i] @ e[j]), ids[i] == ids[j]) for i, j in itertools.combinations(range(7), 2)}
    got = {(int(i), int(j)): (float(s), bool(g)) for i, j, s, g in zip(c.i, c.j, c.similarity, c.genuine)}
    assert set(got) == set(expected)
    for k, (s, g) in expected.items():
        assert got[k][0] == pytest.approx(s, abs=1e-6) and got[k][1] == g
    assert c.n_genuine == 1 + 3


def test_sampled_impostors_seeded_unique_and_impostor():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 20, 200).tolist()
    emb = rng.normal(size=(200, 4))
    a = comparisons_from_identities(emb, ids, max_impostors=500, seed=7)
    b = comparisons_from_identities(emb, ids, max_impostors=500, seed=7)
    assert a.n_impostor == 500
    imp = ~a.genuine
    assert np.array_equal(a.i, b.i) and np.array_equal(a.j, b.j)
    keys = set(zip(a.i[imp].tolist(), a.j[imp].tolist()))
    assert len(keys) == 500 and all(i < j and ids[i] != ids[j] for i, j in keys)


def test_comparisons_from_pairs():
    emb = np.array([[1.0, 0], [0, 2.0], [1.0, 1.0]])
    c = comparisons_from_pairs(emb, [(0, 2, 1), (0, 1, 0)])
    assert c.similarity.tolist() == pytest.approx([math.sqrt(0.5), 0.0])
    assert c.genuine.tolist() == [True, False]
    with pytest.raises(ValueError, match="out of range"):
        comparisons_from_pairs(emb, [(0, 3, 1)])
