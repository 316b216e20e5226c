"""Torch-free runtime: load artifact + sidecar, preprocess (with optional alignment), score.

The ``edgefiq_artifacts`` fixture (a tiny checkpoint, its ONNX export and a small image
tree) is shared with the bench / CLI tests, which import it from here.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _write_tree(root: Path, n_ids: int = 4, per_id: int = 3, size: int = 40, seed: int = 0) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    rels = []
    for i in range(n_ids):
        for k in range(per_id):
            rel = f"id{i}/id{i}_{k:04d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            base = rng.integers(0, 256, size=(size, size, 3)).astype(np.uint8)
            Image.fromarray(base).save(root / rel)
            rels.append(rel)
    return sorted(rels)


@pytest.fixture(scope="session")
def edgefiq_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny_cnn checkpoint (32x32 input), its verified fp32 ONNX export, and a 4x3 image tree."""
    import torch

    from edgefiq.data.preprocess import Preprocess
    from edgefiq.export import export_checkpoint
    from edgefiq.models.checkpoint import save_checkpoint
    from edgefiq.models.students import tiny_cnn

    d = tmp_path_factory.mktemp("edgefiq_art")
    torch.manual_seed(0)
    model = tiny_cnn(width=4).eval()
    ckpt = save_checkpoint(d / "tiny.pt", model, arch="tiny_cnn", arch_kwargs={"width": 4},
                           preprocess=Preprocess(size=(32, 32)))
    onnx_path = export_checkpoint(ckpt, "onnx", d / "export").path
    images = d / "images"
    _write_tree(images)
    return {"dir": d, "ckpt": ckpt, "onnx": Path(onnx_path), "images": images}


def _torch_scores(ckpt: Path, imgs: list[np.ndarray]) -> np.ndarray:
    import torch

    from edgefiq.models.checkpoint import load_checkpoint

    ck = load_checkpoint(ckpt)
    with torch.no_grad():
        return ck.model.eval()(torch.from_numpy(ck.preprocess.batch(imgs))).numpy().reshape(-1)


def test_onnx_runtime_matches_torch(edgefiq_artifacts):
    from edgefiq.data.images import load_image
    from edgefiq.data.readers import list_images
    from edgefiq.runtime import load_model

    imgs = [load_image(p) for p in list_images(edgefiq_artifacts["images"])]
    qm = load_model(edgefiq_artifacts["onnx"], threads=1)
    assert qm.backend == "onnx" and qm.preprocess.size == (32, 32)
    got = qm.score_arrays(imgs, batch_size=5)
    np.testing.assert_allclose(got, _torch_scores(edgefiq_artifacts["ckpt"], imgs), atol=1e-4)
    # checkpoints load through the same interface
    qc = load_model(edgefiq_artifacts["ckpt"])
    np.testing.assert_allclose(qc.score_arrays(imgs), got, atol=1e-4)


