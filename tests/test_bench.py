"""edgefiq bench: timing protocol, rows and statuses, floors, accuracy columns, reports."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgefiq.bench import benchmark, check_floors, time_callable
from edgefiq.bench.report import format_markdown, write_bench_report
from edgefiq.cli import cli
from edgefiq.errors import UsageError

from test_runtime import edgefiq_artifacts  # noqa: F401  (session fixture)

FAST = dict(warmup=1, min_runs=3, min_time_s=0.0)


def test_time_callable_reaches_both_minimums():
    calls = []
    t = time_callable(lambda: calls.append(1), warmup=2, min_runs=5, min_time_s=0.0)
    assert t["runs"] == 5 and len(calls) == 1 + 2 + 5
    t0 = time.perf_counter()
    t = time_callable(lambda: time.sleep(0.001), warmup=0, min_runs=2, min_time_s=0.05)
    assert time.perf_counter() - t0 >= 0.05 and t["runs"] > 2
    assert t["p50_ms"] >= 1.0 and t["p50_ms"] <= t["p90_ms"] <= t["p99_ms"]
    assert t["throughput"] == pytest.approx(1000.0 / t["p50_ms"])


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="other_cpu reads /proc (Linux)")
def test_other_cpu_sees_a_competing_process():
    """A busy-looping child shows up as about one core of other load; the timed call itself
    (sleeping) does not count as other load."""
    quiet = time_callable(lambda: time.sleep(0.002), warmup=0, min_runs=1, min_time_s=0.3)
    assert quiet["other_cpu"] is not None and quiet["other_cpu"] >= 0
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = time_callable(lambda: time.sleep(0.002), warmup=0, min_runs=1, min_time_s=0.5)
    finally:
        hog.kill()
        hog.wait()
    assert busy["other_cpu"] >= 0.6


def test_other_cpu_subtracts_own_ticks():
    import os

    from edgefiq.timing import other_cpu

    hz = os.sysconf("SC_CLK_TCK")
    # 2 s: all CPUs busy for 3 s of CPU time, 2 s of it this process's -> 0.5 cores of others
    assert other_cpu((0, 0), (3 * hz, 2 * hz), 2.0) == pytest.approx(0.5)
    assert other_cpu((0, 0), (hz, 2 * hz), 1.0) == 0.0   # tick skew never goes negative
    assert other_cpu(None, (1, 1), 1.0) is None and other_cpu((0, 0), (1, 1), 0.0) is None


def test_benchmark_rows_onnx_and_checkpoint(edgefiq_artifacts):
    onnx = edgefiq_artifacts["onnx"]
    rows = benchmark([onnx, edgefiq_artifacts["ckpt"]], threads=(1,), batches=(1, 4), **FAST)
    assert len(rows) == 4
    for r in rows:
        assert r["status"] in ("ok", "ok (unverified)"), r
        for k in ("p50_ms", "p90_ms", "p99_ms", "first_ms", "load_ms", "throughput", "peak_rss_mb", "size_mb"):
            assert r[k] > 0, k
    assert rows[0]["backend"] == "onnx" and rows[0]["status"] == "ok"
    assert rows[0]["size_mb"] == pytest.approx(onnx.stat().st_size / 1e6)
    assert rows[2]["backend"] == "checkpoint"


def test_progress_line_gives_p50_with_its_unit(edgefiq_artifacts, caplog):
    """Issue 28, finding 1: the run's console printed `[bench] ... : 0.6348670000000001` (no unit, unrounded)."""
    import logging
    import re

    with caplog.at_level(logging.INFO, logger="edgefiq.bench"):
        benchmark([edgefiq_artifacts["onnx"]], **FAST)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("[bench]"))
    assert re.search(r"threads=1 batch=1: p50 \d(\.\d+)?(e[-+]\d+)? ms$", line), line
    assert len(re.search(r"p50 (\S+) ms", line).group(1).replace(".", "").lstrip("0")) <= 3, line


