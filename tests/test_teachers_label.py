"""The labelling engine: CSV + sidecar, bad images, resume after a failure, torchrun sharding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgefiq.errors import DataError
from edgefiq.models.mobilefacenet import MobileFaceNet
from edgefiq.teachers import label_images


def _images(root: Path, n: int = 6) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    rels = []
    for i in range(n):
        rel = f"id{i % 3}/img_{i:02d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(root / rel)
        rels.append(rel)
    return sorted(rels)


@pytest.fixture(scope="module")
def fr_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fr") / "mfn.pt"
    torch.save(MobileFaceNet().state_dict(), path)
    return path


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split(","), [ln.split(",") for ln in lines[1:]]


def test_label_prefiqs_csv_sidecar_and_bad_images(tmp_path: Path, fr_pt: Path) -> None:
    root = tmp_path / "imgs"
    rels = _images(root)
    (root / "id0" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "labels.csv"
    opts = {"fr_model": str(fr_pt), "rho": 0.4}
    with pytest.raises(DataError, match="broken.jpg"):
        label_images(root, "prefiqs", opts, out, batch_size=4, chunk_size=3, cache_dir=tmp_path / "c")
    assert not out.exists()
    label_images(root, "prefiqs", opts, out, batch_size=4, chunk_size=3, cache_dir=tmp_path / "c", on_bad_image="skip",
                 resume=False)
    header, rows = _read_csv(out)
    assert header == ["path", "quality"]
    assert [r[0] for r in rows] == rels
    assert all(np.isfinite(float(r[1])) and float(r[1]) <= 0 for r in rows)
    assert "id0/broken.jpg\t" in (tmp_path / "labels.skipped.txt").read_text()
    meta = json.loads((tmp_path / "labels.csv.json").read_text())
    assert meta["teacher"]["teacher"] == "prefiqs" and meta["teacher"]["rho"] == 0.4
    assert meta["n_labelled"] == 6 and meta["n_skipped"] == 1 and meta["images_per_second"] > 0
    assert not (tmp_path / "labels.csv.parts").exists()


def test_resume_reuses_finished_chunks_and_matches_fresh_run(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    rels = _images(root, n=8)
    index = root / "index.csv"
    rows = [f"{r},{r},noise,{0.1 * i:.1f}" for i, r in enumerate(rels)]
    index.write_text("path,source,kind,severity\n" + "\n".join(rows[:5]) + "\n")  # rows 5.. missing: run fails
    out = tmp_path / "sev.csv"
    with pytest.raises(DataError, match="no severity"):
        label_images(root, "severity", {}, out, chunk_size=2, relpaths=rels)
    parts = tmp_path / "sev.csv.parts"
    done = sorted(parts.glob("chunk-*.npz"))
    assert [p.name for p in done] == ["chunk-000000.npz", "chunk-000001.npz"]
    index.write_text("path,source,kind,severity\n" + "\n".join(rows) + "\n")
    label_images(root, "severity", {}, out, chunk_size=2, relpaths=rels)
    meta = json.loads((tmp_path / "sev.csv.json").read_text())
    assert meta["labelled_this_run"] == 4  # chunks 0 and 1 were not recomputed
    fresh = tmp_path / "fresh.csv"
    label_images(root, "severity", {}, fresh, chunk_size=2, relpaths=rels)
    assert out.read_bytes() == fresh.read_bytes()
    _, got = _read_csv(out)
    np.testing.assert_allclose([float(r[1]) for r in got], [1 - 0.1 * i for i in range(8)], atol=1e-12)


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDGEFIQ_QUIET": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]


@pytest.mark.slow
def test_torchrun_two_ranks_equals_single_process(tmp_path: Path, fr_pt: Path) -> None:
    root = tmp_path / "imgs"
    _images(root, n=10)
    common = [str(root), "--teacher", "norm", "--fr-model", str(fr_pt), "--batch-size", "2", "--chunk-size", "2",
              "--no-cache", "--threads", "1"]
    single = tmp_path / "single.csv"
    r = _run([sys.executable, "-m", "edgefiq", "label", *common, "-o", str(single)])
    assert r.returncode == 0, r.stderr
    sharded = tmp_path / "sharded.csv"
    r = _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
              "-m", "edgefiq", "label", *common, "-o", str(sharded)])
    assert r.returncode == 0, r.stderr
    assert sharded.read_bytes() == single.read_bytes()
    meta = json.loads((tmp_path / "sharded.csv.json").read_text())
    assert meta["world_size"] == 2 and meta["labelled_this_run"] == 10
