"""Latency of a structurally pruned student per ``round_to`` (channel counts kept multiples of it), against its parent.

Why: unrounded structured pruning leaves channel counts such as 27 or 43; onnxruntime's
blocked CPU kernels want multiples of the SIMD width, and the full-size LFW run's pruned
student was 2.5x slower than its unpruned parent on onnxruntime (issue 18). This script
prunes a student (random init, seeded: the channel counts, not the weights, decide the
kernels) at one ``rho`` with each ``round_to``, exports fp32 artifacts without the parity
gate, and times them interleaved (``benchmark(rounds=...)``) at 1 thread, batch 1.

Example:
    python tools/bench_round_to.py --targets onnx,openvino -o results/round_to.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    """Prune, export, time, and write a Markdown table (with the command that made it)."""
    import torch

    import edgefiq.models.students  # noqa: F401  (registers the students)
    from edgefiq.bench import benchmark
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.export import export_model
    from edgefiq.prune import prune_model
    from edgefiq.registry import STUDENTS
    from edgefiq.utils import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="mobilenetv3_small_100")
    ap.add_argument("--rho", type=float, default=0.3)
    ap.add_argument("--round-to", default="none,4,8,16", help="comma-separated; none = no rounding")
    ap.add_argument("--targets", default="onnx")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "round_to.md")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="round_to_"))
    pp = Preprocess(size=(112, 112))
    variants: list[tuple[str, str, Path]] = []
    for rt in ["parent", *a.round_to.split(",")]:
        torch.manual_seed(0)
        model = STUDENTS.get(a.arch)().eval()
        if rt != "parent":
            model, _ = prune_model(model, torch.zeros(1, 3, 112, 112), rho=a.rho, method="structured",
                                   round_to=None if rt == "none" else int(rt))
        for target in a.targets.split(","):
            res = export_model(model, pp, target, work / f"{rt}-{target}", precision="fp32", no_verify=True,
                               name=f"rt{rt}", overwrite=True)
            variants.append((rt, target, res.path))
    rows = benchmark([p for _, _, p in variants], threads=(1,), batches=(1,), min_time_s=a.min_time, rounds=a.rounds)
    parent = {t: r["p50_ms"] for (rt, t, _), r in zip(variants, rows) if rt == "parent"}
    lines = [f"# Structured pruning (rho {a.rho}) of {a.arch}: p50 latency per round_to", "",
             f"Command: `python tools/bench_round_to.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
             "Random-init weights (seed 0), fp32, 1 thread, batch 1, median of "
             f"{a.rounds} interleaved rounds; the machine was shared with other jobs.", "",
             "| round_to | target | size MB | p50 ms | vs parent |", "|---|---|---:|---:|---:|"]
    for (rt, t, _), r in zip(variants, rows):
        lines.append(f"| {rt} | {t} | {r['size_mb']:.2f} | {r['p50_ms']:.3f} | {r['p50_ms'] / parent[t]:.2f}x |")
    atomic_write_text(a.output, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
