"""``edgefiq eval`` on LFW dev validation identities: PreFIQs teacher vs a distilled student vs random.

Images: the validation identities of the distillation benchmark (``tools/bench_distill.py``:
identities of ``pairs.txt`` folds 6-7, never used to train the student), each clean LFW dev
image plus one degraded copy (``runs/bench_distill/data/subset``), exposed as a symlink tree in
``--work``. Comparisons: all genuine and impostor pairs of that identity tree with MobileFaceNet
(``--fr-model``), leaving out pairs of a photo with its own degraded copy
(``--same-source-index``). Sources:

- ``prefiqs``: PreFIQs(MobileFaceNet, l1, rho 0.4) labels (``runs/bench_distill/labels.csv``,
  or ``edgefiq.teachers.label_images(..., "prefiqs")`` when ``--label-with-teachers``);
- ``student``: the distilled student checkpoint scored with ``edgefiq score``;
- optional exported artifacts (``--artifact``) scored with ``edgefiq score`` on their runtime;
- ``random``: ``--random-baseline``.

Outputs ``results/eval_lfw/``: report.md, report.json, edc.png, plus checks.json (is random's
pAUC the worst in every table?) and the exact commands.

Run:
    nice -n 10 python tools/bench_eval_lfw.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("EDGEFIQ_SHARED", ROOT.parent / "shared" / "data"))
DISTILL = ROOT / "runs" / "bench_distill"


def build_tree(work: Path, subset_root: Path, subset_index: Path, val_ids: Path, limit_ids: int | None) -> tuple[Path, Path, list[str]]:
    """Symlink tree of the validation images + their path,source index (for same-photo exclusion)."""
    from edgefiq.data.readers import identity_of

    ids = sorted(set(val_ids.read_text().split()))
    if limit_ids:
        ids = ids[:limit_ids]
    keep = set(ids)
    with open(subset_index, newline="") as f:
        rows = [r for r in csv.DictReader(f) if identity_of(r["path"]) in keep]
    root = work / "images"
    for r in rows:
        link = root / r["path"]
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((subset_root / r["path"]).resolve())
    index = work / "source_index.csv"
    with open(index, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "source"])
        w.writerows((r["path"], r["source"]) for r in rows)
    return root, index, sorted(r["path"] for r in rows)


def teacher_csv(work: Path, rels: list[str], labels: Path | None, images: Path, with_teachers: bool) -> tuple[Path, str]:
    out = work / "prefiqs.csv"
    if with_teachers:
        from edgefiq.teachers import label_images

        label_images(images, "prefiqs", {}, out, batch_size=64, device="cpu", on_bad_image="error", resume=True)
        return out, "edgefiq.teachers prefiqs (default options)"
    if labels is None or not labels.is_file():
        raise SystemExit(f"no teacher labels at {labels}; run tools/bench_distill.py --stage label or pass "
                         "--label-with-teachers")
    want = set(rels)
    with open(labels, newline="") as f:
        got = {r["path"]: r["quality"] for r in csv.DictReader(f) if r["path"] in want}
    missing = want - set(got)
    if missing:
        raise SystemExit(f"{labels}: {len(missing)} validation images have no label yet")
    with open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "quality"])
        w.writerows((r, got[r]) for r in rels)
    return out, f"PreFIQs(MobileFaceNet, l1, rho 0.4) labels from {labels.relative_to(ROOT) if labels.is_relative_to(ROOT) else labels}"


def edgefiq(*args: str) -> list[str]:
    cmd = [sys.executable, "-m", "edgefiq", *args]
    print("$ edgefiq " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)
    return ["edgefiq", *args]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "eval_lfw")
    ap.add_argument("--distill-work", type=Path, default=DISTILL)
    ap.add_argument("--student", type=Path, default=DISTILL / "mobilenetv3_small_100" / "best.pt")
    ap.add_argument("--artifact", type=Path, action="append", default=[], help="exported artifacts to add")
    ap.add_argument("--labels", type=Path, default=DISTILL / "labels.csv")
    ap.add_argument("--label-with-teachers", action="store_true")
    ap.add_argument("--fr-model", type=Path, default=SHARED / "models" / "mobilefacenet" / "mobilefacenet.pt")
    ap.add_argument("--fmr", default="1e-3,1e-4")
    ap.add_argument("--limit-ids", type=int, default=None, help="use only the first N validation identities")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-cache", action="store_true", help="recompute FR embeddings even if cached in --work/fr")
    ap.add_argument("--embed-only", action="store_true", help="only compute/cache the FR embeddings (no student)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "eval_lfw")
    args = ap.parse_args(argv)
    t0 = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    dw = args.distill_work
    images, src_index, rels = build_tree(args.work, dw / "data" / "subset", dw / "data" / "subset_index.csv",
                                         dw / "val_identities.txt", args.limit_ids)
    print(f"{len(rels)} validation images", flush=True)
    teacher, teacher_desc = teacher_csv(args.work, rels, args.labels, images, args.label_with_teachers)
    commands, names, csvs = [], ["prefiqs"], [teacher]
    if args.embed_only:
        edgefiq("-q", "eval", "--images", str(images), "--identities-from-folders", "--fr-model", str(args.fr_model),
                "--save-embeddings", str(args.work / "fr"), "--quality", str(teacher), "--name", "prefiqs",
                "--fmr", args.fmr, "-o", str(args.work / "embed_only_report"))
        return
    if not args.student.is_file():
        raise SystemExit(f"student checkpoint {args.student} not found")
    student_csv = args.work / "student.csv"
    commands.append(edgefiq("-q", "score", str(args.student), str(images), "-o", str(student_csv),
                            "--threads", str(args.threads)))
    names.append("student")
    csvs.append(student_csv)
    for art in args.artifact:
        out = args.work / f"{art.name}.csv"
        commands.append(edgefiq("-q", "score", str(art), str(images), "-o", str(out), "--threads", str(args.threads)))
        names.append(art.name)
        csvs.append(out)
    cache = args.work / "fr"
    cached = (cache / "embeddings_index.csv").is_file() and (cache / "embeddings.json").is_file() and \
        (cache / "embeddings_index.csv").read_text().split()[1:] == rels and \
        Path(json.loads((cache / "embeddings.json").read_text())["fr_model"].split("(")[-1].rstrip(")")).name == args.fr_model.name
    if cached and not args.no_cache:  # FR inference is the slow part: reuse this tool's earlier embeddings
        fr_args = ["--embeddings", str(cache / "embeddings.npy"), "--embeddings-index", str(cache / "embeddings_index.csv")]
    else:
        fr_args = ["--fr-model", str(args.fr_model), "--save-embeddings", str(cache)]
    eval_args = ["eval", "--images", str(images), "--identities-from-folders", *fr_args,
                 "--same-source-index", str(src_index), "--reference", "prefiqs", "--random-baseline",
                 "--fmr", args.fmr, "-o", str(args.out)]
    for n, c in zip(names, csvs):
        eval_args += ["--quality", str(c), "--name", n]
    commands.append(edgefiq(*eval_args))

    rep = json.loads((args.out / "report.json").read_text())
    checks = []
    for fmr in rep["fmrs"]:
        for conv in rep["conventions"]:
            rows = {r["source"]: r["pauc_x1e3"] for r in rep["pauc"] if r["fmr"] == fmr and r["convention"] == conv}
            worst = max(rows, key=rows.get)
            checks.append({"fmr": fmr, "convention": conv, "pauc_x1e3": rows, "worst": worst,
                           "random_is_worst": worst == "random"})
    from edgefiq.utils import write_json

    write_json(args.out / "checks.json", {
        "random_is_worst_everywhere": all(c["random_is_worst"] for c in checks), "checks": checks,
        "teacher": teacher_desc, "student": str(args.student), "n_images": rep["n_images"],
        "seconds": round(time.time() - t0, 1), "commands": commands,
        "reproduce": "nice -n 10 python tools/bench_eval_lfw.py " + " ".join(argv or sys.argv[1:])})
    for c in checks:
        print(f"FMR {c['fmr']:g} {c['convention']}: " + ", ".join(f"{k} {v:.2f}" for k, v in c["pauc_x1e3"].items())
              + f" -> worst: {c['worst']}")


if __name__ == "__main__":
    main()
