"""Pruning on the real students and FR backbones (mobilenetv3_large_100 claim; every architecture in slow)."""

from __future__ import annotations

import pytest
import torch

from edgefiq.prune import prune_model, restore_structure
from edgefiq.prune.unstructured import prunable_weights
from edgefiq.registry import FR_MODELS, STUDENTS

X = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
X64 = X[:, :, :64, :64].contiguous()


def _student(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return STUDENTS.get(name)().eval()


def test_structured_half_on_mobilenetv3_large_cuts_macs_and_params() -> None:
    model, info = prune_model(_student("mobilenetv3_large_100"), X[:1], rho=0.5, method="structured")
    assert info["params_reduction"] >= 0.40 and info["macs_reduction"] >= 0.40
    with torch.no_grad():
        assert model(X).shape == (2,)


@pytest.mark.parametrize("method", ["l1", "random"])
def test_unstructured_040_on_student(method: str) -> None:
    dense = _student("mobilenetv3_small_100")
    with torch.no_grad():
        y0 = dense(X64)
    model, info = prune_model(_student("mobilenetv3_small_100"), X64[:1], rho=0.4, method=method, seed=1)
    ws = prunable_weights(model, X64[:1])
    measured = sum(int((w == 0).sum()) for w in ws.values()) / sum(w.numel() for w in ws.values())
    assert abs(measured - 0.4) <= 0.005 and abs(info["sparsity"] - measured) < 1e-12
    with torch.no_grad():
        assert not torch.allclose(model(X64), y0)


@pytest.mark.slow
def test_structured_onnx_latency_lower_than_unpruned(tmp_path) -> None:
    """Measured once with a wide margin (the benchmark tool records the real numbers)."""
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.models.checkpoint import save_checkpoint
    from edgefiq.pipeline.pruning import prune_checkpoint
    from edgefiq.pipeline.sweep import _onnx, interleaved_latency

    dense = save_checkpoint(tmp_path / "d.pt", _student("mobilenetv3_large_100"), arch="mobilenetv3_large_100",
                            preprocess=Preprocess(size=(112, 112)))
    pruned = prune_checkpoint(dense, tmp_path / "p.pt", rho=0.5, method="structured", round_to=8)
    a, b = _onnx(dense, tmp_path / "onnx"), _onnx(pruned, tmp_path / "onnx")
    t = interleaved_latency([a, b], rounds=3, runs=15)
    assert t[1]["min_ms"] < 0.95 * t[0]["min_ms"], t


ARCHS = [(STUDENTS, n) for n in ("mobilenetv3_small_100", "mobilenetv4_conv_small", "edgenext_xx_small",
                                                    "emo_1m")] + \
        [(FR_MODELS, n) for n in ("mobilefacenet", "iresnet18")]


@pytest.mark.slow
@pytest.mark.parametrize("reg,name", ARCHS, ids=[n for _, n in ARCHS])
def test_structured_on_every_architecture(reg, name: str) -> None:
    torch.manual_seed(0)
    model = reg.get(name)().eval()
    with torch.no_grad():
        shape = model(X).shape
    model, info = prune_model(model, X[:1], rho=0.3, method="structured", round_to=4)
    assert info["params_reduction"] > 0.1 and info["macs_reduction"] > 0.1
    fresh = restore_structure(reg.get(name)(), info["structure"])
    fresh.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        y = model(X)
        assert y.shape == shape
        assert torch.allclose(fresh.eval()(X), y)
