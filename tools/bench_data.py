"""Time the data layer on this machine: inspect (headers / full decode), align, degrade, synthetic sample.

Writes results/data_bench.json and results/data_bench.md. Run niced on a shared machine:

    nice -n 10 python tools/bench_data.py [--shared ../shared/data] [--out results]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from edgefiq.utils import atomic_write_text, write_json


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--out", default="results")
    args = ap.parse_args()
    from edgefiq.data.align import align_folder
    from edgefiq.data.degrade import make_degraded_set
    from edgefiq.data.inspect import inspect_path
    from edgefiq.data.synthetic import make_synthetic_sample

    lfw = Path(args.shared) / "lfw-dev"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t, rep = _time(lambda: inspect_path(lfw / "aligned112"))
        rows.append({"task": "inspect aligned112 (headers)", "items": rep["images"], "seconds": t})
        t, rep = _time(lambda: inspect_path(lfw / "aligned112", verify=True))
        rows.append({"task": "inspect aligned112 --verify (full decode)", "items": rep["images"], "seconds": t})
        t, res = _time(lambda: align_folder(lfw / "raw_sample", lfw / "landmarks.tsv", Path(tmp) / "al"))
        rows.append({"task": "align raw_sample (250x250 -> 112x112)", "items": res.aligned, "seconds": t})
        t, idx = _time(lambda: make_degraded_set(lfw / "aligned112", Path(tmp) / "deg", fraction=0.05, seed=0,
                                                 include_clean=False))
        n = sum(1 for _ in open(idx)) - 1
        rows.append({"task": "degrade 5% of aligned112 (1 kind x 4 severities)", "items": n, "seconds": t})
        t, root = _time(lambda: make_synthetic_sample(Path(tmp) / "syn", n_identities=20, per_identity=6))
        n = sum(1 for _ in open(root / "index.csv")) - 1
        rows.append({"task": "synthetic sample 20 x 6 (+ degraded copies)", "items": n, "seconds": t})
    for r in rows:
        r["seconds"] = round(r["seconds"], 3)
        r["items_per_s"] = round(r["items"] / r["seconds"], 1)
    env = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": round(os.getloadavg()[0], 2),
           "note": "shared 2-core machine; other jobs were running, so these are upper bounds"}
    out = Path(args.out)
    write_json(out / "data_bench.json", {"environment": env, "results": rows})
    md = ["# Data layer timings", "", f"`nice -n 10 python tools/bench_data.py` - {env['cpus']} CPUs, "
          f"load average {env['load_avg_1m']} at the end ({env['note']}).", "",
          "| task | items | seconds | items/s |", "|---|---|---|---|"]
    md += [f"| {r['task']} | {r['items']:,} | {r['seconds']:.2f} | {r['items_per_s']:,} |" for r in rows]
    atomic_write_text(out / "data_bench.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
