"""The int8 parity gate's statistical basis: point SRCC and its bootstrap lower confidence bound."""

from __future__ import annotations

import numpy as np
import pytest

from edgefiq.export.parity import (BOOTSTRAP_RESAMPLES, TOLERANCES, describe_failure, parity_report,
                                   srcc_lower_bound)


def _pair(n: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    ref = g.standard_normal(n)
    return ref, ref + noise * g.standard_normal(n)


def test_int8_gate_records_its_basis_and_is_reproducible() -> None:
    ref, got = _pair(324, 0.08)
    rep = parity_report(ref, got, "int8")
    assert rep["tolerance"] == TOLERANCES["int8"] == {"srcc_min": 0.99, "confidence": 0.95}
    assert rep["basis"] == {"n": 324, "confidence": 0.95, "method": rep["basis"]["method"],
                            "resamples": BOOTSTRAP_RESAMPLES, "seed": 0}
    assert "bootstrap" in rep["basis"]["method"]
    assert rep["srcc_lower_bound"] < rep["srcc_vs_fp32"] and rep["passed"]
    assert parity_report(ref, got, "int8")["srcc_lower_bound"] == rep["srcc_lower_bound"]   # seeded


def test_bound_makes_the_gate_at_least_as_strict_as_the_point_rule() -> None:
    # a point SRCC above 0.99 on few images is not enough evidence; on many images it is
    ref, got = _pair(400, 0.08, seed=0)
    few = parity_report(ref[:40], got[:40], "int8")
    many = parity_report(ref, got, "int8")
    assert few["srcc_vs_fp32"] >= 0.99 and few["srcc_lower_bound"] < 0.99 and not few["passed"]
    assert "lower bound" in describe_failure(few) and "40 images" in describe_failure(few)
    assert many["srcc_lower_bound"] >= 0.99 and many["passed"]
    # without a confidence the tolerance gates the point SRCC alone (the old rule)
    point_only = parity_report(ref[:40], got[:40], "int8", {"int8": {"srcc_min": 0.99}})
    assert point_only["passed"] and "srcc_lower_bound" not in point_only
    # whatever the bound says, a point SRCC below the minimum fails
    ref2, got2 = _pair(400, 0.2, seed=2)
    assert not parity_report(ref2, got2, "int8")["passed"]


def test_bound_covers_the_true_srcc() -> None:
    """Coverage check on a large population: the 95 % bound from 60 small samples is below the
    population SRCC in (nearly) all of them (the bound is conservative; see the module docstring)."""
    from edgefiq.metrics import srcc

    g = np.random.default_rng(5)
    ref = g.standard_normal(20000)
    got = ref + 0.15 * g.standard_t(3, 20000) / np.sqrt(3)   # heavy-tailed errors
    true = srcc(got, ref)
    below = [srcc_lower_bound(ref[i], got[i], resamples=300) <= true
             for i in (g.choice(20000, 64, replace=False) for _ in range(60))]
    assert np.mean(below) >= 0.9


def test_bound_edge_cases() -> None:
    x = np.arange(50.0)
    assert srcc_lower_bound(x, x) == pytest.approx(1.0)
    assert np.isnan(srcc_lower_bound(x[:3], x[:3]))
    assert np.isnan(srcc_lower_bound(x, np.full(50, np.nan)))
    assert not parity_report(x, np.full(50, 0.5), "int8")["passed"]   # constant int8 scores rank nothing
