"""Face recognition backbones: MobileFaceNet vs the shared weights/ONNX, IResNet arcface_torch layout, embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgefiq.errors import DataError
from edgefiq.models.fr import embed_paths, infer_arch, load_fr_model
from edgefiq.models.iresnet import IRESNET_LAYERS
from edgefiq.models.mobilefacenet import MobileFaceNet
from edgefiq.registry import FR_MODELS


def arcface_torch_keys(layers: tuple[int, int, int, int], num_features: int = 512) -> list[tuple[str, tuple[int, ...]]]:
    """Expected (key, shape) list of insightface recognition/arcface_torch/backbones/iresnet.py.

    Written from that source: stem conv1(3->64, 3x3) / bn1 / prelu; layerN of IBasicBlock
    (bn1, conv1 3x3, bn2, prelu, conv2 3x3 stride, bn3) with a downsample Sequential(conv1x1, BN) on
    the first block of every layer (all layers have stride 2); bn2, fc (512*7*7 -> F), features BN1d.
    """
    bn = lambda p, c: [(f"{p}.weight", (c,)), (f"{p}.bias", (c,)), (f"{p}.running_mean", (c,)),  # noqa: E731
                       (f"{p}.running_var", (c,)), (f"{p}.num_batches_tracked", ())]
    keys = [("conv1.weight", (64, 3, 3, 3)), *bn("bn1", 64), ("prelu.weight", (64,))]
    cin = 64
    for li, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for b in range(n):
            p = f"layer{li}.{b}"
            c_in = cin if b == 0 else planes
            keys += [*bn(f"{p}.bn1", c_in), (f"{p}.conv1.weight", (planes, c_in, 3, 3)), *bn(f"{p}.bn2", planes),
                     (f"{p}.prelu.weight", (planes,)), (f"{p}.conv2.weight", (planes, planes, 3, 3)),
                     *bn(f"{p}.bn3", planes)]
            if b == 0:
                keys += [(f"{p}.downsample.0.weight", (planes, c_in, 1, 1)), *bn(f"{p}.downsample.1", planes)]
        cin = planes
    keys += [*bn("bn2", 512), ("fc.weight", (num_features, 512 * 49)), ("fc.bias", (num_features,)),
             *bn("features", num_features)]
    return keys


@pytest.mark.parametrize("name", sorted(IRESNET_LAYERS))
def test_iresnet_keys_match_arcface_torch(name: str) -> None:
    with torch.device("meta"):
        model = FR_MODELS.get(name)()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = dict(arcface_torch_keys(IRESNET_LAYERS[name]))
    assert got == expected


def test_iresnet50_state_dict_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = FR_MODELS.get("iresnet50")().eval()
    path = tmp_path / "r50.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, path)  # DDP-style file
    loaded = load_fr_model(path)  # arch inferred from the keys, strict load
    assert loaded.arch == "iresnet50" and loaded.preprocess.mean == (0.5, 0.5, 0.5)
    ref = model.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in loaded.state_dict().items())


def test_iresnet18_forward_after_reload(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = FR_MODELS.get("iresnet18")(num_features=64).eval()
    for m in model.modules():  # non-trivial BN statistics so a wrong load would show
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), tmp_path / "r18.pt")
    loaded = load_fr_model(tmp_path / "r18.pt")
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        y = loaded(x)
        assert y.shape == (1, 64) and torch.equal(model(x), y)
        f = loaded.features_pre_head(x)
        assert torch.equal(loaded.head(f), y)


def test_infer_arch_and_errors(tmp_path: Path) -> None:
    assert infer_arch(MobileFaceNet(embedding_size=64).state_dict()) == ("mobilefacenet", {"embedding_size": 64})
    with pytest.raises(DataError, match="cannot infer"):
        infer_arch({"foo.weight": torch.zeros(1)})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.pt"):
        load_fr_model(bad)
    with pytest.raises(DataError, match="not found"):
        load_fr_model(tmp_path / "missing.pt")


def test_embed_paths_normalised_and_flip(tmp_path: Path, rng: np.random.Generator) -> None:
    from PIL import Image

    torch.manual_seed(0)
    path = tmp_path / "mfn.pt"
    torch.save(MobileFaceNet().state_dict(), path)
    fr = load_fr_model(path)
    files = []
    for i in range(4):
        f = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(f)
        files.append(f)
    e = embed_paths(fr, files, batch_size=2)
    ef = embed_paths(fr, files, batch_size=3, flip=True)
    assert e.shape == (4, 128) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ef, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(e, ef)
    np.testing.assert_allclose(e, embed_paths(fr, files, batch_size=4), atol=1e-5)  # batching does not matter


@pytest.mark.shared_data
def test_mobilefacenet_matches_shared_keys_and_onnx(shared: Path, mobilefacenet_pt: Path) -> None:
    tsv = shared / "models" / "mobilefacenet" / "state_dict_keys.tsv"
    expected = {}
    for line in tsv.read_text().splitlines():
        k, shape = line.split("\t")
        expected[k] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    assert {k: tuple(v.shape) for k, v in MobileFaceNet().state_dict().items()} == expected
    fr = load_fr_model(mobilefacenet_pt)  # strict=True inside
    onnx = load_fr_model(mobilefacenet_pt.parent / "MobileFaceNet.onnx")
    assert onnx.fixed_batch == 1  # the file hard-codes batch 1; the wrapper loops
    x = torch.randn(3, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (fr(x) - onnx(x)).abs().max().item()
    assert diff < 1e-4


@pytest.mark.shared_data
@pytest.mark.slow
def test_lfw_dev_verification_accuracy(tmp_path: Path, shared: Path, mobilefacenet_pt: Path) -> None:
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import verify_fr

    out = tmp_path / "fr"
    assert verify_fr.main(["--fr-model", str(mobilefacenet_pt), "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    assert res["folds"] == 7 and res["n_pairs"] == 4200
    assert res["accuracy_mean"] >= 0.99
