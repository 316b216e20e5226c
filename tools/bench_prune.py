"""Pruning benchmark: rho sweeps of the distilled student for structured, L1 and random pruning.

What it measures (``edgefiq.pipeline.sweep``): params (and non-zero params), MACs, checkpoint
size and its gzip size, ONNX fp32 size, onnxruntime latency at 1 thread (batch 1, interleaved
rounds), SRCC of the pruned model against the unpruned one on held-out identities, and EDC
pAUC x1e3 (MobileFaceNet comparisons, FMR 1e-3, discard 0.3) of the pruned scores.

Parts:

1. ``check-large``: structured rho=0.5 on ``mobilenetv3_large_100`` (112x112, random init):
   MACs/params reductions, ONNX export, latency vs unpruned in the same run.
2. ``sweep``: every method at ``--rhos`` without recovery.
3. ``recovery``: every method at ``--recovery-rhos`` with ``--finetune-epochs`` of recovery
   fine-tuning (KD from the unpruned model through ``edgefiq.distill``) on training identities.

Data: images = the distillation benchmark's subset (clean LFW dev crops + one degraded copy
each, ``runs/bench_distill/data/subset``) when present, else ``../shared/data/lfw-dev/aligned112``.
Held-out (evaluation) identities = ``pairs.txt`` folds 6-7 (the distillation validation
identities); recovery trains on a seeded sample of the other identities. Both are exposed as
symlink trees under ``--work`` (nothing is copied).

Model: ``--ckpt`` (default the distilled ``runs/bench_distill/mobilenetv3_small_100/best.pt``);
if it does not exist a STAND-IN is built and flagged in the results: an untrained
mobilenetv3_small_100 whose BatchNorm statistics are calibrated on training images.

Run:
    nice -n 10 python tools/bench_prune.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("EDGEFIQ_SHARED", ROOT.parent / "shared" / "data"))
DISTILLED = ROOT / "runs" / "bench_distill" / "mobilenetv3_small_100" / "best.pt"


def held_out_identities() -> set[str]:
    """Identities of LFW ``pairs.txt`` folds 6-7 (the distillation benchmark's validation identities)."""
    from edgefiq.data.readers import read_lfw_pairs

    pairs = read_lfw_pairs(SHARED / "lfw-dev" / "pairs.txt")
    per_fold = len(pairs) // 7
    ids: set[str] = set()
    for a, b, _ in pairs[5 * per_fold:]:
        ids.update((a.split("/")[0], b.split("/")[0]))
    return ids


def link_tree(root: Path, rels: list[str], out: Path) -> Path:
    """A symlink tree ``out/<rel>`` -> ``root/<rel>`` (idempotent)."""
    for rel in rels:
        dst = out / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to((root / rel).resolve())
    return out


def make_splits(images: Path, work: Path, n_eval: int, n_train: int, seed: int) -> tuple[Path, Path, dict]:
    """Evaluation tree (held-out identities) and recovery-training tree (other identities)."""
    from edgefiq.data.readers import list_images

    rels = [p.relative_to(images).as_posix() for p in list_images(images)]
    held = held_out_identities()
    ev = [r for r in rels if r.split("/")[0] in held]
    tr = [r for r in rels if r.split("/")[0] not in held]
    rng = np.random.default_rng(seed)
    ev = sorted(rng.choice(ev, min(n_eval, len(ev)), replace=False).tolist())
    tr = sorted(rng.choice(tr, min(n_train, len(tr)), replace=False).tolist())
    tag = f"e{len(ev)}_t{len(tr)}_s{seed}"
    ev_root = link_tree(images, ev, work / "data" / f"eval_{tag}")
    tr_root = link_tree(images, tr, work / "data" / f"train_{tag}")
    info = {"images": str(images), "eval_images": len(ev), "eval_identities": len({r.split('/')[0] for r in ev}),
            "train_images": len(tr), "train_identities": len({r.split('/')[0] for r in tr}), "seed": seed}
    return ev_root, tr_root, info


def stand_in(work: Path, train_root: Path, images: Path, labels: Path | None, epochs: int, threads: int) -> Path:
    """A stand-in for the distilled student.

    With the distillation benchmark's teacher labels available: mobilenetv3_small_100 distilled
    for ``epochs`` epochs by ``edgefiq.distill`` on the non-held-out identities (a shorter run
    than the distillation benchmark's). Otherwise an untrained mobilenetv3_small_100 whose
    BatchNorm statistics are calibrated on training images.
    """
    import torch

    from edgefiq.data.images import load_image
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.data.readers import list_images
    from edgefiq.models.checkpoint import save_checkpoint
    from edgefiq.registry import STUDENTS

    if labels is not None and labels.is_file():
        from edgefiq.distill import DataConfig, DistillConfig, OptimConfig, distill

        run = work / f"standin_distill_e{epochs}"
        if not (run / "model.json").is_file():
            held = run.parent / "held_out_identities.txt"
            held.write_text("\n".join(sorted(held_out_identities())) + "\n")
            cfg = DistillConfig(student="mobilenetv3_small_100", threads=threads, seed=0,
                                data=DataConfig(images=str(images), labels=str(labels), val_identities=str(held)),
                                optim=OptimConfig(epochs=epochs, batch_size=64, lr=2e-3, warmup_epochs=0.3))
            distill(cfg, run, resume=(run / "last.pt").is_file())
        return run / "best.pt"
    out = work / "standin_mobilenetv3_small_100.pt"
    if out.is_file():
        return out
    torch.manual_seed(0)
    model = STUDENTS.get("mobilenetv3_small_100")()
    pp = Preprocess(size=(112, 112))
    paths = list_images(train_root)[:512]
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for i in range(0, len(paths), 64):
            model(torch.from_numpy(pp.batch([load_image(p) for p in paths[i:i + 64]])))
    save_checkpoint(out, model.eval(), arch="mobilenetv3_small_100", preprocess=pp,
                    meta={"stand_in": "untrained mobilenetv3_small_100, BN statistics calibrated on "
                                      f"{len(paths)} training images"})
    return out


def check_large(work: Path, rounds: int, runs: int) -> dict:
    """Structured rho=0.5 on mobilenetv3_large_100: reductions, ONNX export, latency vs unpruned."""
    import torch

    from edgefiq.data.preprocess import Preprocess
    from edgefiq.models.checkpoint import save_checkpoint
    from edgefiq.pipeline.sweep import SweepConfig, sweep
    from edgefiq.registry import STUDENTS

    ck = work / "large" / "mobilenetv3_large_100.pt"
    if not ck.is_file():
        torch.manual_seed(0)
        save_checkpoint(ck, STUDENTS.get("mobilenetv3_large_100")().eval(), arch="mobilenetv3_large_100",
                        preprocess=Preprocess(size=(112, 112)))
    out = {}
    for key, round_to in (("round_to_8", 8), ("no_rounding", None)):
        out[key] = sweep(ck, work / "large" / key, SweepConfig(rhos=(0.5,), methods=("structured",),
                                                               prune={"round_to": round_to},
                                                               latency_rounds=rounds, latency_runs=runs))
    return out


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """Rows of an earlier run of the same part that this run did not redo, plus this run's rows."""
    key = lambda r: (r["method"], r["rho"], r.get("recovery_epochs", 0), r.get("recovery_kd"))  # noqa: E731
    for r in old:   # rows from before recovery_kd was recorded trained on offline KD labels
        if r.get("recovery_epochs") and not r.get("recovery_kd"):
            r["recovery_kd"] = "offline"
    redone = {key(r) for r in new}
    kept = [r for r in old if key(r) not in redone]
    return [new[0], *[r for r in kept if r["method"] != "unpruned"], *new[1:]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=DISTILLED)
    ap.add_argument("--images", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_prune")
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--parts", default="check-large,sweep,recovery",
                    help="comma list of check-large, sweep, recovery; 'render' only rewrites results/prune.md")
    ap.add_argument("--methods", default="structured,l1,random")
    ap.add_argument("--rhos", default="0.1:0.9:0.1")
    ap.add_argument("--recovery-rhos", default="0.3,0.5,0.7")
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--kd", choices=["online", "offline"], default="online",
                    help="recovery targets: the unpruned model's scores of each augmented view (online) or of the "
                         "original images, computed once (offline)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--n-eval", type=int, default=800)
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--no-pauc", action="store_true")
    ap.add_argument("--latency-rounds", type=int, default=5)
    ap.add_argument("--latency-runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--standin-epochs", type=int, default=3, help="distillation epochs of the stand-in student")
    ap.add_argument("--snapshot", action=argparse.BooleanOptionalAction, default=True,
                    help="work on a copy of --ckpt (kept across runs; --refresh-snapshot recopies it)")
    ap.add_argument("--refresh-snapshot", action="store_true")
    ap.add_argument("--round-to", type=int, default=8, help="structured channel rounding (0 = none)")
    args = ap.parse_args()

    import torch

    from edgefiq.pipeline.recovery import RecoveryConfig
    from edgefiq.pipeline.sweep import SweepConfig, format_markdown, parse_rhos, sweep
    from edgefiq.utils import atomic_write_text, write_json

    torch.set_num_threads(args.threads)
    if args.parts == "render":
        report = json.loads((args.results / "prune.json").read_text())
        atomic_write_text(args.results / "prune.md", render(report))
        return
    t0 = time.time()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    subset = ROOT / "runs" / "bench_distill" / "data" / "subset"
    images = args.images or (subset if subset.is_dir() and any(subset.iterdir()) else SHARED / "lfw-dev" / "aligned112")
    parts = set(args.parts.split(","))
    ev_root, tr_root, split = make_splits(images, work, args.n_eval, args.n_train, args.seed)
    ckpt, standin = args.ckpt, not args.ckpt.is_file()
    if not standin and args.snapshot:
        # the distillation benchmark may still be training into this file: work on a frozen copy
        import shutil

        from edgefiq.utils import sha256_file

        snap = work / "student_snapshot.pt"
        if not snap.is_file() or args.refresh_snapshot:
            shutil.copyfile(ckpt, snap)
        report_src = {"source": str(args.ckpt), "sha256": sha256_file(snap)}
        ckpt = snap
    else:
        report_src = {"source": str(ckpt)}
    if standin:
        labels = ROOT / "runs" / "bench_distill" / "labels.csv"
        ckpt = stand_in(work, tr_root, images, labels if images == subset else None, args.standin_epochs, args.threads)
    fr = None if args.no_pauc else SHARED / "models" / "mobilefacenet" / "mobilefacenet.pt"
    methods = tuple(args.methods.split(","))
    cmd = "nice -n 10 python tools/bench_prune.py " + " ".join(sys.argv[1:])
    results_json = args.results / "prune.json"
    report = json.loads(results_json.read_text()) if results_json.is_file() else {}
    commands = report.get("commands", {})
    if "command" in report:  # report written by an earlier version of this tool: keep its command
        commands.setdefault("earlier run", report["command"])
    commands.update({part: cmd.strip() for part in parts})
    report.pop("command", None)
    standin_desc = None
    if standin:
        from edgefiq.models.checkpoint import read_checkpoint

        meta = read_checkpoint(ckpt)["meta"]
        standin_desc = meta.get("stand_in") or (
            f"mobilenetv3_small_100 distilled by this tool for {args.standin_epochs} epochs (edgefiq.distill, "
            f"teacher labels runs/bench_distill/labels.csv, held-out identities excluded); best val SRCC vs "
            f"teacher {meta.get('metrics', {}).get('val_srcc', float('nan')):.3f}")
    from edgefiq.models.checkpoint import read_checkpoint as _read

    smeta = _read(ckpt)["meta"]
    report_src.update(epoch=smeta.get("epoch"), val_metrics_vs_teacher=smeta.get("metrics"))
    prev_ckpt = report.get("checkpoint")
    report.update({"commands": commands, "checkpoint": str(ckpt), "student": report_src, "stand_in": standin,
                   "stand_in_description": standin_desc, "split": split,
                   "environment": {"python": platform.python_version(), "torch": torch.__version__,
                                   "cpu_threads": args.threads, "machine": platform.machine(),
                                   "cores": os.cpu_count()}})
    if "check-large" in parts:
        report["check_large"] = check_large(work, args.latency_rounds, args.latency_runs)
    common = dict(eval_images=str(ev_root), fr_model=str(fr) if fr else None, latency_rounds=args.latency_rounds,
                  latency_runs=args.latency_runs, prune={"seed": args.seed, "round_to": args.round_to or None})
    if "sweep" in parts:
        rows = sweep(ckpt, work / "sweep", SweepConfig(rhos=tuple(parse_rhos(args.rhos)), methods=methods, **common))
        old = report.get("sweep", {}).get("rows", []) if prev_ckpt == str(ckpt) else []
        report["sweep"] = {"rows": merge_rows(old, rows),
                           "meta": json.loads((work / "sweep" / "sweep.json").read_text())["meta"]}
    if "recovery" in parts:
        rec = RecoveryConfig(epochs=args.finetune_epochs, images=str(tr_root), lr=args.lr, batch_size=64,
                             threads=args.threads, seed=args.seed, online_kd=args.kd == "online")
        rec_dir = work / (f"recovery_ft{args.finetune_epochs}" + ("_online" if args.kd == "online" else ""))
        rows = sweep(ckpt, rec_dir,
                     SweepConfig(rhos=tuple(parse_rhos(args.recovery_rhos)), methods=methods, recovery=rec, **common))
        for r in rows[1:]:   # rows of earlier runs may have trained on another --n-train
            r["recovery_images"] = split["train_images"]
        old = report.get("recovery", {}).get("rows", []) if prev_ckpt == str(ckpt) else []
        report["recovery"] = {"rows": merge_rows(old, rows), "meta": json.loads((rec_dir / "sweep.json").read_text())["meta"]}
    report["seconds_last_run"] = round(time.time() - t0, 1)
    write_json(results_json, report)
    atomic_write_text(args.results / "prune.md", render(report))
    print((args.results / "prune.md").read_text())


