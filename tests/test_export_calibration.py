"""Calibration sets, the parity report and converter-error explanations (fast, no converters)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import DataError
from edgefiq.export.api import explain_conversion_error
from edgefiq.export.calibration import build_calibration_set, load_calibration, load_images, stratified_indices
from edgefiq.export.parity import parity_report


@pytest.fixture
def faces(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "faces"
    g = np.random.default_rng(0)
    lines = ["path,quality"]
    for i in range(40):
        d = root / f"id{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(g.integers(0, 255, (120, 100, 3), dtype=np.uint8)).save(d / f"{i:02d}.png")
        lines.append(f"id{i % 5}/{i:02d}.png,{i / 40}")
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join(lines) + "\n")
    return root, csv


def test_stratified_indices_cover_the_score_range() -> None:
    scores = np.r_[np.linspace(0, 1, 1000), np.nan]
    idx = stratified_indices(scores, 10, seed=0)
    assert len(idx) == 10 and len(set(idx)) == 10 and 1000 not in idx
    # one pick per decile
    assert sorted((scores[idx] * 10).astype(int).clip(0, 9).tolist()) == list(range(10))
    assert len(stratified_indices(scores, 5000)) == 1000


def test_build_npz_and_folder(faces: tuple[Path, Path], tmp_path: Path) -> None:
    root, csv = faces
    npz = build_calibration_set(root, tmp_path / "c.npz", n=8, labels_csv=csv, size=(64, 64))
    with np.load(npz) as z:
        assert z["images"].shape == (8, 64, 64, 3) and z["images"].dtype == np.uint8
        q = z["scores"]
    assert q.min() < 0.15 and q.max() > 0.85   # spans the range
    x = load_calibration(npz, Preprocess(size=(32, 32)))
    assert x.shape == (8, 3, 32, 32) and x.dtype == np.float32
    out = build_calibration_set(root, tmp_path / "cdir", n=8, labels_csv=csv)
    imgs, names = load_images(out)
    assert len(imgs) == 8 and (out / "calibration.csv").is_file() and all("/" in n for n in names)


def test_calibration_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        load_calibration(tmp_path / "empty", Preprocess())
    with pytest.raises(DataError, match="not found"):
        load_calibration(tmp_path / "nope", Preprocess())
    bad = tmp_path / "bad.npz"
    np.savez(bad, other=np.zeros(3))
    with pytest.raises(DataError, match="'images'"):
        load_calibration(bad, Preprocess())
    with pytest.raises(DataError, match="need at least 16"):
        load_calibration(np.zeros((4, 3, 8, 8), np.float32), Preprocess(), min_images=16)


def test_parity_report_scales_and_gates() -> None:
    ref = np.linspace(0, 1, 50)
    assert parity_report(ref, ref + 5e-5, "fp32")["passed"]
    assert not parity_report(ref, ref + 5e-4, "fp32")["passed"]
    big = ref * 30   # feature-norm-like scores: same relative precision is accepted
    rep = parity_report(big, big * (1 + 2e-4), "fp16")
    assert rep["scale"] == pytest.approx(30) and rep["passed"] and rep["effective_max_abs_diff"] == pytest.approx(0.3)
    noisy = ref + np.random.default_rng(0).normal(0, 0.15, 50)
    rep = parity_report(ref, noisy, "int8")
    assert not rep["passed"] and rep["srcc_vs_fp32"] < 0.99 and rep["mean_abs_diff"] > 0
    assert not parity_report(ref, np.full(50, np.nan), "fp16")["passed"]
    with pytest.raises(DataError, match="needs >= 16"):
        parity_report(ref[:5], ref[:5], "int8")


@pytest.mark.parametrize("message,op", [
    ("Exporting the operator 'aten::histc' to ONNX opset version 17 is not supported", "aten::histc"),
    ("Check 'false' failed at src/x.cpp:151:\nFrontEnd API failed with OpConversionFailure:\n"
     "-- No conversion rule found for operations: aten::linalg_eigvalsh\n", "aten::linalg_eigvalsh"),
    ("Lowering not found: aten.histc.default", "aten.histc.default"),
])
def test_explain_conversion_error(message: str, op: str) -> None:
    text = explain_conversion_error(RuntimeError(message))
    assert text.startswith(f"unsupported operator {op}: ") and "\n" not in text
    assert explain_conversion_error(ValueError("\n\nshape mismatch in Gemm\nmore")) == "shape mismatch in Gemm"