def test_score_folder_csv_and_skip(edgefiq_artifacts, tmp_path):
    import shutil

    from edgefiq.errors import BadImageError
    from edgefiq.runtime import score_folder

    imgs = tmp_path / "imgs"
    shutil.copytree(edgefiq_artifacts["images"], imgs)
    (imgs / "id0" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(BadImageError, match="broken.jpg"):
        score_folder(edgefiq_artifacts["onnx"], imgs, tmp_path / "out" / "q.csv")
    out = score_folder(edgefiq_artifacts["onnx"], imgs, tmp_path / "out" / "q.csv", on_bad_image="skip", batch_size=4)
    rows = list(csv.DictReader(open(out)))
    assert [r["path"] for r in rows] == sorted(str(p.relative_to(edgefiq_artifacts["images"]).as_posix())
                                               for p in edgefiq_artifacts["images"].rglob("*.png"))
    assert all(np.isfinite(float(r["quality"])) for r in rows)
    assert (tmp_path / "out" / "q.skipped.txt").read_text().startswith("id0/broken.jpg\t")  # relative to imgs


def test_alignment_from_landmarks(edgefiq_artifacts, tmp_path):
    from PIL import Image

    from edgefiq.data.align import align_face, arcface_template, read_landmarks_tsv
    from edgefiq.runtime import load_model, score_folder

    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, size=(80, 80, 3)).astype(np.uint8)
    (tmp_path / "raw").mkdir()
    Image.fromarray(raw).save(tmp_path / "raw" / "a.png")
    pts = arcface_template((32, 32)) * 2.0 + 5.0  # a face twice the crop size, shifted
    (tmp_path / "marks.tsv").write_text("a.png\t" + " ".join(f"{v:.3f}" for v in pts.reshape(-1)) + "\n")
    out = score_folder(edgefiq_artifacts["onnx"], tmp_path / "raw", tmp_path / "q.csv",
                       landmarks_tsv=tmp_path / "marks.tsv")
    got = float(next(csv.DictReader(open(out)))["quality"])
    pts = read_landmarks_tsv(tmp_path / "marks.tsv")["a.png"]
    qm = load_model(edgefiq_artifacts["onnx"])
    crop = align_face(raw, pts, size=(32, 32))
    assert got == pytest.approx(float(qm.score_arrays([crop])[0]), abs=1e-6)
    # the model input is the aligned crop, not the resized raw image
    np.testing.assert_array_equal(qm.prepare(raw, pts), qm.prepare(crop))
    assert not np.allclose(qm.prepare(raw, pts), qm.prepare(raw))


def _torch_blocked_env(tmp_path: Path) -> dict[str, str]:
    block = tmp_path / "block"
    (block / "torch").mkdir(parents=True)
    (block / "torch" / "__init__.py").write_text('raise ImportError("torch is blocked in this test")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(block), str(ROOT)])
    env["EDGEFIQ_QUIET"] = "1"
    return env


def test_score_and_bench_run_without_torch(edgefiq_artifacts, tmp_path):
    env = _torch_blocked_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr
    art, imgs = str(edgefiq_artifacts["onnx"]), str(edgefiq_artifacts["images"])
    r = subprocess.run([sys.executable, "-m", "edgefiq", "score", art, imgs, "-o", str(tmp_path / "q.csv")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(list(csv.DictReader(open(tmp_path / "q.csv")))) == 12
    r = subprocess.run([sys.executable, "-m", "edgefiq", "bench", art, "--min-runs", "3", "--min-time", "0",
                        "--warmup", "1", "--threads", "1,2", "--no-png", "-o", str(tmp_path / "b.json")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import json

    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [row["status"] for row in rows] == ["ok", "ok"] and all(row["p50_ms"] > 0 for row in rows)
    # a checkpoint needs torch: clear one-line error, exit 2
    r = subprocess.run([sys.executable, "-m", "edgefiq", "score", str(edgefiq_artifacts["ckpt"]), imgs, "-o",
                        str(tmp_path / "c.csv")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "needs torch" in r.stderr and "Traceback" not in r.stderr


def test_size_check_accepts_the_model_size_and_aligned_112_crops() -> None:
    """A 64x64 model scores aligned 112x112 crops (what it was trained on, resized) without a warning."""
    import logging

    from edgefiq.runtime import score as score_mod
    from edgefiq.runtime.inputs import SizeCheck

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    score_mod.log.addHandler(handler)  # the console setup of other tests may stop propagation to caplog
    try:
        small = SizeCheck((64, 64))
        for name, hw in (("a.jpg", (64, 64)), ("b.jpg", (112, 112))):
            small.add(name, hw)
        small.warn()
        assert small.n_other == 0 and not records
        small.add("c.jpg", (250, 250))
        small.warn()
    finally:
        score_mod.log.removeHandler(handler)
    assert small.n_other == 1 and len(records) == 1
    assert "not 64x64 or 112x112 aligned face crops (e.g. c.jpg is 250x250)" in records[0].getMessage()
    full = SizeCheck((112, 112))
    full.add("d.jpg", (64, 64))
    assert full.n_other == 1
