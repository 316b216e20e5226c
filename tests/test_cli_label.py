"""``edgefiq label``: help, errors, a CliRunner run, and kill -9 half-way + rerun = identical output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgefiq.cli import cli


def _images(root: Path, n: int) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    rels = []
    for i in range(n):
        rel = f"id{i % 4}/img_{i:03d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(root / rel)
        rels.append(rel)
    return sorted(rels)


def test_help_has_example() -> None:
    r = CliRunner().invoke(cli, ["label", "--help"])
    assert r.exit_code == 0
    assert "Example:" in r.output and "--teacher prefiqs" in r.output
    assert "label" in CliRunner().invoke(cli, ["--help"]).output


def test_label_severity_via_cli_runner(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    rels = _images(root, 4)
    (root / "index.csv").write_text("path,source,kind,severity\n" + "".join(f"{r},{r},jpeg,0.5\n" for r in rels))
    out = tmp_path / "sev.csv"
    r = CliRunner().invoke(cli, ["label", str(root), "--teacher", "severity", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "labelled 4 images" in r.output
    assert out.read_text().splitlines() == ["path,quality"] + [f"{x},0.5" for x in rels]


def test_cli_errors_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgefiq.cli import main

    root = tmp_path / "imgs"
    _images(root, 2)
    base = ["label", str(root), "-o", str(tmp_path / "x.csv")]
    for extra, code, message in [(["--teacher", "prefiq"], 2, "did you mean 'prefiqs'"),
                                 (["--teacher", "severity", "--rho", "0.4"], 2, "does not take --rho"),
                                 (["--teacher", "severity", "--precision", "bf16"], 2, "does not take --precision"),
                                 (["--teacher", "norm", "--precision", "fp16"], 2, "'fp16' is not one of"),
                                 (["--teacher", "severity"], 1, "writes) not found"),
                                 (["--teacher", "prefiqs"], 2, "needs --fr-model")]:
        with pytest.raises(SystemExit) as e:
            main([*base, *extra])
        err = capsys.readouterr().err
        assert e.value.code == code and message in err and "Traceback" not in err


@pytest.mark.slow
def test_kill_half_way_then_rerun_gives_identical_output(tmp_path: Path) -> None:
    torch.manual_seed(0)
    from edgefiq.models.mobilefacenet import MobileFaceNet

    fr = tmp_path / "mfn.pt"
    torch.save(MobileFaceNet().state_dict(), fr)
    root = tmp_path / "imgs"
    _images(root, 40)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDGEFIQ_QUIET": "1"}

    def cmd(out: Path, cache: Path) -> list[str]:
        return [sys.executable, "-m", "edgefiq", "label", str(root), "--teacher", "prefiqs", "--fr-model", str(fr),
                "--method", "l1", "--rho", "0.4", "--batch-size", "2", "--chunk-size", "4", "--threads", "1",
                "--cache-dir", str(cache), "-o", str(out)]

    ref = tmp_path / "ref.csv"
    subprocess.run(cmd(ref, tmp_path / "cache_ref"), env=env, check=True, timeout=600, capture_output=True)
    out = tmp_path / "labels.csv"
    proc = subprocess.Popen(cmd(out, tmp_path / "cache"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "labels.csv.parts"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(parts.glob("chunk-*.npz"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(list(parts.glob("chunk-*.npz")))
    assert 3 <= n_done < 10, f"the run was not interrupted half-way ({n_done} of 10 chunks)"
    assert not out.exists()
    r = subprocess.run(cmd(out, tmp_path / "cache"), env=env, timeout=600, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == ref.read_bytes()
    lines = out.read_text().splitlines()
    assert len(lines) == 41 and all(np.isfinite(float(ln.split(",")[1])) for ln in lines[1:])


@pytest.mark.shared_data
@pytest.mark.slow
def test_label_prefiqs_on_lfw_subset(tmp_path: Path, lfw_aligned: Path, mobilefacenet_pt: Path) -> None:
    ids = sorted(d for d in lfw_aligned.iterdir() if d.is_dir())[:12]
    root = tmp_path / "lfw"
    n = 0
    for d in ids:
        (root / d.name).mkdir(parents=True)
        for f in sorted(d.glob("*.jpg"))[:2]:
            (root / d.name / f.name).symlink_to(f)
            n += 1
    out = tmp_path / "labels.csv"
    r = CliRunner().invoke(cli, ["label", str(root), "--teacher", "prefiqs", "--fr-model", str(mobilefacenet_pt),
                                 "--method", "l1", "--rho", "0.4", "--cache-dir", str(tmp_path / "cache"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert lines[0] == "path,quality" and len(lines) == n + 1
    q = np.array([float(ln.split(",")[1]) for ln in lines[1:]])
    assert np.isfinite(q).all() and (q <= 0).all() and q.std() > 0
