"""Run the test suite with one pytest process per test file, then print one closing line.

Why: the suite loads torch, onnxruntime, OpenVINO, NNCF, LiteRT and JAX native libraries
into one process; in a single long pytest process we saw a segmentation fault (exit 139)
that no test reproduces alone and no real edgefiq command can reach (a command loads one
backend). One process per file keeps native state from leaking between files, and a crash
is reported against its file instead of silently ending the run.

Usage:
    python tools/run_tests.py            # everything, slow and shared_data included (CI)
    python tools/run_tests.py -m "not slow"
Extra arguments go to every pytest call. Exit status 0 only if every file passed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def main(argv: list[str]) -> int:
    extra = argv or ["-m", ""]
    files = sorted((ROOT / "tests").glob("test_*.py"))
    totals: dict[str, int] = {}
    bad: list[str] = []
    start = time.time()
    for f in files:
        t0 = time.time()
        cmd = [sys.executable, "-m", "pytest", str(f.relative_to(ROOT)), "-p", "no:cacheprovider", "-q", "-rfE", *extra]
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = proc.stdout
        last = next((line for line in reversed(out.strip().splitlines()) if COUNT.search(line)), "")
        counts = {k if not k.startswith("error") else "errors": int(n) for n, k in COUNT.findall(last)}
        for k, n in counts.items():
            totals[k] = totals.get(k, 0) + n
        ok = proc.returncode in (0, 5)  # 5 = every test of the file deselected by -m
        if not ok:
            bad.append(f.name)
            print(out, flush=True)
            if proc.returncode < 0 or proc.returncode > 128:
                totals["failed"] = totals.get("failed", 0) + 1
                print(f"{f.name}: pytest process died (exit {proc.returncode})", flush=True)
        summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no tests"
        print(f"{'ok  ' if ok else 'FAIL'} {f.name:<40} {summary}  ({time.time() - t0:.0f} s)", flush=True)
    failed = totals.get("failed", 0) + totals.get("errors", 0)
    print(f"\n{len(files)} test files in {time.time() - start:.0f} s; failing files: {', '.join(bad) or 'none'}")
    print(f"total: {totals.get('passed', 0)} passed, {failed} failed, {totals.get('skipped', 0)} skipped")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
