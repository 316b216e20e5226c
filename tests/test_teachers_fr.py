"""FR-based teachers (prefiqs, norm, serfiq) on a small random-weight MobileFaceNet and synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgefiq.errors import UsageError
from edgefiq.models.mobilefacenet import MobileFaceNet
from edgefiq.registry import TEACHERS
from edgefiq.teachers import make_teacher
from edgefiq.teachers.prefiqs import pruned_copy
from edgefiq.teachers.serfiq import serfiq_quality


@pytest.fixture(scope="module")
def fr_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fr") / "mfn.pt"
    torch.save(MobileFaceNet().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    rels = []
    for ident in ("A", "B"):
        (root / ident).mkdir()
        for i in range(3):
            rel = f"{ident}/{ident}_{i:04d}.png"
            Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(root / rel)
            rels.append(rel)
    return root, rels


def test_registry_and_option_errors(fr_pt: Path) -> None:
    assert TEACHERS.names() == ["csv", "ensemble", "model", "norm", "prefiqs", "serfiq", "severity"]
    with pytest.raises(UsageError, match="did you mean 'prefiqs'"):
        make_teacher("prefiq", {})
    with pytest.raises(UsageError, match="does not take --rho"):
        make_teacher("norm", {"fr_model": str(fr_pt), "rho": 0.4})
    with pytest.raises(UsageError, match="rho"):
        make_teacher("prefiqs", {"fr_model": str(fr_pt), "rho": 1.5})
    with pytest.raises(UsageError, match="needs --fr-model"):
        make_teacher("prefiqs", {"fr_model": ""})


def test_prefiqs_scores_and_pruned_copy_cached(fr_pt: Path, images: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, rels = images
    t = make_teacher("prefiqs", {"fr_model": str(fr_pt), "method": "l1", "rho": 0.4}, cache_dir=tmp_path, batch_size=4)
    q = t.score_paths(rels, root=root)
    assert q.shape == (6,) and np.isfinite(q).all() and (q <= 0).all() and (q >= -2).all()
    assert t.torch_pruned() is t.torch_pruned()  # built once
    w = [m.weight for m in t.torch_pruned().modules() if isinstance(m, torch.nn.Conv2d)]
    sparsity = sum(int((x == 0).sum()) for x in w) / sum(x.numel() for x in w)
    assert 0.35 < sparsity < 0.45  # the head (conv3) is left dense
    assert list(tmp_path.glob("pruned-*-l1-0.4-normalized-s0.pt"))  # saved for the next process (default scope)
    cfg = t.config()
    assert cfg["method"] == "l1" and cfg["rho"] == 0.4 and len(cfg["fr_sha256"]) == 64


def test_prefiqs_structured_removes_channels(fr_pt: Path) -> None:
    from edgefiq.models.fr import load_fr_model

    fr = load_fr_model(fr_pt)
    p = pruned_copy(fr, method="structured", rho=0.3)
    n_full = sum(x.numel() for x in fr.parameters())
    n_pruned = sum(x.numel() for x in p.parameters())
    assert n_pruned < 0.8 * n_full
    assert p.conv3.out_channels == 128  # the embedding layer is not pruned
    r1 = pruned_copy(fr, method="random", rho=0.3, seed=1)
    r2 = pruned_copy(fr, method="random", rho=0.3, seed=2)
    assert not torch.equal(r1.conv2[0].weight, r2.conv2[0].weight)
    with pytest.raises(UsageError, match="unknown PreFIQs pruning method"):
        pruned_copy(fr, method="magnitude", rho=0.3)


def test_second_teacher_reuses_cached_full_embeddings(fr_pt: Path, images: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, rels = images
    pre = make_teacher("prefiqs", {"fr_model": str(fr_pt)}, cache_dir=tmp_path, batch_size=4)
    pre.score_paths(rels, root=root)
    norm = make_teacher("norm", {"fr_model": str(fr_pt)}, cache_dir=tmp_path, batch_size=4)
    calls = []
    handle = norm.fr.register_forward_hook(lambda *a: calls.append(1))
    try:
        q_cached = norm.score_paths(rels, root=root)
    finally:
        handle.remove()
    assert calls == []  # full-model embeddings came from the cache
    fresh = make_teacher("norm", {"fr_model": str(fr_pt), "cache": False}, batch_size=4)
    np.testing.assert_allclose(q_cached, fresh.score_paths(rels, root=root), rtol=1e-5)


def test_norm_batch_stats(fr_pt: Path, images: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, rels = images
    raw = make_teacher("norm", {"fr_model": str(fr_pt)}, cache_dir=tmp_path).score_paths(rels, root=root)
    std = make_teacher("norm", {"fr_model": str(fr_pt), "batch_stats": True}, cache_dir=tmp_path).score_paths(rels, root=root)
    assert (raw > 0).all()
    assert std.min() >= -1 and std.max() <= 1
    expected = np.clip((raw - raw.mean()) / raw.std(), -1, 1)
    np.testing.assert_allclose(std, expected, rtol=1e-6, atol=1e-9)


def test_serfiq_quality_formula() -> None:
    same = torch.ones(2, 5, 8)
    assert serfiq_quality(same).tolist() == [1.0, 1.0]
    e = torch.randn(3, 6, 16, generator=torch.Generator().manual_seed(0))
    en = torch.nn.functional.normalize(e.double(), dim=2)
    d = [np.mean([float((en[n, i] - en[n, j]).norm()) for i in range(6) for j in range(6) if i != j]) for n in range(3)]
    np.testing.assert_allclose(serfiq_quality(e, "distance").numpy(), -np.array(d), rtol=1e-9)
    np.testing.assert_allclose(serfiq_quality(e).numpy(), 2 / (1 + np.exp(d)), rtol=1e-9)


def test_serfiq_independent_of_batching(fr_pt: Path, images: tuple[Path, list[str]]) -> None:
    root, rels = images
    a = make_teacher("serfiq", {"fr_model": str(fr_pt), "m": 5}, batch_size=6).score_paths(rels, root=root)
    b = make_teacher("serfiq", {"fr_model": str(fr_pt), "m": 5}, batch_size=4).score_paths(rels[2:], root=root)
    assert np.isfinite(a).all() and ((a > 0) & (a <= 1)).all()
    np.testing.assert_allclose(a[2:], b, rtol=1e-5)
    with pytest.raises(UsageError, match="--passes"):
        make_teacher("serfiq", {"fr_model": str(fr_pt), "m": 1})
