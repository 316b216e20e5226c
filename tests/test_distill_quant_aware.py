"""Quantisation-aware training hooks (``edgefiq.distill.quant_aware``)."""

from __future__ import annotations

import numpy as np
import torch

from edgefiq.distill.quant_aware import fake_quant_uint8, head_input_module, install
from edgefiq.registry import STUDENTS


def test_fake_quant_rounds_to_256_levels_with_straight_through_gradient() -> None:
    x = torch.linspace(-1.0, 3.0, 1000, requires_grad=True)
    y = fake_quant_uint8(x)
    levels = np.unique(y.detach().numpy().round(6))
    assert 200 < len(levels) <= 256
    step = 4.0 / 255
    assert float((y - x).abs().max()) <= step / 2 + 1e-6
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))           # STE inside the range
    assert torch.equal(fake_quant_uint8(torch.zeros(5)), torch.zeros(5))


def test_hooks_round_in_training_only_and_skip_the_head_input() -> None:
    model = STUDENTS.get("mobilenetv3_small_100")()
    assert head_input_module(model) == "net.act2"
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        before = model(x)
    handles = install(model)
    assert len(handles) > 40
    with torch.no_grad():
        assert torch.equal(model(x), before)                  # eval: float model unchanged
        model.train()
        torch.manual_seed(0)
        rounded = model(x)
        torch.manual_seed(0)
        assert torch.equal(model(x), rounded)                 # stateless: same input, same output
    for h in handles:
        h.remove()
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        assert not torch.equal(model(x), rounded)             # the rounding did change the training forward
    assert not any(m._forward_hooks for m in model.modules())


def test_distill_with_quant_aware_trains_and_leaves_no_hooks(tmp_path) -> None:
    from distill_helpers import make_labelled_tree, recipe_dict

    from edgefiq.distill import DistillConfig, distill
    from edgefiq.recipe import from_mapping

    make_labelled_tree(tmp_path)
    runs = {}
    for qa in (False, True):
        cfg = from_mapping(DistillConfig, recipe_dict(tmp_path, quant_aware=qa))
        runs[qa] = distill(cfg, tmp_path / f"run{int(qa)}")
    assert runs[True].best.is_file() and np.isfinite(runs[True].metrics["val_srcc"])
    # the rounding is in the training forward: same seed, different training trajectory
    assert runs[True].metrics["train_loss"] != runs[False].metrics["train_loss"]
