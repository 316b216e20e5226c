"""End to end ``edgefiq run`` on the synthetic sample: report, skip on rerun, --from, kill + resume.

Slow (real training, exports and benchmarks). The kill test runs ``python -m edgefiq run`` in a
subprocess, kills it (SIGKILL) once distillation has written ``last.pt`` and is training the next
epoch, reruns it, and compares the report with that of an uninterrupted run in another folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgefiq.cli import cli

ROOT = Path(__file__).resolve().parents[1]

TINY = """
name: tiny
threads: 2
synthetic: {n_identities: 4, per_identity: 3, seed: 1}
data:
  degrade: {kinds: [gaussian_blur, noise], severities: [0.5, 1.0], per_image: 1}
  split: {val_fraction: 0.5}
teacher: {name: severity}
distill:
  students: [{arch: tiny_cnn}]
  defaults: {input_size: [32, 32], optim: {epochs: 2, batch_size: 8}, threads: 2}
prune: {methods: [structured], rhos: [0.3]}
export: {targets: [onnx], precisions: [fp32], calibration_size: 8}
eval: {fr_arch: pixels, bootstrap: 50}
bench: {options: {min_time_s: 0.1, min_runs: 5, warmup: 1}}
"""

# A reduced quickstart: same stages and student, fewer images/epochs, one target in fp32 and int8.
REDUCED = """
name: reduced-quickstart
seed: 0
threads: 2
synthetic: {n_identities: 6, per_identity: 3, seed: 0}
data:
  degrade: {kinds: [gaussian_blur, noise, occlusion], severities: [0.5, 1.0], per_image: 1}
  split: {val_fraction: 0.34}
teacher: {name: severity}
distill:
  students: [{arch: mobilenetv3_small_100}]
  # enough epochs that distillation is still running well after its first one (the kill test waits for
  # it; with 3 epochs of ~0.1 s the run sometimes finished distilling between two polls)
  defaults: {input_size: [32, 32], optim: {epochs: 48, batch_size: 8, lr: 0.004, warmup_epochs: 0.3}, threads: 2}
prune: {methods: [structured], rhos: [0.3]}
export: {targets: [onnx], precisions: [fp32, int8], calibration_size: 16}
eval: {fr_arch: pixels}
bench: {options: {min_time_s: 0.1, min_runs: 5, warmup: 1}}
"""

NUMBERS = ("srcc", "plcc", "pauc@0.001", "pauc@0.0001", "size_bytes", "parity", "status", "model", "target",
           "precision", "rho")


def numbers(report: dict) -> list[dict]:
    """The reproducible part of a report's rows (latency is a measurement, not a result)."""
    return [{k: r.get(k) for k in NUMBERS} for r in report["rows"]]