def test_statuses_failed_validation_failed_unavailable(edgefiq_artifacts, tmp_path):
    onnx = edgefiq_artifacts["onnx"]
    bad_parity = tmp_path / "bad_parity.onnx"
    shutil.copy(onnx, bad_parity)
    meta = json.loads(Path(str(onnx) + ".json").read_text())
    meta["parity"]["passed"] = False
    Path(str(bad_parity) + ".json").write_text(json.dumps(meta))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model")
    Path(str(corrupt) + ".json").write_text(json.dumps(meta))
    rows = benchmark([bad_parity, corrupt], **FAST)
    assert rows[0]["status"] == "failed validation" and rows[0]["p50_ms"] > 0
    assert rows[1]["status"] == "failed" and rows[1]["reason"] and "p50_ms" not in rows[1]
    from edgefiq.bench.devices import gpu_unavailable_reason

    if gpu_unavailable_reason("onnx"):
        cuda = benchmark([onnx], device="cuda", **FAST)[0]
        assert cuda["status"] == "unavailable" and "p50_ms" not in cuda and cuda["reason"]


def test_accuracy_columns(edgefiq_artifacts, tmp_path):
    from edgefiq.runtime import score_folder

    ref = score_folder(edgefiq_artifacts["onnx"], edgefiq_artifacts["images"], tmp_path / "ref.csv")
    rels = [r["path"] for r in csv.DictReader(open(ref))]
    emb = np.random.default_rng(0).normal(size=(len(rels), 8)).astype(np.float32)
    np.save(tmp_path / "e.npy", emb)
    (tmp_path / "e.csv").write_text("path\n" + "\n".join(rels) + "\n")
    rows = benchmark([edgefiq_artifacts["onnx"]], images=edgefiq_artifacts["images"], reference=ref,
                     embeddings=tmp_path / "e.npy", embeddings_index=tmp_path / "e.csv", fmr=0.1, **FAST)
    assert rows[0]["srcc"] == pytest.approx(1.0) and rows[0]["n_images"] == 12
    assert np.isfinite(rows[0]["pauc_x1e3"]) and rows[0]["pauc_x1e3"] >= 0


def test_floors_and_reports(edgefiq_artifacts, tmp_path):
    rows = [{"artifact": "a", "threads": 1, "batch": 1, "status": "ok", "reason": "", "throughput": 50.0, "p50_ms": 20.0,
             "p90_ms": 22.0},
            {"artifact": "b", "threads": 1, "batch": 1, "status": "failed", "reason": "boom"}]
    bad = check_floors(rows, {"throughput": 100})
    assert len(bad) == 2 and "a threads=1" in bad[0] and "boom" in bad[1]
    assert check_floors(rows[:1], {"throughput": 10}) == []
    paths = write_bench_report(rows, tmp_path / "b.json", settings={"threads": [1]})
    assert json.loads(paths["json"].read_text())["rows"][1]["reason"] == "boom"
    md = paths["md"].read_text()
    assert "| a |" in md and "failed: boom" in md and paths["png"].stat().st_size > 0
    assert "p99 ms" in format_markdown(rows)


