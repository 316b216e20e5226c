"""``precision="bf16"``: the teachers' FR passes run by OpenVINO in bfloat16, checked against fp32 (onnxruntime).

The runner tests need a CPU with native bfloat16 (``native_bf16()``) and are skipped elsewhere;
the option checks run everywhere.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from edgefiq.errors import UsageError
from edgefiq.models.mobilefacenet import MobileFaceNet
from edgefiq.teachers import make_teacher
from edgefiq.teachers.cache import EmbeddingCache
from face_helpers import smooth_noisy_faces  # noqa: E402

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")


def _needs_bf16() -> None:
    from edgefiq.teachers.onnx_graph import native_bf16

    if not native_bf16():
        pytest.skip("this CPU has no native bfloat16")


@pytest.fixture(scope="module")
def fr_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight MobileFaceNet with non-trivial BatchNorm statistics (its embeddings vary with the input)."""
    torch.manual_seed(0)
    m = MobileFaceNet().eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.05, 0.5)
                mod.weight.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("fr") / "mfn.pt"
    torch.save(m.state_dict(), path)
    return path


def test_precision_option_is_checked(fr_pt: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--precision must be one of fp32, bf16"):
        make_teacher("norm", {"fr_model": str(fr_pt), "precision": "fp16"}, cache_dir=tmp_path)
    with pytest.raises(UsageError, match="OpenVINO on the CPU"):
        make_teacher("norm", {"fr_model": str(fr_pt), "precision": "bf16"}, device="cuda", cache_dir=tmp_path)
    with pytest.raises(UsageError, match="cannot use --runtime torch"):
        make_teacher("prefiqs", {"fr_model": str(fr_pt), "precision": "bf16", "runtime": "torch"}, cache_dir=tmp_path)
    with pytest.raises(UsageError, match="does not take --precision"):
        make_teacher("severity", {"precision": "bf16"}, cache_dir=tmp_path)
    t = make_teacher("prefiqs", {"fr_model": str(fr_pt), "precision": "bf16"}, cache_dir=tmp_path)
    assert t.config()["precision"] == "bf16" and t.config()["runtime"] == "openvino-bf16"
    assert make_teacher("prefiqs", {"fr_model": str(fr_pt)}, cache_dir=tmp_path).config()["precision"] == "fp32"


def test_bf16_embeddings_have_their_own_cache_file(tmp_path: Path) -> None:
    fp32, bf16 = EmbeddingCache(tmp_path, "ab" * 32), EmbeddingCache(tmp_path, "ab" * 32, variant="bf16")
    assert fp32.path != bf16.path and bf16.path.name.endswith("-bf16.sqlite")
    fp32.put_many(["a.jpg"], False, ["1:1"], np.ones((1, 4), np.float32))
    assert bf16.get_all(["a.jpg"], False, ["1:1"]) is None


def test_bf16_runner_close_to_onnxruntime_and_feeds_fixed_batches(tmp_path: Path) -> None:
    _needs_bf16()
    from edgefiq.teachers.onnx_graph import OrtRunner, OvBf16Runner

    torch.manual_seed(0)
    fixed = tmp_path / "fixed.onnx"
    torch.onnx.export(MobileFaceNet().eval(), (torch.zeros(1, 3, 112, 112),), str(fixed), opset_version=17,
                      dynamo=False, input_names=["input"], output_names=["emb"])
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 112, 112)).astype(np.float32)
    ref, got = OrtRunner(fixed, threads=1)(x), OvBf16Runner(fixed, threads=1)(x)  # batch 1 graph: five calls
    assert got.shape == ref.shape == (5, 128)
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 0.98  # bfloat16 keeps 8 bits of mantissa: close, not equal
    assert not np.allclose(ref, got, atol=1e-6)  # it really computed in bfloat16


@pytest.mark.parametrize("teacher, options", [("prefiqs", {"rho": 0.4}), ("norm", {}), ("serfiq", {"m": 6})])
def test_bf16_teachers_rank_like_fp32(teacher: str, options: dict, fr_pt: Path, tmp_path: Path) -> None:
    _needs_bf16()
    from edgefiq.metrics import srcc

    rels = smooth_noisy_faces(tmp_path / "img", 24, identities=3, noise=(3.0, 4.0), seed=1)
    q = {p: make_teacher(teacher, {"fr_model": str(fr_pt), **options, "precision": p}, cache_dir=tmp_path / "c",
                         batch_size=8).score_paths(rels, root=tmp_path / "img") for p in ("fp32", "bf16")}
    assert np.isfinite(q["bf16"]).all()
    assert srcc(q["fp32"], q["bf16"]) > 0.9


@pytest.mark.shared_data
@pytest.mark.slow
def test_label_prefiqs_bf16_agrees_with_fp32_on_lfw(tmp_path: Path, lfw_aligned: Path, shared: Path) -> None:
    """``edgefiq label --precision bf16`` on 500 LFW dev images ranks them as fp32 does (SRCC >= 0.99)."""
    _needs_bf16()
    from click.testing import CliRunner

    from edgefiq.cli import cli
    from edgefiq.metrics import srcc

    paths = sorted(lfw_aligned.glob("*/*.jpg"))
    images = tmp_path / "images"
    for k in sorted(np.random.default_rng(0).choice(len(paths), 500, replace=False)):
        (images / paths[k].parent.name).mkdir(parents=True, exist_ok=True)
        (images / paths[k].parent.name / paths[k].name).symlink_to(paths[k])
    q = {}
    for prec in ("fp32", "bf16"):
        out = tmp_path / f"{prec}.csv"
        res = CliRunner().invoke(cli, ["label", str(images), "--teacher", "prefiqs", "--fr-model",
                                       str(shared / "models" / "mobilefacenet" / "mobilefacenet.pt"), "--precision",
                                       prec, "--cache-dir", str(tmp_path / "cache"), "-o", str(out)])
        assert res.exit_code == 0, res.output
        with open(out, newline="") as f:
            q[prec] = {r["path"]: float(r["quality"]) for r in csv.DictReader(f)}
    keys = sorted(q["fp32"])
    assert len(keys) == 500 and sorted(q["bf16"]) == keys
    assert srcc([q["fp32"][k] for k in keys], [q["bf16"][k] for k in keys]) >= 0.99