@pytest.mark.slow
def test_tiny_pipeline_report_skip_and_from(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    run_dir = tmp_path / "run"
    res = CliRunner().invoke(cli, ["run", str(recipe), "-o", str(run_dir)])
    assert res.exit_code == 0, res.output
    rep = json.loads((run_dir / "report.json").read_text())
    assert rep["synthetic"] is True and rep["all_ok"] is True
    arts = [r for r in rep["rows"] if r["kind"] == "artifact"]
    assert {(r["model"], r["target"], r["precision"]) for r in arts} == {
        ("tiny_cnn", "onnx", "fp32"), ("tiny_cnn/structured-0.3", "onnx", "fp32")}
    assert all(r["status"] == "ok" and r["p50_ms"] > 0 and -1 <= r["srcc"] <= 1 for r in arts)
    assert [r["model"] for r in rep["rows"][:2]] == ["teacher", "random"]
    md = (run_dir / "report.md").read_text()
    assert "SYNTHETIC DATA" in md and "| tiny_cnn/structured-0.3 |" in md
    fams = rep["by_degradation"]   # pAUC on the clean images and per degradation family (issue 26)
    assert fams[0]["family"] == "clean" and {"teacher", "random"} <= set(fams[0]["pauc"])
    assert {f"{r['model']}/onnx-fp32" for r in arts} <= set(fams[0]["pauc"])   # every artifact, pruned included
    assert "by degradation family" in md and "worst / teacher" in md
    assert all(set(f["ratio_ci"]) == set(f["pauc"]) - {"teacher"} for f in fams)   # eval.bootstrap's intervals
    assert "the 90% interval of that ratio when the validation identities are resampled" in md
    assert fams[0]["srcc"]["teacher"] == 1.0 and set(fams[0]["srcc"]) == set(fams[0]["pauc"])   # clean-only SRCC
    assert "SRCC with the teacher by degradation family" in md
    assert (run_dir / "plots" / "latency_vs_worst_family.png").stat().st_size > 1000
    assert (run_dir / "plots" / "edc_fmr0.001.png").stat().st_size > 1000
    before = (run_dir / "state.json").read_text()

    again = CliRunner().invoke(cli, ["run", str(recipe), "-o", str(run_dir)])
    assert again.exit_code == 0 and again.output.count("unchanged: skipped") == 8, again.output
    assert json.loads((run_dir / "state.json").read_text())["stages"] == json.loads(before)["stages"]

    partial = CliRunner().invoke(cli, ["run", str(recipe), "-o", str(run_dir), "--from", "eval"])
    state = json.loads((run_dir / "state.json").read_text())["stages"]
    assert partial.exit_code == 0
    assert state["distill"] == json.loads(before)["stages"]["distill"]
    assert numbers(json.loads((run_dir / "report.json").read_text())) == numbers(rep)


def test_export_pool_starts_the_slowest_target_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28: with the TFLite chain submitted first, 2 workers on 2 cores give it a core of its own."""
    from edgefiq.pipeline.scheduling import export_jobs, export_workers, slowest_first

    assert slowest_first(["onnx", "openvino", "tflite"]) == ["tflite", "openvino", "onnx"]
    # int8 is one chain per target (accuracy-control hints pass from model to model); OpenVINO stays one job
    # (process-wide node names); the other fp32 exports are jobs of their own that fill in after
    assert export_jobs(["onnx", "openvino", "tflite"], ["fp32", "int8"], ["a", "b"]) == [
        ("tflite", [("a", "int8"), ("b", "int8")]),
        ("openvino", [("a", "fp32"), ("a", "int8"), ("b", "fp32"), ("b", "int8")]),
        ("onnx", [("a", "int8"), ("b", "int8")]),
        ("tflite", [("a", "fp32")]), ("tflite", [("b", "fp32")]), ("onnx", [("a", "fp32")]), ("onnx", [("b", "fp32")])]
    assert export_jobs(["onnx", "openvino"], ["fp32"], ["a", "b"]) == [
        ("openvino", [("a", "fp32"), ("b", "fp32")]), ("onnx", [("a", "fp32")]), ("onnx", [("b", "fp32")])]
    assert slowest_first(["torch", "onnx"]) == ["onnx", "torch"]
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert (export_workers(0, 3), export_workers(0, 1), export_workers(1, 3), export_workers(3, 3)) == (2, 1, 1, 3)
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert export_workers(0, 3) == 1


@pytest.mark.slow
def test_export_workers_make_the_same_artifacts(tmp_path: Path) -> None:
    """Targets exported by parallel worker processes (issue 28) give the files, statuses and row order of
    an export in the run's own process."""
    import hashlib

    from edgefiq.pipeline.runner import stage_outputs

    tiny = TINY.replace("export: {targets: [onnx], precisions: [fp32], calibration_size: 8}",
                        "export: {targets: [onnx, openvino, tflite], precisions: [fp32], calibration_size: 8, "
                        "options: {workers: WORKERS}}")
    made = {}
    for workers in (1, 2):
        recipe = tmp_path / f"w{workers}.yaml"
        recipe.write_text(tiny.replace("WORKERS", str(workers)))
        res = CliRunner().invoke(cli, ["run", str(recipe), "-o", str(tmp_path / f"w{workers}")])
        assert res.exit_code == 0, res.output
        arts = stage_outputs(tmp_path / f"w{workers}", "export").artifacts
        made[workers] = [(a.key, a.status, hashlib.sha256((tmp_path / f"w{workers}" / a.path).read_bytes()).hexdigest())
                         for a in arts]
    assert [k for k, _, _ in made[1]] == ["tiny_cnn/onnx-fp32", "tiny_cnn/openvino-fp32", "tiny_cnn/tflite-fp32",
                                          "tiny_cnn/structured-0.3/onnx-fp32", "tiny_cnn/structured-0.3/openvino-fp32",
                                          "tiny_cnn/structured-0.3/tflite-fp32"]
    assert made[2] == made[1], [(a, b) for a, b in zip(made[1], made[2]) if a != b]


def _start(recipe: Path, run_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edgefiq", "run", str(recipe), "-o", str(run_dir)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.slow
def test_kill_during_distill_then_rerun_resumes_with_same_report(tmp_path: Path) -> None:
    recipe = tmp_path / "reduced.yaml"
    recipe.write_text(REDUCED)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    student = killed / "distill" / "mobilenetv3_small_100"

    proc = _start(recipe, killed)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        metrics = student / "metrics.jsonl"
        if (student / "last.pt").is_file() and metrics.is_file() and metrics.read_text().count("\n") >= 1:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed during distillation"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = json.loads((killed / "state.json").read_text())["stages"]
    assert state["distill"]["status"] == "running" and state["label"]["status"] == "done"
    assert not (killed / "report.json").exists()

    rerun = subprocess.run([sys.executable, "-m", "edgefiq", "run", str(recipe), "-o", str(killed)], cwd=ROOT,
                           capture_output=True, text=True, timeout=1800)
    # exit 1 = an artifact row failed (this barely trained student's int8 may be refused by the gate); the
    # uninterrupted run below must end the same way
    assert rerun.returncode in (0, 1) and "Traceback" not in rerun.stderr, rerun.stderr[-2000:]
    table = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in rerun.stdout.splitlines() if line.count("│") >= 4}
    assert table["data"] == "skipped" and table["label"] == "skipped" and table["distill"] == "resumed"
    assert "resuming from" in rerun.stderr

    full = subprocess.run([sys.executable, "-m", "edgefiq", "run", str(recipe), "-o", str(clean)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert full.returncode == rerun.returncode, full.stderr[-2000:]
    a = json.loads((killed / "report.json").read_text())
    b = json.loads((clean / "report.json").read_text())
    assert numbers(a) == numbers(b)
    assert a["distill"] == b["distill"] or _strip_timing(a["distill"]) == _strip_timing(b["distill"])
    assert a["all_ok"] == b["all_ok"]


def _strip_timing(d: dict) -> dict:
    return {k: {m: v for m, v in (x or {}).items() if m not in ("time_s", "images_per_s")} for k, x in d.items()}
