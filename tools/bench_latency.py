"""Latency benchmark of a student on every backend, run twice to show run-to-run agreement.

1. Export the student checkpoint to ONNX, OpenVINO and TFLite at fp32 and int8
   (``edgefiq.export.export_checkpoint``, parity-checked; int8 calibrated on 64 LFW dev images)
   into ``--work`` (default ``runs/bench_latency``, gitignored). Existing exports are reused.
2. Run ``python -m edgefiq bench --isolate --rounds N`` on all artifacts twice (``nice``): each
   run times every artifact in N interleaved rounds, a fresh process per artifact and round,
   and reports the median of the round medians (``--rounds 1`` = one process per artifact).
3. Write ``results/bench.json`` (both runs, environment, load average, per-row p50 agreement)
   ``results/bench.md`` (run-1 table + agreement table) and ``results/bench.png``.

If the distilled student (``--checkpoint``) does not exist yet, an untrained checkpoint of the
same architecture is benchmarked instead (latency does not depend on the weight values); the
report says which one was used.

Run:
    nice -n 10 python tools/bench_latency.py --threads 1,2 --batch 1,8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("EDGEFIQ_SHARED", ROOT.parent / "shared" / "data"))
DEFAULT_CKPT = ROOT / "runs" / "bench_distill" / "mobilenetv3_small_100" / "best.pt"
TARGETS = [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8"),
           ("tflite", "fp32"), ("tflite", "int8")]


def checkpoint(path: Path, work: Path, arch: str) -> tuple[Path, str]:
    """The student checkpoint, or an untrained one of ``arch`` if it does not exist (said in the report)."""
    if path.is_file():
        return path, f"trained student {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
    out = work / f"untrained_{arch}.pt"
    if not out.is_file():
        import torch

        from edgefiq.data.preprocess import Preprocess
        from edgefiq.models.checkpoint import save_checkpoint
        from edgefiq.registry import STUDENTS

        torch.manual_seed(0)
        save_checkpoint(out, STUDENTS.get(arch)().eval(), arch=arch, preprocess=Preprocess(size=(112, 112)))
    return out, f"UNTRAINED {arch} ({path} did not exist when this ran; latency does not depend on weights)"


def calibration_dir(work: Path, n: int = 64) -> Path:
    """Symlinks to ``n`` LFW dev images (sorted, every k-th) for int8 calibration."""
    from edgefiq.data.readers import list_images

    out = work / "calib"
    if out.is_dir() and len(list(out.iterdir())) >= n:
        return out
    out.mkdir(parents=True, exist_ok=True)
    paths = list_images(SHARED / "lfw-dev" / "aligned112")
    for k, p in enumerate(paths[:: max(1, len(paths) // n)][:n]):
        link = out / f"{k:03d}_{p.name}"
        if not link.exists():
            link.symlink_to(p)
    return out


def export_all(ckpt: Path, work: Path) -> tuple[list[Path], list[dict]]:
    from edgefiq.export import export_checkpoint
    from edgefiq.utils import sha256_file

    calib = calibration_dir(work)
    arts, log = [], []
    tag = f"{ckpt.stem}_{sha256_file(ckpt)[:10]}"  # exports are reused only for the same checkpoint bytes
    for target, prec in TARGETS:
        out_dir = work / "export" / tag / f"{target}_{prec}"
        existing = [p for p in out_dir.glob("*") if p.suffix in (".onnx", ".xml", ".tflite")] if out_dir.is_dir() else []
        if existing:
            arts.append(existing[0])
            log.append({"target": target, "precision": prec, "path": str(existing[0]), "status": "reused"})
            continue
        t0 = time.time()
        try:
            res = export_checkpoint(ckpt, target, out_dir, precision=prec,
                                    calibration=calib if prec == "int8" else None, verify=calib,
                                    overwrite=True)
            arts.append(Path(res.path))
            log.append({"target": target, "precision": prec, "path": str(res.path), "status": "exported",
                        "seconds": round(time.time() - t0, 1), "parity": res.meta.parity})
        except Exception as e:  # one failed target must not hide the others
            log.append({"target": target, "precision": prec, "status": "failed", "reason": str(e).splitlines()[0]})
        print(f"[export] {target} {prec}: {log[-1]['status']}", flush=True)
    return arts, log


def run_bench(arts: list[Path], out: Path, threads: str, batch: str, min_time: float, rounds: int) -> dict:
    cmd = [sys.executable, "-m", "edgefiq", "-q", "bench", *map(str, arts), "--threads", threads, "--batch-size", batch,
           "--min-time", str(min_time), "--min-runs", "50", "--warmup", "10", "--isolate", "--rounds", str(rounds),
           "--no-png", "-o", str(out)]
    load = os.getloadavg()
    subprocess.run(["nice", "-n", "10", *cmd], check=True, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    data["loadavg_before"] = load
    return data


def agreement(r1: list[dict], r2: list[dict], tol: float = 0.15) -> list[dict]:
    out = []
    for a, b in zip(r1, r2):
        if "p50_ms" not in a or "p50_ms" not in b:
            out.append({"artifact": a["artifact"], "threads": a["threads"], "batch": a["batch"], "within": None})
            continue
        rel = abs(a["p50_ms"] - b["p50_ms"]) / min(a["p50_ms"], b["p50_ms"])
        out.append({"artifact": a["artifact"], "threads": a["threads"], "batch": a["batch"], "p50_run1": a["p50_ms"],
                    "p50_run2": b["p50_ms"], "rel_diff": rel, "within": bool(rel <= tol),
                    "other_cpu_run1": a.get("other_cpu"), "other_cpu_run2": b.get("other_cpu")})
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    ap.add_argument("--arch", default="mobilenetv3_small_100", help="architecture of the untrained fallback")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_latency")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--min-time", type=float, default=2.0, help="timed seconds per setting, split over the rounds")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per run (median of round medians)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    ap.add_argument("--render", action="store_true", help="only rewrite OUT.md/.png from OUT.json (no timing)")
    args = ap.parse_args(argv)
    from edgefiq.bench.report import plot_latency
    from edgefiq.utils import atomic_write_text, write_json

    if args.render:
        report = json.loads(args.out.with_suffix(".json").read_text())
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        ckpt, ckpt_desc = checkpoint(args.checkpoint, args.work, args.arch)
        arts, export_log = export_all(ckpt, args.work)
        runs = [run_bench(arts, args.work / f"run{k}.json", args.threads, args.batch, args.min_time, args.rounds)
                for k in (1, 2)]
        agree = agreement(runs[0]["rows"], runs[1]["rows"])
        report = {"summary": summarise(agree, runs, ckpt_desc), "exports": export_log, "agreement": agree,
                  "run1": runs[0], "run2": runs[1],
                  "command": "nice -n 10 python tools/bench_latency.py " + " ".join(argv or sys.argv[1:])}
        write_json(args.out.with_suffix(".json"), report)
    md = render(report)
    atomic_write_text(args.out.with_suffix(".md"), md)
    plot_latency(report["run1"]["rows"], args.out.with_suffix(".png"))
    print(md)


def summarise(agree: list[dict], runs: list[dict], ckpt_desc: str) -> dict:
    ok = [a for a in agree if a["within"] is not None]
    by_threads = {t: [sum(a["within"] for a in ok if a["threads"] == t), sum(a["threads"] == t for a in ok)]
                  for t in sorted({a["threads"] for a in ok})}
    others = [o for a in ok for o in (a.get("other_cpu_run1"), a.get("other_cpu_run2")) if o is not None]
    return {"checkpoint": ckpt_desc, "rows_compared": len(ok), "rows_within_15pct": sum(a["within"] for a in ok),
            "within_by_threads": by_threads, "max_other_cpu": max(others) if others else None,
            "max_rel_diff": max((a["rel_diff"] for a in ok), default=None),
            "loadavg_before_runs": [r["loadavg_before"] for r in runs]}


def render(report: dict) -> str:
    """results/bench.md from the JSON report."""
    from edgefiq.bench.report import format_markdown

    summary, agree, run1 = report["summary"], report["agreement"], report["run1"]
    md = format_markdown(run1["rows"], run1["environment"], run1["settings"]).replace(
        "# edgefiq bench", f"# edgefiq bench: {summary['checkpoint']}", 1)
    others = summary.get("max_other_cpu")
    quiet = (f"Other processes kept at most {others:.2f} cores busy while any row was timed (`other CPU`, "
             "measured per round from /proc): both runs were timed on a quiet machine. " if others is not None and others < 0.2
             else f"Other processes kept up to {others:.2f} cores busy while rows were timed (`other CPU`): "
             "not a quiet machine. " if others is not None else "")
    md += ("\n## Run-to-run agreement of p50 (second run in a fresh process)\n\n"
           f"{summary['rows_within_15pct']} of {summary['rows_compared']} rows within 15%; max relative difference "
           f"{summary['max_rel_diff']:.1%}. By thread count: "
           + ", ".join(f"{t} thread(s) {w} of {n}" for t, (w, n) in summary["within_by_threads"].items()) + ". "
           + quiet + "Load average (1/5/15 min) before the runs: "
           + "; ".join("/".join(f"{v:.2f}" for v in la) for la in summary["loadavg_before_runs"])
           + " (a trailing average: it includes work that ended before the runs started, and run 1 for run 2). "
           "The 2-thread rows use both cores of this VM; `p50 spread` in the table is the spread of the rounds' "
           "medians within run 1.\n\n"
           "| artifact | threads | batch | p50 run 1 ms | p50 run 2 ms | diff | within 15% | other CPU run 1 / 2 |\n"
           "|---|---:|---:|---:|---:|---:|---|---|\n")
    for a in agree:
        if a["within"] is None:
            md += f"| {a['artifact']} | {a['threads']} | {a['batch']} | - | - | - | (failed row) | |\n"
        else:
            oc = " / ".join("-" if o is None else f"{o:.2f}" for o in (a.get("other_cpu_run1"), a.get("other_cpu_run2")))
            md += (f"| {a['artifact']} | {a['threads']} | {a['batch']} | {a['p50_run1']:.3f} | {a['p50_run2']:.3f} | "
                   f"{a['rel_diff']:.1%} | {'yes' if a['within'] else 'NO'} | {oc} |\n")
    md += "\n## Exports\n\n" + "".join(f"- {e['target']} {e['precision']}: {e['status']}"
                                       + (f" ({e.get('reason')})" if e["status"] == "failed" else "") + "\n"
                                       for e in report["exports"])
    md += f"\nReproduce: `{report['command']}`\n"
    return md


if __name__ == "__main__":
    main()
