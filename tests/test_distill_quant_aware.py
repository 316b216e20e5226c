"""Quantisation-aware training hooks (``edgefiq.distill.quant_aware``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgefiq.distill.quant_aware import QuantAware, fake_quant_uint8, head_input_module
from edgefiq.registry import STUDENTS


def test_fake_quant_rounds_to_256_levels_over_the_given_range_with_straight_through_gradient() -> None:
    x = torch.linspace(-1.0, 3.0, 1000, requires_grad=True)
    y = fake_quant_uint8(x, -1.0, 3.0)
    levels = np.unique(y.detach().numpy().round(6))
    assert 200 < len(levels) <= 256
    step = 4.0 / 255
    assert float((y - x).detach().abs().max()) <= step / 2 + 1e-6
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))           # STE inside the range
    clipped = fake_quant_uint8(torch.tensor([5.0, -3.0]), -1.0, 3.0)   # outside the fixed range: clamped
    assert torch.allclose(clipped, torch.tensor([3.0, -1.0]), atol=step)
    assert torch.equal(fake_quant_uint8(torch.zeros(5), 0.0, 0.0), torch.zeros(5))


def test_observed_ranges_round_in_training_only_and_skip_the_head_input() -> None:
    model = STUDENTS.get("mobilenetv3_small_100")()
    assert head_input_module(model) == "net.act2"
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        before = model(x)
    qat = QuantAware(model)
    assert len(qat.layers) > 40 and "net.act2" not in qat.layers and "net.conv_head" in qat.layers
    ranges = qat.observe(x)
    assert set(ranges) == set(qat.layers) and not model.training
    # the stem conv's observed range is its float output's range
    with torch.no_grad():
        stem = model.net.conv_stem(x)
    assert ranges["net.conv_stem"] == (float(stem.min()), float(stem.max()))
    model.train()
    qat.activate(ranges)
    qat.freeze_norms()
    assert not model.net.bn1.training and model.net.conv_stem.training
    with torch.no_grad():
        rounded = model(x)
        assert torch.equal(model(x), rounded)                 # fixed ranges: same input, same output
        assert not torch.allclose(rounded, before, atol=1e-6)  # the rounding changed the training forward
        assert torch.allclose(rounded, before, atol=0.2)       # ...by about an 8-bit step, not more
        model.eval()
        assert torch.equal(model(x), before)                  # eval: float model unchanged
    qat.remove()
    assert not any(m._forward_hooks for m in model.modules())


def test_distill_with_quant_aware_last_epochs_picks_best_among_them_and_resumes_exactly(tmp_path, monkeypatch) -> None:
    from distill_helpers import interrupt_then_resume, make_labelled_tree, metrics_rows, recipe_dict

    from edgefiq.distill import DistillConfig, distill
    from edgefiq.recipe import from_mapping

    make_labelled_tree(tmp_path)
    runs = {}
    for qa in (False, True):
        cfg = from_mapping(DistillConfig, recipe_dict(tmp_path, quant_aware=qa, quant_aware_epochs=2))
        runs[qa] = distill(cfg, tmp_path / f"run{int(qa)}")
    assert runs[True].best.is_file() and np.isfinite(runs[True].metrics["val_srcc"])
    assert runs[True].metrics["epoch"] >= 1                   # 3 epochs, the last 2 quantisation-aware
    # epoch 0 is plain training in both runs; the rounding changes the trajectory from epoch 1 on
    h0, h1 = runs[False].history, runs[True].history
    assert h0[0]["train_loss"] == h1[0]["train_loss"] and h0[1]["train_loss"] != h1[1]["train_loss"]

    interrupt_then_resume(cfg, tmp_path / "cut", monkeypatch, after_epoch=1)   # inside the QAT phase
    assert metrics_rows(tmp_path / "cut") == metrics_rows(tmp_path / "run1")