def test_cli_bench_table_and_floor_exit(edgefiq_artifacts, tmp_path):
    onnx = str(edgefiq_artifacts["onnx"])
    res = CliRunner().invoke(cli, ["bench", onnx, "--min-runs", "3", "--min-time", "0", "--warmup", "0",
                                   "--batch-size", "1,2", "-o", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    assert "p50 ms" in res.output and "ok" in res.output
    assert (tmp_path / "b.md").is_file() and (tmp_path / "b.png").is_file()
    # a floor no CPU can reach: exit 1 with a one-line message
    r = subprocess.run([sys.executable, "-m", "edgefiq", "-q", "bench", onnx, "--min-runs", "3", "--min-time", "0",
                        "--no-png", "--floor", "throughput=1e12", "-o", str(tmp_path / "c.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "failed row" in r.stderr and "Traceback" not in r.stderr
    r = CliRunner().invoke(cli, ["bench", onnx, "--floor", "nonsense", "-o", str(tmp_path / "d.json")])
    assert r.exit_code == 2
    # --rounds through the CLI: the report gains the spread column; 0 rounds is a usage error
    r = CliRunner().invoke(cli, ["bench", onnx, "--min-runs", "2", "--min-time", "0", "--warmup", "0", "--rounds", "2",
                                 "--no-png", "-o", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    assert "p50 spread" in (tmp_path / "e.md").read_text() and "rounds=2" in (tmp_path / "e.md").read_text()
    r = CliRunner().invoke(cli, ["bench", onnx, "--rounds", "0", "-o", str(tmp_path / "f.json")])
    assert r.exit_code == 2 and "--rounds" in r.output


def test_help_has_example():
    for verb in ("bench", "eval", "score"):
        res = CliRunner().invoke(cli, [verb, "--help"])
        assert res.exit_code == 0 and "Example:" in res.output, verb


def test_isolated_rows_per_process(edgefiq_artifacts, tmp_path):
    from edgefiq.bench import benchmark_isolated

    missing = tmp_path / "missing.onnx"
    rows = benchmark_isolated([edgefiq_artifacts["onnx"], missing], threads=(1,), batches=(1,), warmup=0,
                              min_runs=2, min_time_s=0.0)
    assert rows[0]["status"] == "ok" and rows[0]["isolated"] and rows[0]["peak_rss_mb"] > 0
    assert rows[0]["path"] == str(edgefiq_artifacts["onnx"])
    assert rows[1]["status"] == "failed" and "not found" in rows[1]["reason"]


def test_rounds_take_the_median_of_round_medians(edgefiq_artifacts, tmp_path):
    from edgefiq.bench import benchmark_isolated, merge_rounds

    rows = benchmark([edgefiq_artifacts["onnx"]], threads=(1,), batches=(1,), warmup=0, min_runs=6, min_time_s=0.0,
                     rounds=3)
    r = rows[0]
    assert r["status"] == "ok" and r["rounds"] == 3 and len(r["p50_rounds_ms"]) == 3
    assert r["p50_ms"] == pytest.approx(float(np.median(r["p50_rounds_ms"])))
    assert r["runs"] >= 6 and r["p50_spread"] >= 0
    iso = benchmark_isolated([edgefiq_artifacts["onnx"]], threads=(1,), batches=(1,), warmup=0, min_runs=2,
                             min_time_s=0.0, rounds=2)
    assert iso[0]["rounds"] == 2 and iso[0]["isolated"] and len(iso[0]["p50_rounds_ms"]) == 2
    # hand-made rounds: median of medians, min of minima, runs summed, a failed round wins
    a = {"p50_ms": 1.0, "p90_ms": 2.0, "min_ms": 0.5, "runs": 4, "batch": 2, "throughput": 2000.0}
    b = {"p50_ms": 5.0, "p90_ms": 6.0, "min_ms": 0.9, "runs": 4, "batch": 2, "throughput": 400.0}
    c = {"p50_ms": 2.0, "p90_ms": 3.0, "min_ms": 0.7, "runs": 4, "batch": 2, "throughput": 1000.0}
    m = merge_rounds([[a], [b], [c]])[0]
    assert (m["p50_ms"], m["p90_ms"], m["min_ms"], m["runs"]) == (2.0, 3.0, 0.5, 12)
    assert m["throughput"] == pytest.approx(1000.0) and m["p50_spread"] == pytest.approx(2.0)
    assert merge_rounds([[a], [{"status": "failed", "reason": "x"}]])[0]["status"] == "failed"
    with pytest.raises(UsageError, match="rounds"):
        benchmark([edgefiq_artifacts["onnx"]], rounds=0)


def test_peak_rss_is_not_inherited_from_parent():
    from edgefiq.bench import peak_rss_mb

    big = np.ones(200 * 2**20 // 8)  # make this (parent) process 200+ MiB at its peak
    big[:] = 3.0
    assert peak_rss_mb() > 200
    r = subprocess.run([sys.executable, "-c", "import numpy; from edgefiq.timing import peak_rss_mb; "
                        "print(peak_rss_mb())"], capture_output=True, text=True, timeout=60)
    assert float(r.stdout) < 150, "child reports the parent's peak (ru_maxrss survives execve)"
