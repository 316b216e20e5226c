"""Labelling throughput of ``edgefiq label`` per teacher: images/s, CPU time and the machine's load.

Each row runs the real CLI in a subprocess on the same ``--n`` LFW dev images (a symlink folder): a warm-up on
16 images (builds the ONNX graph cache), then the timed run with ``--no-cache`` (every FR pass computed).
Recorded: the CLI's images/s, the whole command's wall time, the child's CPU ms per image and
``os.getloadavg()`` before and after (rows measured under load are contaminated: rerun on a quiet machine).
``*-bf16`` rows (``--precision bf16``, CPUs with native bfloat16 only) also record the SRCC of their scores
against the fp32 row's (run it first). Outputs results/label_speed.{json,md} (rows merged by key).

    .venv/bin/python tools/bench_label_speed.py            # all rows, 2000 images
    .venv/bin/python tools/bench_label_speed.py --rows prefiqs-pt prefiqs-pt-torch --n 1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgefiq.data.readers import read_label_map
from edgefiq.metrics import srcc
from edgefiq.pipeline.card import build_machine
from edgefiq.teachers.onnx_graph import native_bf16
from edgefiq.utils import atomic_write_text, write_json

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEFIQ_SHARED", ROOT.parent / "shared" / "data"))
MFN = SHARED / "models" / "mobilefacenet"
ROWS: dict[str, list[str]] = {
    "prefiqs-pt": ["--teacher", "prefiqs", "--fr-model", str(MFN / "mobilefacenet.pt"), "--method", "l1", "--rho", "0.4"],
    "prefiqs-pt-torch": ["--teacher", "prefiqs", "--fr-model", str(MFN / "mobilefacenet.pt"), "--method", "l1",
                         "--rho", "0.4", "--runtime", "torch"],
    "prefiqs-onnx": ["--teacher", "prefiqs", "--fr-model", str(MFN / "MobileFaceNet.onnx"), "--method", "l1", "--rho", "0.4"],
    "norm-pt": ["--teacher", "norm", "--fr-model", str(MFN / "mobilefacenet.pt")],
    "serfiq-pt": ["--teacher", "serfiq", "--fr-model", str(MFN / "mobilefacenet.pt"), "--passes", "20"],
    "serfiq-onnx": ["--teacher", "serfiq", "--fr-model", str(MFN / "MobileFaceNet.onnx"), "--passes", "20"],
}
# bf16 rows: the fp32 row with ``--precision bf16`` (CPUs with native bfloat16 only); their scores are
# compared with that fp32 row's (SRCC over the same images)
ROWS.update({f"{k}-bf16": [*v, "--precision", "bf16"] for k, v in list(ROWS.items())
             if k in ("prefiqs-pt", "prefiqs-onnx", "norm-pt", "serfiq-pt")})


def image_folder(src: Path, out: Path, n: int) -> Path:
    """``out``: a folder of symlinks to the first ``n`` images of ``src`` (sorted), made once."""
    if not out.is_dir():
        for p in sorted(src.glob("*/*.jpg"))[:n]:
            (out / p.parent.name).mkdir(parents=True, exist_ok=True)
            (out / p.parent.name / p.name).symlink_to(p.resolve())
    return out


def run_cli(args: list[str]) -> tuple[float, float]:
    """Run ``edgefiq label ARGS``; returns (wall seconds, child CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgefiq", "label", *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def measure(key: str, images: Path, work: Path, threads: int) -> dict[str, Any]:
    """Warm-up on 16 images, then the timed ``--no-cache`` run over all of ``images``."""
    common = ["--cache-dir", str(work / "cache"), "--threads", str(threads), "--no-resume"]
    warm = image_folder(images, work / "warm", 16)
    run_cli([str(warm), *ROWS[key], "-o", str(work / f"warm-{key}.csv"), *common])
    out = work / f"{key}.csv"
    load0 = os.getloadavg()
    wall, cpu = run_cli([str(images), *ROWS[key], "-o", str(out), "--no-cache", *common])
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    n = meta["n_labelled"]
    agreement = None
    fp32_csv = work / f"{key.removesuffix('-bf16')}.csv"
    if key.endswith("-bf16") and fp32_csv.is_file():
        a, b = read_label_map(out), read_label_map(fp32_csv)
        both = sorted(set(a) & set(b))
        agreement = {"vs": key.removesuffix("-bf16"), "n": len(both),
                     "srcc": srcc([a[k] for k in both], [b[k] for k in both])}
    return {"key": key, "command": "edgefiq label IMAGES " + " ".join(ROWS[key]) + f" --threads {threads} --no-cache",
            "n_images": n, "images_per_second": meta["images_per_second"], "wall_images_per_second": n / wall,
            "cpu_ms_per_image": 1000 * cpu / n, "loadavg_before": load0, "loadavg_after": os.getloadavg(),
            "runtime": meta["teacher"].get("runtime"), "precision": meta["teacher"].get("precision", "fp32"),
            "srcc_vs_fp32": agreement, "threads": threads, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def render_md(rows: dict[str, Any]) -> str:
    """Markdown table of the measured rows."""
    md = ["# `edgefiq label` throughput (LFW dev images, MobileFaceNet)", "",
          "Reproduce: `.venv/bin/python tools/bench_label_speed.py` (see its docstring). images/s = the CLI's "
          "labelling loop; wall = the whole command incl. start-up; load = `os.getloadavg()` 1-min before/after. "
          "Rows measured with a load above the core count are contaminated by other jobs.", "",
          "bf16 rows run the FR passes with OpenVINO in bfloat16 (`--precision bf16`); their SRCC is against "
          "the scores of the fp32 row of the same teacher on the same images.", "",
          "| row | runtime | precision | images | images/s | wall images/s | CPU ms/image | SRCC vs fp32 | "
          "load before -> after | measured |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        agree = f"{r['srcc_vs_fp32']['srcc']:.4f}" if r.get("srcc_vs_fp32") else "-"
        md.append(f"| {r['key']} | {r['runtime'] or '-'} | {r.get('precision', 'fp32')} | {r['n_images']} | "
                  f"{r['images_per_second']:.1f} | {r['wall_images_per_second']:.1f} | {r['cpu_ms_per_image']:.2f} | "
                  f"{agree} | "
                  f"{r['loadavg_before'][0]:.1f} -> {r['loadavg_after'][0]:.1f} | {r['measured_at']} |")
    m = build_machine()
    md += ["", f"CPU: {m['cpu']}, {m['cpus']} cores, VNNI {'yes' if m['vnni'] else 'no'}, "
               f"native bfloat16 (OpenVINO) {'yes' if native_bf16() else 'no'}."]
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--n", type=int, default=2000, help="images per timed run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=str(ROOT / "runs" / "label_speed"))
    ap.add_argument("--out", default=str(ROOT / "results" / "label_speed"))
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    images = image_folder(SHARED / "lfw-dev" / "aligned112", work / f"images{args.n}", args.n)
    out = Path(args.out)
    prev = out.with_suffix(".json")
    rows = json.loads(prev.read_text())["rows"] if prev.is_file() else {}
    for key in args.rows:
        if key.endswith("-bf16") and not native_bf16():
            print(f"{key}: skipped (this CPU has no native bfloat16)", flush=True)
            continue
        rows[key] = measure(key, images, work, args.threads)
        r = rows[key]
        print(f"{key}: {r['images_per_second']:.1f} img/s (wall {r['wall_images_per_second']:.1f}, "
              f"{r['cpu_ms_per_image']:.2f} CPU ms/img, load {r['loadavg_before'][0]:.1f})", flush=True)
        write_json(prev, {"rows": rows})
        atomic_write_text(out.with_suffix(".md"), render_md(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
