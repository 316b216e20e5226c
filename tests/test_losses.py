"""Losses: each against a hand-computed value and a float64 gradcheck; the recipe-weighted hybrid."""

from __future__ import annotations

import math

import pytest
import torch

from edgefiq.errors import RecipeError, UsageError
from edgefiq.losses import HybridLoss
from edgefiq.registry import LOSSES

P = torch.tensor([0.2, 0.9, 0.4, 0.7], dtype=torch.float64)
T = torch.tensor([0.1, 0.8, 0.6, 0.3], dtype=torch.float64)


def test_registry_lists_every_loss():
    assert LOSSES.names() == ["focal_ls", "kd_mse", "margin_rank", "mse", "plcc", "rank", "wing"]


def test_plcc_hand_value():
    # p - mean = [-.35, .35, -.15, .15]; t - mean = [-.35, .35, .15, -.15]
    num = .35 * .35 + .35 * .35 - .15 * .15 - .15 * .15  # = 0.2
    den = math.sqrt(2 * .35 ** 2 + 2 * .15 ** 2) ** 2      # = 0.29
    assert LOSSES.get("plcc")()(P, T).item() == pytest.approx(1 - num / den, abs=1e-7)  # eps=1e-8 in the denominator
    assert LOSSES.get("plcc")()(P, 3 * P + 1).item() == pytest.approx(0.0, abs=1e-7)


def test_rank_hand_value():
    p = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    # ordered pairs with different targets: (0,1),(1,0),(0,2),(2,0); tie (1,2) excluded
    # each term log(1 + exp(-(p_i - p_j) sign(t_i - t_j))): (0,1): dp=-1, s=-1 -> log(1+e^-1); same for (1,0)
    # (0,2): dp=-3, s=-1 -> log(1+e^-3); same for (2,0)
    want = (2 * math.log1p(math.exp(-1)) + 2 * math.log1p(math.exp(-3))) / 4
    assert LOSSES.get("rank")()(p, t).item() == pytest.approx(want, abs=1e-12)
    assert LOSSES.get("rank")()(p, torch.ones(3, dtype=torch.float64)).item() == 0.0  # all ties


def test_wing_hand_value():
    w, eps = 0.5, 0.1
    c = w - w * math.log(1 + w / eps)
    pred = torch.tensor([0.2, 1.0], dtype=torch.float64)
    want = (w * math.log(1 + 0.2 / eps) + (1.0 - c)) / 2
    assert LOSSES.get("wing")(w=w, eps=eps)(pred, torch.zeros(2, dtype=torch.float64)).item() == pytest.approx(want)


def test_focal_ls_hand_value_and_seeded_noise():
    loss = LOSSES.get("focal_ls")(eps=0.0, gamma=2.0)
    mse = ((P - T) ** 2).mean().item()
    assert loss(P, T).item() == pytest.approx((1 - math.exp(-mse)) ** 2 * mse)
    a, b = LOSSES.get("focal_ls")(eps=0.1, seed=3), LOSSES.get("focal_ls")(eps=0.1, seed=3)
    assert a(P, T).item() == b(P, T).item()          # same seed, same noise
    assert a(P, T).item() != a(P, T).item()          # fresh draw per call (state advances)
    state = a.state_dict()
    v1 = a(P, T).item()
    a.load_state_dict(state)
    assert a(P, T).item() == v1                       # noise state is checkpointed
    a.eval()
    assert a(P, T).item() == pytest.approx(LOSSES.get("focal_ls")(eps=0.0)(P, T).item())


def test_kd_mse_hand_value():
    loss = LOSSES.get("kd_mse")(temperature=4.0)
    want = (((P / 4 - T / 4) ** 2).mean() * 16).item()
    assert loss(P, T).item() == pytest.approx(want)
    assert want == pytest.approx(((P - T) ** 2).mean().item())  # MSE is temperature-invariant after T^2


def test_margin_rank_hand_value():
    pred = torch.tensor([0.9, 0.85, 0.3, 0.5], dtype=torch.float64)
    sev = torch.tensor([0.0, 0.5, 0.0, 1.0], dtype=torch.float64)
    ci = torch.tensor([-1, 0, -1, 2])
    # pair (0,1): margin .2*.5=.1, gap .05 -> .05; pair (2,3): margin .2, gap -.2 -> .4
    got = LOSSES.get("margin_rank")(lam=0.2)(pred, pred, severity=sev, clean_index=ci).item()
    assert got == pytest.approx((0.05 + 0.4) / 2)
    assert LOSSES.get("margin_rank")()(pred, pred).item() == 0.0  # no pair information -> no signal


def test_mse_hand_value():
    assert LOSSES.get("mse")()(P, T).item() == pytest.approx(((P - T) ** 2).mean().item())


@pytest.mark.parametrize("name,opts,extra", [
    ("plcc", {}, {}), ("rank", {"scale": 2.0}, {}), ("wing", {"w": 0.5, "eps": 0.1}, {}),
    ("focal_ls", {"eps": 0.0, "gamma": 1.5}, {}), ("kd_mse", {"temperature": 2.0}, {}), ("mse", {}, {}),
    ("margin_rank", {"lam": 0.2}, {"severity": torch.tensor([0.0, 0.5, 0.0, 1.0], dtype=torch.float64),
                                  "clean_index": torch.tensor([-1, 0, -1, 2])}),
])
def test_gradcheck(name, opts, extra):
    loss = LOSSES.get(name)(**opts)
    # points away from kinks (|x| = 0 or w for wing, hinge at 0 for margin_rank)
    pred = torch.tensor([0.9, 0.85, 0.3, 0.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: loss(p, T, **extra), (pred,))


def test_hybrid_weighted_sum_and_errors():
    h = HybridLoss({"plcc": 1.0, "rank": 0.5, "mse": 0.0}, {"rank": {"scale": 2.0}})
    out = h(P, T)
    assert set(out) == {"loss", "plcc", "rank"}
    want = LOSSES.get("plcc")()(P, T) + 0.5 * LOSSES.get("rank")(scale=2.0)(P, T)
    assert out["loss"].item() == pytest.approx(want.item())
    with pytest.raises(UsageError, match="did you mean 'rank'"):
        HybridLoss({"rnak": 1.0})
    with pytest.raises(RecipeError, match="not in losses"):
        HybridLoss({"plcc": 1.0}, {"wing": {"w": 1.0}})
    with pytest.raises(RecipeError, match="loss_options.plcc"):
        HybridLoss({"plcc": 1.0}, {"plcc": {"bogus": 1}})
