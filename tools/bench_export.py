"""Export benchmark: every target x precision for a distilled student and a structured-pruned copy.

For each variant (the checkpoint as trained, and a copy pruned with
``edgefiq.prune.prune_model(method="structured")``, NOT fine-tuned afterwards, so it is a
stand-in for a pruned+fine-tuned student) and every registered backend x precision:

* export with ``edgefiq.export.export_checkpoint`` and its parity gate, calibrating int8 on
  ``--calib-n`` images of the TRAINING identities (stratified by teacher score) and verifying
  on held-out VALIDATION identities (``--val-identities``); gate failures are results, kept
  in the table;
* file size, parity numbers (max/mean abs diff and SRCC vs the torch fp32 model);
* with ``edgefiq.bench.benchmark`` (the EVAL team's timing routine: warm-up, >= 30 runs and
  >= 1 s, p50): latency at batch 1 for each ``--threads``, SRCC vs the teacher labels and
  pAUC x1e3 (EDC, FMR 1e-3, discard 0.3, MobileFaceNet embeddings, all comparisons among the
  validation images) on the validation images, plus the same for the torch checkpoint so
  each artifact's pAUC can be compared with the fp32 model's.

Writes ``results/export.json`` and ``results/export.md`` (with the reproducing command).

Run:
    nice -n 10 python tools/bench_export.py \\
        --ckpt runs/bench_distill/mobilenetv3_small_100/best.pt \\
        --images runs/bench_distill/data/subset --labels runs/bench_distill/labels.csv \\
        --val-identities runs/bench_distill/val_identities.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("EDGEFIQ_SHARED", ROOT.parent / "shared" / "data"))


def split_labels(labels: Path, images: Path, val_ids: Path | None, work: Path) -> tuple[Path, Path, dict]:
    """Write train-only and validation-only label CSVs (by identity); returns their paths and counts."""
    from edgefiq.data.readers import identity_of, read_labels_csv, relpaths

    paths, q = read_labels_csv(labels, images)
    rels = relpaths(paths, images)
    if val_ids is not None:
        vset = set(Path(val_ids).read_text().split())
    else:  # 20 % of identities by a stable hash
        vset = {identity_of(r) for r in rels if zlib.crc32(identity_of(r).encode()) % 5 == 0}
    train = [(r, s) for r, s in zip(rels, q) if identity_of(r) not in vset]
    val = [(r, s) for r, s in zip(rels, q) if identity_of(r) in vset]
    work.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, rows in (("train", train), ("val", val)):
        p = work / f"labels_{name}.csv"
        p.write_text("path,quality\n" + "".join(f"{r},{float(s)!r}\n" for r, s in rows))
        out[name] = p
    info = {"train_images": len(train), "val_images": len(val), "val_identities": len({identity_of(r) for r, _ in val})}
    return out["train"], out["val"], info


def verify_npz(images: Path, val_csv: Path, out: Path, limit: int) -> Path:
    """An evenly spaced subset of the validation images as a verification ``.npz``."""
    from edgefiq.data.images import load_image

    rels = [ln.split(",")[0] for ln in val_csv.read_text().splitlines()[1:] if ln]
    sel = np.unique(np.linspace(0, len(rels) - 1, min(limit, len(rels))).round().astype(int))
    imgs = np.stack([load_image(images / rels[i]) for i in sel])
    np.savez_compressed(out, images=imgs, paths=np.array([rels[i] for i in sel]), scores=np.full(len(sel), np.nan))
    return out


def pruned_copy(ckpt: Path, out: Path, rho: float) -> Path:
    """Structured-pruned copy (``prune_checkpoint`` from the PRUNE team when present, else prune_model here)."""
    import torch

    from edgefiq import prune
    from edgefiq.models.checkpoint import load_checkpoint, save_checkpoint

    if out.is_file():
        return out
    if hasattr(prune, "prune_checkpoint"):
        return Path(prune.prune_checkpoint(ckpt, out, rho=rho, method="structured"))
    ck = load_checkpoint(ckpt)
    model, info = prune.prune_model(ck.model, torch.zeros(1, 3, *ck.preprocess.size), rho=rho, method="structured")
    save_checkpoint(out, model, arch=ck.arch, arch_kwargs=ck.arch_kwargs, preprocess=ck.preprocess,
                    pruning=prune.checkpoint_pruning(info),
                    meta={**ck.meta, "note": "structured-pruned copy for the export benchmark, not fine-tuned"})
    return out


def train_standin(images: Path, index_csv: Path, val_ids: Path, work: Path, steps: int) -> tuple[Path, Path]:
    """STAND-IN for the distilled student (used only with ``--standin STEPS`` while it has not landed):
    mobilenetv3_small_100 trained on training identities to predict ``1 - degradation severity``
    (clean = 1) from the subset index. Returns (checkpoint, labels CSV of that target)."""
    import csv

    import torch

    from edgefiq.data.images import load_image
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.data.readers import identity_of
    from edgefiq.models.checkpoint import save_checkpoint
    from edgefiq.registry import STUDENTS

    ck, lab = work / "standin.pt", work / "standin_labels.csv"
    with open(index_csv, newline="") as f:
        rows = [(r["path"], 1.0 - float(r["severity"] or 0)) for r in csv.DictReader(f)]
    lab.parent.mkdir(parents=True, exist_ok=True)
    lab.write_text("path,quality\n" + "".join(f"{p},{q!r}\n" for p, q in rows))
    if ck.is_file():
        return ck, lab
    vset = set(val_ids.read_text().split())
    train = [(p, q) for p, q in rows if identity_of(p) not in vset]
    torch.manual_seed(0)
    g = np.random.default_rng(0)
    pp = Preprocess(size=(112, 112))
    model = STUDENTS.get("mobilenetv3_small_100")()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for step in range(steps):
        batch = [train[i] for i in g.choice(len(train), 48, replace=False)]
        imgs = [load_image(images / p) for p, _ in batch]
        if g.random() < 0.5:
            imgs = [im[:, ::-1] for im in imgs]
        x = torch.from_numpy(pp.batch(imgs))
        y = torch.tensor([q for _, q in batch], dtype=torch.float32)
        loss = torch.nn.functional.mse_loss(model(x).reshape(-1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            print(f"[standin] step {step}/{steps} loss {loss.item():.4f}", file=sys.stderr, flush=True)
    save_checkpoint(ck, model.eval(), arch="mobilenetv3_small_100", preprocess=pp,
                    meta={"note": f"STAND-IN: trained {steps} steps on 1 - degradation severity by tools/bench_export.py"})
    return ck, lab


def export_all(variant: str, ckpt: Path, out_dir: Path, calib: Path, verify: Path, precisions: list[str],
               cache: Path, accuracy_control: float | None) -> list[dict[str, Any]]:
    """Every backend x precision of one checkpoint; gate failures are recorded, not raised.

    Rows are cached in ``cache`` (JSON) so an interrupted run resumes without re-exporting.
    With ``accuracy_control``, one more openvino int8 row uses accuracy-controlled mixed precision
    (``edgefiq.export.mixed``).
    """
    from edgefiq.errors import EdgefiqError
    from edgefiq.export import export_checkpoint
    from edgefiq.registry import BACKENDS

    from edgefiq.utils import sha256_file

    sha = sha256_file(ckpt)   # cached rows belong to this exact checkpoint
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    jobs = [(t, p, None) for t in BACKENDS.names() for p in BACKENDS.get(t).precisions if p in precisions]
    if accuracy_control is not None and "int8" in precisions:
        jobs.append(("openvino", "int8", accuracy_control))
    rows = []
    for target, precision, ac in jobs:
        key = f"{sha[:12]}/{variant}/{target}/{precision}" + (f"/ac{ac}" if ac is not None else "")
        if key in done:
            rows.append(done[key])
            continue
        row: dict[str, Any] = {"variant": variant, "target": target, "precision": precision}
        if ac is not None:
            row["accuracy_control"] = ac
        t0 = time.perf_counter()
        try:
            res = export_checkpoint(ckpt, target, out_dir, precision=precision, calibration=calib, verify=verify,
                                    name=variant + ("_ac" if ac is not None else ""), calibration_limit=None,
                                    accuracy_control=ac, overwrite=True)
            p = res.meta.parity
            row.update(status="ok", artifact=str(res.path), size_mb=_size_mb(res.files),
                       gate_passed=p["passed"], max_abs_diff=p["max_abs_diff"], mean_abs_diff=p["mean_abs_diff"],
                       srcc_vs_fp32=p["srcc_vs_fp32"], gate_n=p["n"], tolerance=p["tolerance"],
                       quantization={k: v for k, v in res.meta.quantization.items() if k != "input"})
        except EdgefiqError as e:
            row.update(status="failed", gate_passed=False, reason=str(e))
        row["export_s"] = round(time.perf_counter() - t0, 1)
        print(f"[export] {key}: {row['status']} {row.get('srcc_vs_fp32', row.get('reason', ''))}", file=sys.stderr, flush=True)
        rows.append(row)
        done[key] = row
        cache.write_text(json.dumps(done, indent=2, default=str))
    return rows


def _size_mb(files: list[Path]) -> float:
    return sum(f.stat().st_size for f in files if not f.name.endswith(".json")) / 1e6


def measure(rows: list[dict], ckpts: dict[str, Path], images: Path, val_csv: Path, fr: Path | None,
            threads: list[int], max_images: int | None) -> dict[str, dict]:
    """Latency + accuracy of every artifact and checkpoint with ``edgefiq.bench.benchmark``."""
    from edgefiq.bench import benchmark

    arts = [r["artifact"] for r in rows if r["status"] == "ok"] + [str(p) for p in ckpts.values()]
    res = benchmark(arts, threads=tuple(threads), batches=(1,), images=images, reference=val_csv,
                    fr_model=fr, max_images=max_images)
    out: dict[str, dict] = {}
    for r in res:
        d = out.setdefault(str(r["path"]), {})
        d[f"p50_ms_t{r['threads']}"] = r.get("p50_ms")
        for k in ("srcc", "pauc_x1e3", "n_images", "size_mb"):
            if r.get(k) is not None:
                d[k] = r[k]
        if str(r.get("status", "")).startswith("failed"):
            d["bench_error"] = r.get("reason")
    return out


def to_markdown(res: dict) -> str:
    s = res["setup"]
    lines = ["# Export benchmark (`tools/bench_export.py`)", "",
             f"Command: `{res['command']}`", ""]
    if s.get("standin"):
        lines += ["**STAND-IN MODEL**: the distilled student had not landed when this ran; the checkpoint is "
                  "mobilenetv3_small_100 trained by this tool on `1 - degradation severity` (training identities), "
                  "and 'SRCC vs teacher' is SRCC vs that severity label, not a teacher. Re-run without "
                  "`--standin` once `runs/bench_distill/mobilenetv3_small_100/best.pt` exists.", ""]
    lines += [
             f"Checkpoint: `{s['ckpt']}` ({s['arch']}); pruned variant: structured, rho={s['prune_rho']} "
             "(a copy pruned for this benchmark, **not fine-tuned**: a stand-in for a pruned+fine-tuned student).",
             f"Calibration: {s['calibration_images']} training-identity images stratified by teacher score. "
             f"Parity gate and accuracy on held-out validation identities: {s['verify_images']} images for the gate, "
             f"{s.get('accuracy_images', '?')} for SRCC/pAUC ({s['split']['val_identities']} identities).",
             f"Latency: `edgefiq.bench.benchmark` (p50 of >= 30 runs and >= 1 s after warm-up, batch 1) on "
             f"{s['machine']} shared with other jobs, so absolute times are noisy.", "",
             "| variant | target | precision | size MB | gate | max abs diff | mean abs diff | SRCC vs fp32 | "
             "SRCC vs teacher | pAUC x1e3 (torch fp32 ckpt) | p50 ms 1 thr | p50 ms 2 thr |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]

    def f(v: Any, fmt: str = ".4f") -> str:
        return "" if v is None else format(v, fmt) if isinstance(v, (int, float)) else str(v)

    for r in res["rows"]:
        ref = res["checkpoints"].get(r["variant"], {})
        tgt = r["target"] + (f" (accuracy control {r['accuracy_control']})" if r.get("accuracy_control") else "")
        gate = ("pass" if r.get("gate_passed") else "FAIL") if r["status"] == "ok" else f"FAIL: {r.get('reason', '')[:90]}"
        pauc = f(r.get("pauc_x1e3"), ".2f") + (f" ({f(ref.get('pauc_x1e3'), '.2f')})" if ref.get("pauc_x1e3") is not None else "")
        lines.append(f"| {r['variant']} | {tgt} | {r['precision']} | {f(r.get('size_mb'), '.2f')} | {gate} | "
                     f"{f(r.get('max_abs_diff'), '.2e')} | {f(r.get('mean_abs_diff'), '.2e')} | {f(r.get('srcc_vs_fp32'))} | "
                     f"{f(r.get('srcc'))} | {pauc} | {f(r.get('p50_ms_t1'), '.2f')} | {f(r.get('p50_ms_t2'), '.2f')} |")
    lines += ["", "Torch checkpoints (eager, via `edgefiq.bench.benchmark`; the fp32 reference each artifact is gated against):", "",
              "| variant | SRCC vs teacher | pAUC x1e3 | p50 ms 1 thr | p50 ms 2 thr |", "|---|---:|---:|---:|---:|"]
    for v, d in res["checkpoints"].items():
        lines.append(f"| {v} (torch eager) | {f(d.get('srcc'))} | {f(d.get('pauc_x1e3'), '.2f')} | "
                     f"{f(d.get('p50_ms_t1'), '.2f')} | {f(d.get('p50_ms_t2'), '.2f')} |")
    lines += ["", "Gates: fp32 max abs diff <= 1e-4 x scale, fp16 <= 1e-2 x scale (scale = max(1, max |score|)), "
              "int8 SRCC vs torch fp32 >= 0.99. Every artifact's sidecar `.json` records its parity numbers.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", type=Path, default=ROOT / "runs/bench_distill/mobilenetv3_small_100/best.pt")
    ap.add_argument("--images", type=Path, default=ROOT / "runs/bench_distill/data/subset")
    ap.add_argument("--labels", type=Path, default=ROOT / "runs/bench_distill/labels.csv")
    ap.add_argument("--val-identities", type=Path, default=ROOT / "runs/bench_distill/val_identities.txt")
    ap.add_argument("--fr-model", type=Path, default=SHARED / "models/mobilefacenet/mobilefacenet.pt")
    ap.add_argument("--work", type=Path, default=ROOT / "runs/bench_export")
    ap.add_argument("--prune-rho", type=float, default=0.3)
    ap.add_argument("--calib-n", type=int, default=300)
    ap.add_argument("--verify-n", type=int, default=500)
    ap.add_argument("--accuracy-images", type=int, default=600, help="validation images for SRCC/pAUC (first N sorted)")
    ap.add_argument("--pruned-precisions", nargs="+", default=["fp32", "fp16", "int8"])
    ap.add_argument("--accuracy-control", type=float, default=None, metavar="MAX_DROP",
                    help="also export openvino int8 with accuracy control (SRCC drop <= MAX_DROP)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--standin", type=int, default=None, metavar="STEPS",
                    help="if --ckpt is missing: train a clearly labelled stand-in for STEPS steps on degradation severity")
    a = ap.parse_args(argv)

    import torch

    from edgefiq.bench import environment
    from edgefiq.export.calibration import build_calibration_set
    from edgefiq.models.checkpoint import read_checkpoint

    torch.set_num_threads(2)
    os.environ.setdefault("EDGEFIQ_QUIET", "1")
    work = a.work
    standin = a.ckpt.resolve() == (work / "standin.pt").resolve()
    if standin or not a.ckpt.is_file():
        if a.standin is None:
            print(f"Error: {a.ckpt} not found (train it with tools/bench_distill.py, or pass --standin STEPS)", file=sys.stderr)
            return 1
        a.ckpt, a.labels = train_standin(a.images, a.images.parent / "subset_index.csv", a.val_identities, work, a.standin)
        standin = True
    train_csv, val_csv, split = split_labels(a.labels, a.images, a.val_identities if a.val_identities.is_file() else None, work)
    calib = work / "calibration.npz"
    if not calib.is_file():
        build_calibration_set(a.images, calib, n=a.calib_n, labels_csv=train_csv)
    verify = work / "verify.npz"
    if not verify.is_file():
        verify_npz(a.images, val_csv, verify, a.verify_n)
    from edgefiq.utils import sha256_file

    ckpts = {"student": a.ckpt,
             "pruned": pruned_copy(a.ckpt, work / f"pruned-{sha256_file(a.ckpt)[:12]}.pt", a.prune_rho)}
    rows = []
    for variant, ck in ckpts.items():
        precs = ["fp32", "fp16", "int8"] if variant == "student" else a.pruned_precisions
        rows += export_all(variant, ck, work / "export", calib, verify, precs, work / "export_rows.json",
                           a.accuracy_control)
    fr = a.fr_model if a.fr_model.is_file() else None
    meas = measure(rows, ckpts, a.images, val_csv, fr, a.threads, a.accuracy_images)
    for r in rows:
        r.update({k: v for k, v in meas.get(r.get("artifact", ""), {}).items() if k != "size_mb"})
    n_acc = next((d.get("n_images") for d in meas.values() if d.get("n_images")), None)
    with np.load(calib) as z:
        n_cal = len(z["images"])
    with np.load(verify) as z:
        n_ver = len(z["images"])
    res = {
        "command": "python tools/bench_export.py " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])),
        "setup": {"standin": standin, "ckpt": str(a.ckpt), "arch": read_checkpoint(a.ckpt)["arch"], "prune_rho": a.prune_rho,
                  "calibration_images": n_cal, "verify_images": n_ver, "accuracy_images": n_acc, "split": split,
                  "labels": str(a.labels), "fr_model": str(fr) if fr else None,
                  "timing": "edgefiq.bench.benchmark (EVAL team), batch 1",
                  "machine": f"{platform.machine()} {os.cpu_count()} cores", "environment": environment()},
        "rows": rows,
        "checkpoints": {v: meas.get(str(p), {}) for v, p in ckpts.items()},
    }
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / "export.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    (a.results / "export.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
