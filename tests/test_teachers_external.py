"""Teachers without an FR model: severity, csv, model (TorchScript), ensemble rank averaging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgefiq.errors import DataError, UsageError
from edgefiq.teachers import make_teacher
from edgefiq.teachers.ensemble import parse_member, rank01


def _tree(root: Path, n: int = 4) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(1)
    rels = []
    for i in range(n):
        rel = f"P{i % 2}/img_{i}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / rel)
        rels.append(rel)
    return rels


def test_severity_teacher(tmp_path: Path) -> None:
    rels = _tree(tmp_path)
    lines = ["path,source,kind,severity"] + [f"{r},{r},noise,{s}" for r, s in zip(rels, (0, 0.25, 0.5, 1.0))]
    (tmp_path / "index.csv").write_text("\n".join(lines) + "\n")
    q = make_teacher("severity").score_paths(rels, root=tmp_path)
    np.testing.assert_allclose(q, [1.0, 0.75, 0.5, 0.0])
    (tmp_path / "index.csv").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(DataError, match="no severity for"):
        make_teacher("severity").score_paths(rels, root=tmp_path)
    with pytest.raises(DataError, match=r"writes\) not found"):
        make_teacher("severity", {"index": str(tmp_path / "nope.csv")}).score_paths(rels, root=tmp_path)


def test_csv_teacher(tmp_path: Path) -> None:
    rels = _tree(tmp_path)
    csv = tmp_path / "mine.csv"
    csv.write_text("path,quality,other\n" + "".join(f"{r},{i},{-i}\n" for i, r in enumerate(rels)))
    np.testing.assert_allclose(make_teacher("csv", {"csv": str(csv)}).score_paths(rels, root=tmp_path), [0, 1, 2, 3])
    np.testing.assert_allclose(make_teacher("csv", {"csv": str(csv), "column": "other"}).score_paths(rels, root=tmp_path),
                               [0, -1, -2, -3])
    csv.write_text("path,quality\n" + f"{rels[0]},nan\n")
    with pytest.raises(DataError, match="quality is nan"):
        make_teacher("csv", {"csv": str(csv)}).score_paths(rels[:1], root=tmp_path)


def test_model_teacher_torchscript(tmp_path: Path) -> None:
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.data.dataset import iter_image_batches

    rels = _tree(tmp_path)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 2), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 1)).eval()
    ts = torch.jit.trace(net, torch.zeros(1, 3, 112, 112))
    path = tmp_path / "q.ts"
    ts.save(str(path))
    q = make_teacher("model", {"model": str(path)}, batch_size=3).score_paths(rels, root=tmp_path)
    x = next(iter_image_batches([tmp_path / r for r in rels], Preprocess(), batch_size=4))[0]
    with torch.no_grad():
        np.testing.assert_allclose(q, net(x)[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    wide = torch.jit.trace(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 112 * 112, 2)), torch.zeros(1, 3, 112, 112))
    wide.save(str(tmp_path / "wide.ts"))
    with pytest.raises(DataError, match="outputs 2 values"):
        make_teacher("model", {"model": str(tmp_path / "wide.ts")}).score_paths(rels, root=tmp_path)


def test_model_teacher_scores_in_memory_views_like_files(tmp_path: Path) -> None:
    """``score_images`` (online distillation's path) gives the file path's scores for the same pixels,
    for a model file and for an in-memory module."""
    from edgefiq.data.images import load_image
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.teachers.external import ModuleTeacher

    rels = _tree(tmp_path, n=5)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 2), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 1)).eval()
    torch.jit.trace(net, torch.zeros(1, 3, 112, 112)).save(str(tmp_path / "q.ts"))
    views = [load_image(tmp_path / r) for r in rels]
    from_files = make_teacher("model", {"model": str(tmp_path / "q.ts")}, batch_size=2).score_paths(rels, root=tmp_path)
    t = make_teacher("model", {"model": str(tmp_path / "q.ts")}, batch_size=2)
    np.testing.assert_allclose(t.score_images(views), from_files, rtol=1e-5, atol=1e-6)
    mod = ModuleTeacher(net, Preprocess(), batch_size=2)
    np.testing.assert_allclose(mod.score_images(views), from_files, rtol=1e-5, atol=1e-6)
    assert mod.config()["teacher"] == "module" and mod.score_images([]).shape == (0,)


def test_ensemble_rank_average(tmp_path: Path) -> None:
    rels = _tree(tmp_path)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("path,quality\n" + "".join(f"{r},{v}\n" for r, v in zip(rels, (10, 20, 30, 40))))
    b.write_text("path,quality\n" + "".join(f"{r},{v}\n" for r, v in zip(rels, (4, 3, 2, 1))))
    t = make_teacher("ensemble", {"members": [f"csv:3,csv={a}", f"csv:1,csv={b}"]})
    q = t.score_paths(rels, root=tmp_path)
    ra, rb = np.array([0, 1, 2, 3]) / 3, np.array([3, 2, 1, 0]) / 3
    np.testing.assert_allclose(q, (3 * ra + rb) / 4)
    cfg = t.config()
    assert [m["weight"] for m in cfg["members"]] == [3.0, 1.0]
    assert [m["output_column"] for m in cfg["members"]] == ["quality_csv", "quality_csv2"]


def test_ensemble_spec_parsing_and_errors() -> None:
    assert parse_member("prefiqs:2,rho=0.4,method=random,flip=true") == (
        "prefiqs", 2.0, {"rho": 0.4, "method": "random", "flip": True})
    assert parse_member("norm") == ("norm", 1.0, {})
    with pytest.raises(UsageError, match="weight"):
        parse_member("norm:heavy")
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_member("norm,flip")
    with pytest.raises(UsageError, match="at least one"):
        make_teacher("ensemble", {})
    with pytest.raises(UsageError, match="no ensemble member takes --rho"):
        make_teacher("ensemble", {"members": ["severity"], "rho": 0.4})
    assert rank01(np.array([3.0, 1.0, 2.0, 2.0])).tolist() == [1.0, 0.0, 0.5, 0.5]
