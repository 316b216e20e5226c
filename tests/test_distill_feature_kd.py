"""Feature-level distillation: the training-only projection, its loss, targets files, and a run with resume."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from distill_helpers import interrupt_then_resume, make_labelled_tree, metrics_rows, recipe_dict  # noqa: E402

from edgefiq.distill import DistillConfig, distill  # noqa: E402
from edgefiq.distill.feature_kd import FeatureHead, feature_loss, load_targets, save_targets  # noqa: E402
from edgefiq.errors import UsageError  # noqa: E402
from edgefiq.models.students import tiny_cnn  # noqa: E402
from edgefiq.recipe import from_mapping  # noqa: E402


def test_feature_loss_hand_values_and_gradients():
    a, b = torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[4.0, 3.0], [-2.0, 0.0]])
    # cos = 24/25 and -1: mean of (1 - cos) = (1/25 + 2) / 2
    assert feature_loss(a, b, "cosine").item() == pytest.approx((1 / 25 + 2) / 2)
    assert feature_loss(a, b, "mse").item() == pytest.approx((1 + 1 + 9 + 0) / 4)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 5, dtype=torch.float64)
    for kind in ("cosine", "mse"):
        assert torch.autograd.gradcheck(lambda p: feature_loss(p, t, kind), (x,))
    with pytest.raises(UsageError, match="cosine"):
        feature_loss(a, b, "l1")


def test_feature_head_taps_the_score_head_without_changing_scores():
    torch.manual_seed(0)
    student = tiny_cnn(width=4).eval()
    x = torch.randn(3, 3, 32, 32)
    plain = student(x)
    fkd = FeatureHead(student, dim=5)
    score, vec = fkd(x)
    assert torch.equal(score, plain) and vec.shape == (3, 5)
    pooled = torch.flatten(student.pool(student.features(x)), 1)   # the head's input
    assert torch.allclose(vec, fkd.proj(pooled))
    fkd.remove()
    assert not student.head._forward_pre_hooks
    with pytest.raises(UsageError, match="score head"):
        FeatureHead(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)), dim=3)


def test_targets_file_round_trip_alignment_and_errors(tmp_path):
    p = save_targets(tmp_path / "t.npz", ["a/1.png", "b/2.png", "c/3.png"], np.arange(6).reshape(3, 2))
    assert load_targets(p, ["c/3.png", "a/1.png"]).tolist() == [[4, 5], [0, 1]]
    with pytest.raises(UsageError, match="1 of 2 training images have no vector"):
        load_targets(p, ["a/1.png", "z/9.png"])
    np.savez(tmp_path / "bad.npz", paths=np.array(["a"]), emb=np.zeros((1, 2)))
    with pytest.raises(UsageError, match="'paths' and 'vectors'"):
        load_targets(tmp_path / "bad.npz", ["a"])


def _tree_with_targets(root: Path) -> Path:
    labels = make_labelled_tree(root)
    rows = [ln.split(",") for ln in labels.read_text().splitlines()[1:]]
    rng = np.random.default_rng(0)
    # a vector per image that carries its label (as an FR embedding carries what the network saw)
    q = np.array([float(v) for _, v in rows])
    vectors = np.c_[q, 1 - q, rng.normal(0, 0.1, (len(q), 2))]
    return save_targets(root / "targets.npz", [r for r, _ in rows], vectors)


def test_distill_with_feature_kd_learns_the_vectors_and_resumes_exactly(tmp_path, monkeypatch):
    from edgefiq.models.checkpoint import read_checkpoint

    targets = _tree_with_targets(tmp_path)
    rec = recipe_dict(tmp_path, feature_kd={"targets": str(targets), "weight": 1.0, "loss": "mse"},
                      optim={"epochs": 4, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0.5})
    cfg = from_mapping(DistillConfig, rec)
    res = distill(cfg, tmp_path / "full")
    rows = metrics_rows(tmp_path / "full")
    assert rows[-1]["train_feature_kd"] < rows[0]["train_feature_kd"]
    assert np.isfinite(res.metrics["val_srcc"])
    best, last = read_checkpoint(res.best), read_checkpoint(res.last)
    assert not any(k.startswith("proj") for k in best["state_dict"])   # the exported student is plain
    assert set(last["feature_proj"]) == {"weight", "bias"}
    # the feature term changes the trajectory of the same seed
    plain = distill(from_mapping(DistillConfig, {**rec, "feature_kd": {}}), tmp_path / "plain")
    assert plain.metrics["train_loss"] != res.metrics["train_loss"]

    # interrupted after epoch 2, resumed: the same per-epoch metrics as the uninterrupted run
    interrupt_then_resume(cfg, tmp_path / "cut", monkeypatch, after_epoch=1)
    assert metrics_rows(tmp_path / "cut") == rows
    with pytest.raises(UsageError, match="without feature_kd"):
        distill(cfg, tmp_path / "plain", resume=True)


def test_feature_kd_needs_targets_and_offline_labels(tmp_path):
    make_labelled_tree(tmp_path)
    with pytest.raises(UsageError, match="feature_kd.targets"):
        distill(from_mapping(DistillConfig, recipe_dict(tmp_path, feature_kd={"weight": 1.0})), tmp_path / "a")
    online = recipe_dict(tmp_path, feature_kd={"weight": 1.0, "targets": "t.npz"},
                         data={"images": str(tmp_path / "imgs"), "teacher": "severity"})
    with pytest.raises(UsageError, match="offline labels"):
        distill(from_mapping(DistillConfig, online), tmp_path / "b")


def test_cli_feature_kd_flags(tmp_path):
    from click.testing import CliRunner

    from edgefiq.cli.distill import distill as cli

    targets = _tree_with_targets(tmp_path)
    assert "--feature-kd" in CliRunner().invoke(cli, ["--help"]).output
    r = CliRunner().invoke(cli, ["--images", str(tmp_path / "imgs"), "--labels", str(tmp_path / "labels.csv"),
                                 "--student", "tiny_cnn", "--epochs", "1", "--batch-size", "8", "--threads", "1",
                                 "--set", "input_size=[32, 32]", "--feature-targets", str(targets),
                                 "--feature-kd", "0.5", "-o", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert "train_feature_kd" in (tmp_path / "run" / "metrics.jsonl").read_text()
    assert "weight: 0.5" in (tmp_path / "run" / "recipe.yaml").read_text()
