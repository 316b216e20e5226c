"""``edgefiq prune``: one ratio -> checkpoint + report; a ratio range -> sweep table; errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from edgefiq.cli import cli
from edgefiq.data.preprocess import Preprocess
from edgefiq.models.checkpoint import load_checkpoint, save_checkpoint
from edgefiq.models.students import TinyCNN


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "s.pt", TinyCNN(width=16).eval(), arch="tiny_cnn", arch_kwargs={"width": 16},
                           preprocess=Preprocess(size=(32, 32)))


@pytest.fixture
def images(tmp_path: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    from distill_helpers import make_labelled_tree

    make_labelled_tree(tmp_path, n_ids=6, per_id=3)
    return tmp_path / "imgs"


def test_help_has_example() -> None:
    res = CliRunner().invoke(cli, ["prune", "--help"])
    assert res.exit_code == 0 and "Example:" in res.output and "--finetune-epochs" in res.output


def test_single_ratio_writes_checkpoint_and_report(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.pt"
    res = CliRunner().invoke(cli, ["prune", str(ckpt), "--rho", "0.5", "-m", "structured", "--round-to", "2",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["method"] == "structured" and rep["rho"] == 0.5 and rep["macs_after"] < rep["macs_before"]
    ck = load_checkpoint(out)
    assert ck.pruning["structure"] and ck.model(torch.zeros(2, 3, 32, 32)).shape == (2,)


def test_sweep_writes_table(ckpt: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    res = CliRunner().invoke(cli, ["prune", str(ckpt), "--rho", "0.2:0.6:0.4", "-m", "l1", "-m", "structured",
                                   "--eval-images", str(images), "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "sweep.json").read_text())
    rows = data["rows"]
    assert [(r["method"], r["rho"]) for r in rows] == [("unpruned", 0.0), ("l1", 0.2), ("l1", 0.6),
                                                      ("structured", 0.2), ("structured", 0.6)]
    assert all(r["status"] == "ok" and r["latency_ms"] > 0 for r in rows)
    assert rows[0]["srcc_vs_unpruned"] == 1.0 and -1 <= rows[2]["srcc_vs_unpruned"] < 1
    assert abs(rows[2]["sparsity"] - 0.6) <= 0.005 and rows[2]["gzip_mb"] < rows[0]["gzip_mb"]
    assert rows[4]["macs"] < rows[3]["macs"] < rows[0]["macs"]
    assert "| structured | 0.6 |" in (out / "sweep.md").read_text()


def test_recovery_keeps_sparsity(ckpt: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft.pt"
    res = CliRunner().invoke(cli, ["prune", str(ckpt), "--rho", "0.4", "-m", "l1", "--finetune-epochs", "1",
                                   "--images", str(images), "--batch-size", "8", "-o", str(out)])
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(out)
    assert ck.pruning["recovery"]["epochs"] == 1 and "val_srcc" in ck.pruning["recovery"]
    assert abs(ck.pruning["sparsity"] - 0.4) <= 0.005
    dense = load_checkpoint(ckpt).model
    assert not torch.equal(ck.model.features[3].weight, dense.features[3].weight)  # it trained


@pytest.mark.parametrize("kd", ["online", "offline"])
def test_recovery_kd_targets(ckpt: Path, images: Path, tmp_path: Path, kd: str) -> None:
    """Online KD scores the views in the loop (no label file); offline writes the unpruned model's
    scores of the original images once. Both fold the output back to the unpruned model's scale."""
    out = tmp_path / "ft.pt"
    res = CliRunner().invoke(cli, ["prune", str(ckpt), "--rho", "0.5", "-m", "structured", "--round-to", "2",
                                   "--finetune-epochs", "1", "--images", str(images), "--batch-size", "8",
                                   "--kd", kd, "-o", str(out)])
    assert res.exit_code == 0, res.output
    rec = load_checkpoint(out).pruning["recovery"]
    assert rec["labels"].startswith(f"unpruned model (KD, {kd}") and rec["output_affine"] is not None
    assert (tmp_path / "ft.recovery" / "kd_labels.csv").is_file() == (kd == "offline")
    teacher = (tmp_path / "ft.recovery" / "recovery" / "recipe.yaml").read_text()
    assert ("teacher: model" in teacher) == (kd == "online")


@pytest.mark.parametrize("args,err,msg", [
    (["--rho", "a:b"], "UsageError", "--rho"),
    (["--rho", "0.5", "--finetune-epochs", "2"], "UsageError", "needs --images"),
    (["--rho", "0.5", "--ignore", "nope"], "UsageError", "not a module"),
])
def test_errors_are_edgefiq_errors(ckpt: Path, tmp_path: Path, args: list[str], err: str, msg: str) -> None:
    res = CliRunner().invoke(cli, ["prune", str(ckpt), *args, "-o", str(tmp_path / "o.pt")])
    assert type(res.exception).__name__ == err and msg in str(res.exception)


def test_missing_checkpoint_is_data_error(tmp_path: Path) -> None:
    from edgefiq.errors import DataError

    res = CliRunner().invoke(cli, ["prune", str(tmp_path / "none.pt"), "--rho", "0.5", "-o", str(tmp_path / "o.pt")])
    assert isinstance(res.exception, DataError) and "checkpoint not found" in str(res.exception)


def test_exit_code_and_one_line_error_in_subprocess(ckpt: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edgefiq", "prune", str(ckpt), "--rho", "1.2", "-o",
                           str(tmp_path / "o.pt")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "ratios must be in [0, 1)" in proc.stderr and "Traceback" not in proc.stderr


def test_finetune_max_steps_caps_recovery_steps(ckpt: Path, images: Path, tmp_path: Path) -> None:
    """The recipes' ``prune.finetune_max_steps`` shorthand reaches the recovery's steps per epoch."""
    from edgefiq.pipeline.pruning import prune_checkpoint

    out = prune_checkpoint(ckpt, tmp_path / "cap.pt", rho=0.4, method="l1", finetune_epochs=1, finetune_max_steps=1,
                           images=images)
    rec = yaml.safe_load((tmp_path / "cap.recovery" / "recovery" / "recipe.yaml").read_text())
    assert rec["max_steps_per_epoch"] == 1 and load_checkpoint(out).pruning["recovery"]["epochs"] == 1
