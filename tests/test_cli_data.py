"""``edgefiq data`` verbs through click's CliRunner and a subprocess."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgefiq.cli import cli


def _tree(root: Path, n_ids: int = 2, per_id: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n_ids):
        for j in range(per_id):
            p = root / f"P{i}" / f"P{i}_{j:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(p)
    return root


def test_data_help_has_examples() -> None:
    r = CliRunner()
    out = r.invoke(cli, ["data", "--help"])
    assert out.exit_code == 0 and "Example:" in out.output
    for sub in cli.get_command(None, "data").list_commands(None):  # type: ignore[union-attr]
        res = r.invoke(cli, ["data", sub, "--help"])
        assert res.exit_code == 0 and "Example:" in res.output, sub


def test_degrade_cli(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    res = CliRunner().invoke(cli, ["data", "degrade", str(src), "-o", str(tmp_path / "out"),
                                   "--kinds", "noise,jpeg", "--severities", "0.5,1", "--per-image", "0"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(tmp_path / "out" / "index.csv")))
    assert len(rows) == 4 * (1 + 2 * 2)
    assert {r["kind"] for r in rows} == {"clean", "noise", "jpeg"}


def test_degrade_cli_bad_kind_is_usage_error(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    p = subprocess.run([sys.executable, "-m", "edgefiq", "data", "degrade", str(src), "-o", str(tmp_path / "o"),
                        "--kinds", "blurr"], capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert "unknown degradation 'blurr'" in p.stderr and "Traceback" not in p.stderr


def test_inspect_json_on_synthetic(tmp_path: Path) -> None:
    import json

    from edgefiq.data.synthetic import make_synthetic_sample

    root = make_synthetic_sample(tmp_path / "s", n_identities=3, per_identity=2, degraded=False)
    res = CliRunner().invoke(cli, ["data", "inspect", str(root), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["kind"] == "identity_tree" and rep["images"] == 6 and rep["identities"] == 3
    assert rep["sizes"] == {"112x112": 6} and rep["unreadable"] == []


def test_inspect_pairs_reports_missing(tmp_path: Path) -> None:
    root = _tree(tmp_path / "imgs", n_ids=2, per_id=1)
    (root / "P0" / "P0_0000.jpg").rename(root / "P0" / "P0_0001.jpg")
    (root / "P1" / "P1_0000.jpg").rename(root / "P1" / "P1_0001.jpg")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1 1\nP0 1 2\nP0 1 P1 1\n")
    res = CliRunner().invoke(cli, ["data", "inspect", str(pairs), "--images-root", str(root)])
    assert res.exit_code == 0, res.output
    assert "3 images and 2 pairs (1 genuine, 1 impostor)" in res.output
    assert "missing images: 1 (in 1 pairs)" in res.output and "P0/P0_0002.jpg" in res.output


@pytest.mark.shared_data
def test_inspect_shared_lfw_and_bin(shared: Path) -> None:
    """Must-show: 9,502 images of 4,416 identities; the .bin has 20 images and 10 pairs."""
    r = CliRunner()
    res = r.invoke(cli, ["data", "inspect", str(shared / "lfw-dev" / "aligned112")])
    assert res.exit_code == 0, res.output
    assert "9,502 images of 4,416 identities" in res.output and "112x112 (9,502)" in res.output
    res = r.invoke(cli, ["data", "inspect", str(shared / "insightface-bin" / "small_lfw.bin"), "--verify"])
    assert res.exit_code == 0, res.output
    assert "20 images and 10 pairs" in res.output and "unreadable: 0" in res.output
    res = r.invoke(cli, ["data", "inspect", str(shared / "lfw-dev" / "pairs.txt")])
    assert res.exit_code == 0, res.output
    assert "4,200 pairs (2,100 genuine, 2,100 impostor)" in res.output and "missing images: 0" in res.output


def test_synthetic_cli(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["data", "synthetic", "-o", str(tmp_path / "s"), "--identities", "2",
                                   "--per-identity", "2", "--size", "64"])
    assert res.exit_code == 0, res.output
    assert "wrote 8 SYNTHETIC images of 2 identities" in res.output
    assert Image.open(tmp_path / "s" / "Synth_001" / "Synth_001_0002.jpg").size == (64, 64)
