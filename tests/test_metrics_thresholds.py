"""Quality thresholds: score distributions, reject fractions, and the eval threshold table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgefiq.cli import cli
from edgefiq.metrics.edc import Comparisons, threshold_at_fmr
from edgefiq.metrics.thresholds import accept_mask, discard_thresholds, score_distribution, threshold_for_fraction

from test_eval import eval_set  # noqa: F401  (fixture)


@pytest.mark.parametrize("n", [200, 1000, 5003])
def test_reject_fraction_rejects_that_fraction_of_the_reference_set(n: int) -> None:
    q = np.random.default_rng(n).normal(size=n)
    dist = score_distribution(q)
    for f in (0.01, 0.1, 0.25, 0.5):
        rejected = 1.0 - accept_mask(q, threshold_for_fraction(dist, f)).mean()
        assert abs(rejected - f) <= 0.01, (f, rejected)
    assert dist["n"] == n and dist["mean"] == pytest.approx(q.mean()) and len(dist["levels"]) == 1001


def test_threshold_for_fraction_errors() -> None:
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        threshold_for_fraction(score_distribution([1.0, 2.0]), 1.5)
    with pytest.raises(ValueError, match="no quantiles"):
        threshold_for_fraction({}, 0.1)
    with pytest.raises(ValueError, match="no finite"):
        score_distribution([np.nan])


def test_discard_thresholds_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    n, m = 60, 900
    q = rng.random(n)
    i, j = rng.integers(0, n, m), rng.integers(0, n, m)
    gen = rng.random(m) < 0.3
    sim = np.where(gen, 0.5 + 0.5 * np.minimum(q[i], q[j]) + 0.1 * rng.normal(size=m), 0.2 * rng.normal(size=m))
    comps = Comparisons(i=i, j=j, similarity=sim, genuine=gen)
    rows = discard_thresholds(comps, q, 0.01, [0.1, 0.3])
    assert [r["fraction"] for r in rows] == [0.0, 0.1, 0.3]
    t_cmp = threshold_at_fmr(sim[~gen], 0.01)
    for r in rows:
        keep = gen & (q[i] >= r["threshold"]) & (q[j] >= r["threshold"])
        assert r["fnmr"] == pytest.approx((keep & (sim <= t_cmp)).sum() / keep.sum())
        assert r["images_rejected"] == pytest.approx((q < r["threshold"]).mean())
        assert abs(r["images_rejected"] - r["fraction"]) <= 1 / n
    # quality informs the similarity here: rejecting low-quality images lowers the FNMR
    assert rows[2]["fnmr"] < rows[0]["fnmr"] and rows[2]["genuine_discarded"] > rows[1]["genuine_discarded"] > 0


def test_eval_reports_thresholds_per_fmr(eval_set, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "rep"
    res = CliRunner().invoke(cli, ["eval", "--images", str(eval_set / "images"), "--identities-from-folders",
                                   "--embeddings", str(eval_set / "emb.npy"), "--embeddings-index",
                                   str(eval_set / "emb.csv"), "--quality", str(eval_set / "informed.csv"),
                                   "--name", "informed", "--random-baseline", "--fmr", "0.05,0.1",
                                   "--reject-fractions", "0.1,0.3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    rows = rep["thresholds"]
    assert {(r["source"], r["fmr"]) for r in rows} == {(s, f) for s in ("informed", "random") for f in (0.05, 0.1)}
    inf = {r["fraction"]: r for r in rows if r["source"] == "informed" and r["fmr"] == 0.05}
    assert sorted(inf) == [0.0, 0.1, 0.3]
    assert inf[0.3]["fnmr"] < inf[0.0]["fnmr"]  # the 30 % noisy images are the ones rejected
    md = (out / "report.md").read_text()
    assert "## Quality thresholds at FMR 0.05" in md and "| informed | 0.3 |" in md
    bad = CliRunner().invoke(cli, ["eval", "--images", ".", "--reject-fractions", "1.5", "-o", str(out)])
    assert bad.exit_code == 2