def render(r: dict) -> str:
    """results/prune.md from the JSON report."""
    from edgefiq.pipeline.sweep import format_markdown

    s = r["split"]
    cmds = r.get("commands") or {"all": r.get("command", "")}
    lines = ["# Pruning benchmark (`edgefiq prune`)", "", "Reproduce (each part updates this file and `results/prune.json`):", ""]
    lines += [f"- {part}: `{c}`" for part, c in sorted(cmds.items())] + [""]
    if r.get("stand_in"):
        lines += ["**STAND-IN MODEL**: the distillation benchmark's `runs/bench_distill/mobilenetv3_small_100/best.pt` "
                  f"did not exist when this ran. Stand-in: {r.get('stand_in_description')}. Size/MAC/latency numbers "
                  "are those of the real architecture; SRCC/pAUC describe fidelity to this stand-in.", ""]
    else:
        st = r.get("student", {})
        vm = st.get("val_metrics_vs_teacher") or {}
        lines += [f"Model: the distilled student `{st.get('source', r['checkpoint'])}` (frozen copy `{r['checkpoint']}`, "
                  f"sha256 {str(st.get('sha256', ''))[:12]}, best epoch {st.get('epoch')}, val SRCC vs teacher "
                  f"{vm.get('val_srcc', float('nan')):.3f}).", ""]
    lines += [f"Data: `{s['images']}`; SRCC vs the unpruned model and pAUC on {s['eval_images']} images of "
              f"{s['eval_identities']} held-out identities (LFW pairs.txt folds 6-7); recovery fine-tuning on "
              f"other identities (seed {s['seed']}; images per row in `recovery_images`, the last run's: "
              f"{s['train_images']} images of {s['train_identities']} identities). "
              "pAUC x1e3: EDC FNMR at FMR 1e-3 over discard 0-0.3, MobileFaceNet comparisons (lower is better). "
              "Latency: onnxruntime fp32, 1 thread, batch 1, median over interleaved rounds on a shared 2-core "
              "machine (ratios within a table are the meaningful part).", ""]
    if "check_large" in r:
        lines += ["## Structured rho=0.5 on mobilenetv3_large_100 (112x112, global L1 group importance)", ""]
        for key, rows in r["check_large"].items():
            lines += [f"### {key.replace('_', ' ')}", "", format_markdown(rows), ""]
            if len(rows) == 2 and rows[1].get("status") == "ok":
                p = rows[1]
                lines += [f"Params -{100 * p['params_reduction']:.1f}%, MACs -{100 * p['macs_reduction']:.1f}%, "
                          f"exported to ONNX (parity-checked by `edgefiq.export`), latency {p['latency_ms']:.3f} ms "
                          f"vs {rows[0]['latency_ms']:.3f} ms unpruned in the same run (median ratio "
                          f"{p['latency_ratio']:.2f}" + (f", fastest-call ratio {p['latency_min_ratio']:.2f}"
                                                     if "latency_min_ratio" in p else "") + ").", ""]
    for key, title in (("sweep", "Sweep without recovery"), ("recovery", "With recovery fine-tuning")):
        if key in r:
            lines += [f"## {title}", "", format_markdown(r[key]["rows"], r[key]["meta"]), ""]
            if key == "recovery":
                rc = r[key]["meta"]["recovery"]
                lines += [f"Recovery: `recovery_epochs` epochs (per row) of `edgefiq.distill` (losses {rc['losses']}, "
                          f"lr {rc['lr']}, batch {rc['batch_size']}) on the training identities, with the unpruned "
                          "model's scores as targets (KD, z-scored, affine map folded back into the output layer); "
                          "`recovery_kd` online = the unpruned model scores each augmented (flipped, shifted) view, "
                          "offline = its scores of the original images, computed once, stand for every view (offline rows: "
                          "the recovery command with `--kd offline`, the only mode before online KD; the online row "
                          "is the listed command); "
                          "unstructured masks kept fixed during fine-tuning. Rows of different runs are merged: each "
                          "row's latency ratio is against the unpruned model timed in its own run.", ""]
    lines += ["## Reading the tables", "",
              "- `structured` removes channels: params, MACs, file size and latency all fall. `l1`/`random` only "
              "zero weights: the dense ONNX graph runs at the same speed, and only the gzip size shows the sparsity.",
              "- `srcc_vs_unpruned` is rank agreement with the unpruned student on held-out identities. A small "
              "regressor's ranking is fragile: even light structured pruning scrambles it until recovery fine-tuning.",
              "- `recovery_val_srcc` in `results/prune.json` is the distillation loop's own validation (10% of the "
              "training identities), used to pick the best epoch.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
