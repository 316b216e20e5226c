"""``edgefiq export`` / ``edgefiq quantize``: help texts, success path, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgefiq.cli import cli

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.models.checkpoint import save_checkpoint
    from edgefiq.registry import STUDENTS

    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(p, STUDENTS.get("tiny_cnn")(), arch="tiny_cnn", preprocess=Preprocess(size=(64, 64)),
                    pruning={"method": "l1", "rho": 0.25, "structure": None})
    return p


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("imgs")
    g = np.random.default_rng(0)
    for i in range(20):
        (d / f"id{i % 4}").mkdir(exist_ok=True)
        Image.fromarray(g.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / f"id{i % 4}" / f"{i}.png")
    return d


@pytest.mark.parametrize("verb", ["export", "quantize"])
def test_help_has_example(verb: str) -> None:
    res = CliRunner().invoke(cli, [verb, "--help"])
    assert res.exit_code == 0 and "Example:" in res.output and "--target" in res.output
    for target in ("onnx", "openvino", "tflite", "torch", "all"):
        assert target in res.output


def test_export_onnx_writes_artifact_and_sidecar(tiny_ckpt: Path, image_dir: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["export", str(tiny_ckpt), "-t", "onnx", "--verify", str(image_dir), "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    art = tmp_path / "tiny_cnn_fp32.onnx"
    side = json.loads((tmp_path / "tiny_cnn_fp32.onnx.json").read_text())
    assert art.is_file() and side["parity"]["passed"] and side["parity"]["n"] == 20
    assert side["pruning"] == {"method": "l1", "rho": 0.25}
    from edgefiq.utils import sha256_file

    assert side["source_sha256"] == sha256_file(tiny_ckpt)
    assert {"onnxruntime", "onnx", "torch"} <= set(side["versions"])


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGEFIQ_QUIET": "1"}
    return subprocess.run([sys.executable, "-m", "edgefiq", *args], capture_output=True, text=True, env=env, timeout=300)


def test_quantize_without_calibration_is_usage_error(tiny_ckpt: Path, tmp_path: Path) -> None:
    r = _run("quantize", str(tiny_ckpt), "-t", "onnx", "-o", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["Error: int8 needs calibration images: --calibration DIR|FILE.npz "
                                             "(see calibration/README.md)"]
    assert list(tmp_path.iterdir()) == []


def test_cli_errors_are_one_line(tiny_ckpt: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _run("quantize", str(tiny_ckpt), "-t", "onnx", "--calibration", str(empty), "-o", str(tmp_path / "o"))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "empty" in r.stderr
    r = _run("export", str(tmp_path / "missing.pt"), "-t", "onnx", "-o", str(tmp_path / "o"))
    assert r.returncode == 1 and r.stderr.strip() == f"Error: {tmp_path / 'missing.pt'}: checkpoint not found"
    r = _run("export", str(tiny_ckpt), "-t", "torch", "-p", "fp16", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "torch backend does not support fp16" in r.stderr
    r = _run("export", str(tiny_ckpt), "-t", "onnx", "--channels-last", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "tflite only" in r.stderr
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_calibration_method_the_target_lacks_is_one_line_usage_error(tiny_ckpt: Path, image_dir: Path,
                                                                     tmp_path: Path) -> None:
    r = _run("quantize", str(tiny_ckpt), "-t", "tflite", "--calibration", str(image_dir),
             "--calibration-method", "entropy", "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["Error: tflite int8 calibration method 'entropy' is not supported "
                                             "(supports nncf, pt2e-histogram)"]
    r = _run("quantize", str(tiny_ckpt), "-t", "onnx", "--calibration-method", "bogus", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "Invalid value for '--calibration-method'" in r.stderr


def test_calibration_method_auto_through_the_cli(tiny_ckpt: Path, image_dir: Path, tmp_path: Path) -> None:
    """``--calibration-method auto`` reaches the export: the sidecar lists the trials in the backend's
    order and names the kept method among them."""
    from edgefiq.registry import BACKENDS

    r = _run("quantize", str(tiny_ckpt), "-t", "onnx", "--calibration", str(image_dir), "--calibration-method", "auto",
             "--no-verify", "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    q = json.loads((tmp_path / "o" / "tiny_cnn_int8.onnx.json").read_text())["quantization"]
    tried = [t["method"] for t in q["calibration_auto"]["trials"]]
    assert tried == list(BACKENDS.get("onnx").auto_calibration[:len(tried)]) and q["calibration_method"] in tried
    assert "--calibration-method auto" in CliRunner().invoke(cli, ["quantize", "--help"]).output


def test_accuracy_control_bad_value_is_one_line_usage_error(tiny_ckpt: Path, image_dir: Path, tmp_path: Path) -> None:
    r = _run("quantize", str(tiny_ckpt), "-t", "onnx", "--calibration", str(image_dir), "--accuracy-control", "1.5",
             "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--accuracy-control is the largest SRCC drop vs fp32 allowed, in (0, 1); got 1.5" in r.stderr
    r = _run("export", str(tiny_ckpt), "-t", "onnx", "--accuracy-control", "0.01", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "--accuracy-control needs --precision int8, not fp32" in r.stderr


def test_export_refuses_to_overwrite_without_force(tiny_ckpt: Path, image_dir: Path, tmp_path: Path) -> None:
    args = ["export", str(tiny_ckpt), "-t", "onnx", "--verify", str(image_dir), "-o", str(tmp_path)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    art = tmp_path / "tiny_cnn_fp32.onnx"
    before = art.read_bytes()
    art.write_bytes(b"an earlier artifact")
    r = _run(*args)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"Error: {art} already exists: pass --force to replace it, or --name "
                                             "to write another file beside it"]
    assert art.read_bytes() == b"an earlier artifact"
    res = CliRunner().invoke(cli, [*args, "--force"])
    assert res.exit_code == 0, res.output
    assert art.read_bytes() == before


def test_export_all_table_names_each_target_in_full(tiny_ckpt: Path, image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "a_rather_long_output_folder_name_for_the_table" / "export_all"
    r = _run("export", str(tiny_ckpt), "-t", "all", "--verify", str(image_dir), "-o", str(out))
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if "tiny_cnn_fp32" in ln]
    for target, suffix in [("onnx", ".onnx"), ("openvino", ".xml"), ("tflite", ".tflite"), ("torch", ".torchscript")]:
        line = next(ln for ln in rows if f"tiny_cnn_fp32{suffix} " in ln)
        assert str(out / f"tiny_cnn_fp32{suffix}") in line and f" {target} " in line
