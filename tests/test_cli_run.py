"""``edgefiq run`` and ``edgefiq recipe check`` through click and a subprocess (exit codes, messages)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgefiq.cli import cli, main

ROOT = Path(__file__).resolve().parents[1]

TINY = """
name: tiny
synthetic: {n_identities: 4, per_identity: 2, seed: 1}
data:
  degrade: {kinds: [gaussian_blur], severities: [1.0], per_image: 1}
  split: {val_fraction: 0.5}
distill:
  students: [{arch: tiny_cnn}]
  defaults: {input_size: [32, 32], optim: {epochs: 1}}
export: {targets: [onnx], precisions: [fp32]}
eval: {fr_arch: mobilefacenet}
"""


def edgefiq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgefiq", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_help_has_example() -> None:
    for verb in (["run"], ["recipe", "check"]):
        res = CliRunner().invoke(cli, [*verb, "--help"])
        assert res.exit_code == 0 and "Example:" in res.output
    assert "--only" in CliRunner().invoke(cli, ["run", "--help"]).output


def test_recipe_check_prints_resolved(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(TINY)
    res = CliRunner().invoke(cli, ["recipe", "check", str(p), "--print"])
    assert res.exit_code == 0, res.output
    assert "calibration_size: 64" in res.output  # a default filled in


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``edgefiq.cli.main`` in-process: (exit code, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return int(e.value.code or 0), capsys.readouterr().err


def test_errors_are_one_line_with_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(TINY)
    bad = edgefiq("run", str(p), "--set", "prune.rho=[0.2]", "-o", str(tmp_path / "run"))
    assert bad.returncode == 2 and "did you mean 'rhos'" in bad.stderr and "Traceback" not in bad.stderr
    code, err = run_main(capsys, "run", str(tmp_path / "nope.yaml"))
    assert code == 2 and "recipe file not found" in err
    code, err = run_main(capsys, "run", str(p), "--only", "export", "-o", str(tmp_path / "run"))
    assert code == 2 and "has not completed" in err
    code, err = run_main(capsys, "run", str(p), "--only", "distil")
    assert code == 2 and "distill" in err
    code, err = run_main(capsys, "run", str(p), "--var", "NOEQUALS")
    assert code == 2 and "NAME=VALUE" in err


def test_only_data_stage_in_subprocess(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(TINY)
    run_dir = tmp_path / "run"
    res = edgefiq("run", str(p), "--only", "data", "-o", str(run_dir))
    assert res.returncode == 0, res.stderr
    state = json.loads((run_dir / "state.json").read_text())
    out = state["stages"]["data"]["outputs"]
    assert out["synthetic"] is True and out["n_identities"] == 4 and out["n_images"] == 16  # 8 clean + 8 blurred
    assert (run_dir / "data" / "images" / "SYNTHETIC.txt").is_file()
    train = set((run_dir / out["train"]).read_text().split())
    val = set((run_dir / out["val"]).read_text().split())
    assert train and val and not ({x.split("/")[0] for x in train} & {x.split("/")[0] for x in val})
    assert (run_dir / "recipe.yaml").is_file()
    again = CliRunner().invoke(cli, ["run", str(p), "--only", "data", "-o", str(run_dir)])  # always re-runs
    assert again.exit_code == 0 and "ran" in again.output and json.loads((run_dir / "state.json").read_text())["stages"]["data"]["outputs"] == out
