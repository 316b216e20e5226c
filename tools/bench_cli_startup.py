#!/usr/bin/env python
"""Measure how fast the ``edgefiq`` command starts: wall time and peak memory per invocation.

Runs each command N times in a fresh process (``os.wait4`` gives the child's peak RSS) and writes the median,
spread, machine load and whether torch was imported to ``results/cli_startup.{md,json}``. Timings belong
here, not in unit tests (CONVENTIONS.md); tests only check that ``--help`` does not import torch.

Example:
    python tools/bench_cli_startup.py --runs 5      # default 15 runs, --out results/cli_startup
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGEFIQ = str(Path(sys.executable).with_name("edgefiq"))

COMMANDS = {
    "edgefiq --help": [EDGEFIQ, "--help"],
    "edgefiq --version": [EDGEFIQ, "--version"],
    "edgefiq score --help": [EDGEFIQ, "score", "--help"],
    "edgefiq export nothere.pt -t onnx -o /tmp/x": [EDGEFIQ, "export", "nothere.pt", "-t", "onnx", "-o", "/tmp/x"],
    "edgefiq distill --help": [EDGEFIQ, "distill", "--help"],
}
# The same check inside Python: does `edgefiq --help` import torch?
TORCH_CHECK = ("import sys\nfrom edgefiq.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
               "sys.stderr.write(str('torch' in sys.modules))")


def run_once(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB and exit status of one fresh process."""
    t0 = time.perf_counter()
    devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
    pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=devnull)
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def measure(runs: int) -> dict[str, dict[str, float]]:
    """Median/min/max wall time and peak RSS of every command."""
    out: dict[str, dict[str, float]] = {}
    for name, argv in COMMANDS.items():
        samples = [run_once(argv) for _ in range(runs)]
        t = [s[0] for s in samples]
        m = [s[1] for s in samples]
        out[name] = {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                     "median_rss_mb": statistics.median(m), "max_rss_mb": max(m), "exit_code": samples[0][2],
                     "runs": runs}
    return out


def torch_imported() -> bool:
    """True if `edgefiq --help` imports torch (checked in a fresh interpreter)."""
    r = subprocess.run([sys.executable, "-c", TORCH_CHECK], capture_output=True, text=True, cwd=ROOT)
    return r.stderr.strip().endswith("True")


def to_markdown(res: dict[str, dict[str, float]], env: dict[str, object]) -> str:
    """The results table plus the conditions it was measured under."""
    lines = ["# CLI start-up (tools/bench_cli_startup.py)", "",
             f"Measured {env['date']} on {env['machine']} ({env['cpus']} CPUs, Python {env['python']}), "
             f"{env['runs']} fresh processes per command; load average {env['load_before']} before, "
             f"{env['load_after']} after (the machine was shared with a training job and other work, so the "
             f"minimum is the best estimate of an idle machine). `edgefiq --help` imports torch: "
             f"{env['torch_imported']}.", "",
             "| command | median s | min s | max s | median peak RSS MB | max peak RSS MB | exit |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in res.items():
        lines.append(f"| `{name}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | "
                     f"{r['median_rss_mb']:.1f} | {r['max_rss_mb']:.1f} | {r['exit_code']} |")
    lines += ["", "Targets (issue 20): `edgefiq --help` under 0.5 s median and under 100 MB peak RSS. "
              "`edgefiq distill --help` lists the students and so imports torch by design; without torch it "
              "still prints its help.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "cli_startup")
    a = ap.parse_args(argv)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    res = measure(a.runs)
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.machine(),
           "cpus": os.cpu_count(), "python": platform.python_version(), "runs": a.runs,
           "load_before": load_before, "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
           "torch_imported": torch_imported()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps({"environment": env, "results": res}, indent=2) + "\n")
    md = to_markdown(res, env)
    a.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
