"""Students: every registered architecture builds, scores a 112x112 batch, and reports params/MACs."""

from __future__ import annotations

import pytest
import torch

from edgefiq.models.students import model_profile
from edgefiq.registry import STUDENTS

EXPECTED = {"tiny_cnn", "mobilenetv3_small_100", "mobilenetv3_large_100", "mobilenetv4_conv_small",
            "edgenext_xx_small", "emo_1m", "emo_5m"}


def test_registry_has_every_student():
    assert EXPECTED <= set(STUDENTS.names())


FAST = {"tiny_cnn", "mobilenetv3_small_100", "emo_1m"}  # the rest are bigger: CI (slow) runs them


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in sorted(EXPECTED)])
def test_student_forward_and_profile(name):
    torch.manual_seed(0)
    m = STUDENTS.get(name)().eval()
    with torch.no_grad():
        y = m(torch.randn(2, 3, 112, 112))
    assert y.shape == (2,) and y.dtype == torch.float32 and torch.isfinite(y).all()
    prof = model_profile(m, (112, 112))
    assert prof["params"] == sum(p.numel() for p in m.parameters())
    assert prof["macs"] > 0
    if name != "tiny_cnn" and name != "emo_5m":
        assert prof["params"] < 5e6 and prof["macs"] < 0.5e9  # VQualA efficiency limits (<=5M, <=0.5 GFLOPs)


def test_emo_sizes_and_head_choice():
    n1 = sum(p.numel() for p in STUDENTS.get("emo_1m")().parameters())
    n5 = sum(p.numel() for p in STUDENTS.get("emo_5m")().parameters())
    assert 1.1e6 < n1 < 1.4e6   # EMO-1M (classifier-less + 1-output head): ~1.28 M
    assert 4.5e6 < n5 < 5.2e6
    m = STUDENTS.get("emo_1m")(head="sigmoid").eval()
    with torch.no_grad():
        y = m(torch.randn(3, 3, 112, 112))
    assert ((y > 0) & (y < 1)).all()


def test_emo_windows_pad_odd_sizes():
    m = STUDENTS.get("emo_1m")().eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 96, 80)).shape == (1,)  # 6x5 / 3x3 maps: padded to the 7x7 window


def test_timm_head_and_weights_errors(tmp_path):
    from edgefiq.errors import DataError, UsageError

    with pytest.raises(UsageError, match="head"):
        STUDENTS.get("mobilenetv3_small_100")(head="tanh")
    with pytest.raises(DataError, match="not found"):
        STUDENTS.get("mobilenetv3_small_100")(weights=str(tmp_path / "none.pth"))
    src = STUDENTS.get("mobilenetv3_small_100")()
    torch.save(src.net.state_dict(), tmp_path / "w.pth")
    dst = STUDENTS.get("mobilenetv3_small_100")(weights=str(tmp_path / "w.pth"))
    assert torch.equal(dst.net.conv_stem.weight, src.net.conv_stem.weight)
    with pytest.raises(UsageError):
        STUDENTS.get("mobilenetv3_smal_100")


def test_model_profile_counts_attention_matmuls():
    # EMO's attention matmuls are counted: MACs exceed the conv+linear-only count
    from torch import nn

    m = STUDENTS.get("emo_1m")()
    conv_linear = 0

    def hook(mod, inp, out):
        nonlocal conv_linear
        if isinstance(mod, nn.Conv2d):
            conv_linear += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            conv_linear += out.numel() * mod.in_features

    hs = [x.register_forward_hook(hook) for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]
    prof = model_profile(m, 112)
    for h in hs:
        h.remove()
    assert prof["macs"] > conv_linear


@pytest.mark.slow
def test_emo_onnx_export_parity(tmp_path):
    """EMO exports with the legacy exporter (opset 17) and matches torch in onnxruntime, dynamic batch."""
    import warnings

    import numpy as np
    import onnxruntime as ort

    m = STUDENTS.get("emo_1m")().eval()
    path = tmp_path / "emo.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(2, 3, 112, 112),), str(path), opset_version=17, dynamo=False,
                          input_names=["input"], output_names=["score"],
                          dynamic_axes={"input": {0: "n"}, "score": {0: "n"}})
    x = torch.randn(5, 3, 112, 112)
    got = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = m(x).numpy()
    assert np.abs(got - want).max() < 1e-4
