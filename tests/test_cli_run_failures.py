"""``edgefiq run`` with a failed artifact row: exit 1, the report still written, no empty folder, export retried."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# int8 needs its parity gate to rank >= 16 images; 8 calibration images (and fewer validation images)
# make that gate impossible, so the int8 row is refused while the fp32 row is fine
IMPOSSIBLE_INT8 = """
name: tiny-failing
synthetic: {n_identities: 4, per_identity: 2, seed: 1}
data:
  degrade: {kinds: [gaussian_blur], severities: [1.0], per_image: 1}
  split: {val_fraction: 0.5}
teacher: {name: severity}
distill:
  students: [{arch: tiny_cnn}]
  defaults: {input_size: [32, 32], optim: {epochs: 1}}
prune: {methods: []}
export: {targets: [onnx], precisions: [fp32, int8], calibration_size: 8}
eval: {fr_arch: pixels}
bench: {options: {min_time_s: 0.05, min_runs: 3, warmup: 1}}
"""


def _run(recipe: Path, run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgefiq", "run", str(recipe), "-o", str(run_dir)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_run_exits_nonzero_on_a_failed_row_and_retries_export(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(IMPOSSIBLE_INT8)
    run_dir = tmp_path / "run"
    res = _run(recipe, run_dir)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 artifact row(s) failed" in res.stderr and "Traceback" not in res.stderr
    rep = json.loads((run_dir / "report.json").read_text())
    status = {r["precision"]: r["status"] for r in rep["rows"] if r["kind"] == "artifact"}
    assert status["fp32"] == "ok" and status["int8"].startswith("failed:") and rep["all_ok"] is False
    assert "SOME ARTIFACTS FAILED" in (run_dir / "report.md").read_text()
    export = run_dir / "export" / "tiny_cnn"
    assert sorted(p.name for p in export.iterdir()) == ["onnx-fp32"]  # the refused int8 left no folder
    state = json.loads((run_dir / "state.json").read_text())["stages"]
    assert state["export"]["status"] == "incomplete" and state["export"]["failed"] == 1
    assert state["report"]["status"] == "done"
    fp32 = next((export / "onnx-fp32").glob("*.onnx"))
    before = fp32.stat().st_mtime_ns

    again = _run(recipe, run_dir)  # the export stage runs again (resumed); the fp32 artifact is reused
    assert again.returncode == 1
    assert "export" in again.stdout and "resumed (1 failed)" in again.stdout, again.stdout
    assert fp32.stat().st_mtime_ns == before
