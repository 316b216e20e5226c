"""Teacher benchmark: EDC pAUC of PreFIQs (l1 / random / structured x rho), norm, SER-FIQ vs random scores.

The PreFIQs paper's ablation (its Tables 6-8) on real data: LFW dev identities with at
least two images (a seeded subset, capped per identity), plus degraded copies of every
image made with ``edgefiq.data.degrade.make_degraded_set`` (one random kind per image at
each severity). Comparisons: all genuine pairs (same identity, excluding pairs of two
copies of the same photo) and all impostor pairs, cosine similarity of the same FR
model's embeddings. For each teacher: pAUC x1e3 of the EDC (FNMR at FMR 1e-3, discard up
to 0.3) under both threshold conventions of ``edgefiq.metrics.edc`` (``fixed``: ISO/IEC
29794-1 style, threshold from all impostors once; ``reestimate``: SER-FIQ/CR-FIQA code
style), the normalised pAUC (0 = oracle, 1 = random discarding), and labelling
throughput. Lower pAUC is better.

Usage (about 15-25 min on 2 shared cores):
    nice -n 10 python tools/bench_teachers.py
Outputs: results/teachers.json, results/teachers.md; degraded set and caches in runs/bench_teachers/.
"""

from __future__ import annotations

import argparse
import fnmatch
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def build_set(args: argparse.Namespace, work: Path) -> tuple[Path, list[str], list[str], list[str], np.ndarray, list[str]]:
    """Symlinked clean subset + degraded copies; returns (root, relpaths, identities, sources, severity, kinds)."""
    from edgefiq.data.degrade import DEGRADATIONS, make_degraded_set

    src_root = Path(args.images)
    ids = sorted(d.name for d in src_root.iterdir() if d.is_dir())
    files = {i: sorted(p.name for p in (src_root / i).iterdir() if p.suffix.lower() == ".jpg") for i in ids}
    eligible = [i for i in ids if len(files[i]) >= 2]
    rng = np.random.default_rng(args.seed)
    chosen = sorted(rng.choice(eligible, size=min(args.max_identities, len(eligible)), replace=False).tolist())
    sub = work / "src"
    for ident in chosen:
        picks = sorted(rng.choice(files[ident], size=min(args.per_identity, len(files[ident])), replace=False).tolist())
        (sub / ident).mkdir(parents=True, exist_ok=True)
        for f in picks:
            link = sub / ident / f
            if not link.exists():
                link.symlink_to((src_root / ident / f).resolve())
    kinds = DEGRADATIONS if args.kinds == "all" else tuple(args.kinds.split(","))
    index = make_degraded_set(sub, work / "mixed", kinds=kinds, severities=tuple(args.severities), per_image=1,
                              seed=args.seed, include_clean=True)
    with open(index, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
    rels = [r["path"] for r in rows]
    return (work / "mixed", rels, [r.split("/")[0] for r in rels], [r["source"] for r in rows],
            np.array([float(r["severity"]) for r in rows]), [r["kind"] for r in rows])


def score(teacher: Any, root: Path, rels: list[str], chunk: int = 256) -> tuple[np.ndarray, float]:
    """Score in engine-sized chunks; returns (quality, seconds)."""
    t0 = time.perf_counter()
    tables = [teacher.score_table(root, rels[k:k + chunk]) for k in range(0, len(rels), chunk)]
    table = {c: np.concatenate([t[c] for t in tables]) for c in tables[0]}
    q = teacher.finalize(table)["quality"]
    return np.asarray(q, np.float64), time.perf_counter() - t0


def edc_metrics(comp: Any, q: np.ndarray) -> dict[str, float]:
    from edgefiq.metrics.edc import edc_curve, pauc, pauc_x1e3

    out = {}
    for conv in ("fixed", "reestimate"):
        curve = edc_curve(comp, q, fmr=1e-3, convention=conv, discard_limit=0.3)
        out[f"pauc_x1e3_{conv}"] = pauc_x1e3(curve, 0.3)
        out[f"pauc_norm_{conv}"] = pauc(curve, 0.3, normalise=True)
        out[f"fnmr0_{conv}"] = float(curve.fnmr[0])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", default=str(SHARED / "lfw-dev/aligned112"))
    ap.add_argument("--fr-model", default=str(SHARED / "models/mobilefacenet/mobilefacenet.pt"))
    ap.add_argument("--work", default=str(ROOT / "runs/bench_teachers"))
    ap.add_argument("--out", default=str(ROOT / "results/teachers"), help="output stem (.json/.md)")
    ap.add_argument("--max-identities", type=int, default=100)
    ap.add_argument("--per-identity", type=int, default=3)
    ap.add_argument("--kinds", default="all")
    ap.add_argument("--severities", type=float, nargs="+", default=[0.4, 0.8])
    ap.add_argument("--rhos", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    ap.add_argument("--methods", nargs="+", default=["l1", "random", "structured"])
    ap.add_argument("--serfiq-m", type=int, default=20)
    ap.add_argument("--random-seeds", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", nargs="+", default=None, help="only run rows whose key matches these globs")
    ap.add_argument("--tag", default="", help="name of this run's partial file (to run row subsets in parallel)")
    ap.add_argument("--only-done", action="store_true",
                    help="write the report from the rows already measured (runs/.../partial.json), run nothing new")
    args = ap.parse_args(argv)

    import torch

    from edgefiq.metrics.edc import comparisons_from_identities
    from edgefiq.teachers import make_teacher
    from edgefiq.utils import atomic_write_text, write_json

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_set = time.perf_counter()
    root, rels, idents, sources, severity, kinds = build_set(args, work)
    print(f"set: {len(rels)} images ({int((severity == 0).sum())} clean), {len(set(idents))} identities "
          f"[{time.perf_counter() - t_set:.0f}s]", flush=True)
    import hashlib

    signature = hashlib.sha256(("\n".join(rels) + args.fr_model).encode()).hexdigest()[:16]
    partial = work / f"partial{('-' + args.tag) if args.tag else ''}.json"
    done: dict[str, Any] = {}
    for f in sorted(work.glob("partial*.json")):  # rows measured by this or parallel runs (--tag)
        prev = json.loads(f.read_text())
        if prev.get("_set", signature) == signature:
            done.update({k: v for k, v in prev.items() if k != "_set"})
    done["_set"] = signature
    engine = {"batch_size": args.batch_size, "cache_dir": str(work / "cache")}
    fr = args.fr_model

    rows: list[dict[str, Any]] = []
    comp = None

    def comparisons() -> Any:
        nonlocal comp
        if comp is None:
            t = make_teacher("norm", {"fr_model": fr}, **engine)
            full, _ = t.cached_full(root, rels)
            if full is None:  # not cached yet: one full pass fills the cache
                score(t, root, rels)
                full, _ = t.cached_full(root, rels)
            c = comparisons_from_identities(full, idents)
            src = np.asarray(sources)
            comp = c.select(src[c.i] != src[c.j])  # two copies of one photo are not a genuine comparison
            print(f"comparisons: {comp.n_genuine} genuine, {comp.n_impostor} impostor", flush=True)
        return comp

    def run(key: str, teacher: str, options: dict[str, Any], note: str = "") -> None:
        if key in done:
            rows.append(done[key])
            return
        if args.only_done or (args.configs and not any(fnmatch.fnmatch(key, pat) for pat in args.configs)):
            return
        t = make_teacher(teacher, options, **engine)
        t0 = time.perf_counter()
        if hasattr(t, "pruned"):
            t.pruned  # build the pruned copy outside the timed labelling (one-off cost, reported separately)
        setup = time.perf_counter() - t0
        q, secs = score(t, root, rels)
        row = {"key": key, "teacher": teacher, **{k: v for k, v in options.items() if k != "fr_model"},
               "seconds": secs, "setup_seconds": setup, "images_per_second": len(rels) / secs, "note": note,
               **edc_metrics(comparisons(), q), "srcc_vs_severity": float(_srcc(q, -severity))}
        rows.append(row)
        done[key] = row
        write_json(partial, done)
        print(f"{key:28s} pAUC fixed {row['pauc_x1e3_fixed']:7.2f}  reest {row['pauc_x1e3_reestimate']:7.2f}  "
              f"{row['images_per_second']:6.1f} img/s", flush=True)

    # first run fills the embedding cache (full + pruned passes): its throughput is the uncached one
    run("prefiqs-l1-0.4", "prefiqs", {"fr_model": fr, "method": "l1", "rho": 0.4},
        note="first teacher: full + pruned forward passes (later rows reuse cached full embeddings)")
    for method in args.methods:
        for rho in args.rhos:
            key = f"prefiqs-{method}-{rho:g}"
            if key != "prefiqs-l1-0.4":
                run(key, "prefiqs", {"fr_model": fr, "method": method, "rho": rho}, note="full embeddings cached")
    run("norm", "norm", {"fr_model": fr, "cache": False}, note="cache disabled: throughput of one full forward pass")
    run(f"serfiq-m{args.serfiq_m}", "serfiq", {"fr_model": fr, "m": args.serfiq_m, "dropout": 0.5})
    comp = comparisons()
    # references: the known severity (an oracle of the degradation, not a teacher) and random scores
    sev_row = {"key": "severity (1 - known severity)", "teacher": "severity", "seconds": 0.0,
               "images_per_second": None, "note": "reference: uses the degradation labels",
               **edc_metrics(comp, 1.0 - severity), "srcc_vs_severity": 1.0}
    rnd = [edc_metrics(comp, np.random.default_rng(1000 + s).random(len(rels))) for s in range(args.random_seeds)]
    rnd_row = {"key": f"random (mean of {args.random_seeds} seeds)", "teacher": "random", "seconds": 0.0,
               "images_per_second": None, "note": "baseline",
               **{k: float(np.mean([r[k] for r in rnd])) for k in rnd[0]},
               **{k + "_std": float(np.std([r[k] for r in rnd])) for k in rnd[0]}, "srcc_vs_severity": 0.0}
    rows += [sev_row, rnd_row]

    result = {
        "command": "python tools/bench_teachers.py " + " ".join(_reproducible(argv if argv is not None else sys.argv[1:])),
        "fr_model": fr, "images_root": args.images, "n_images": len(rels), "n_clean": int((severity == 0).sum()),
        "n_identities": len(set(idents)), "severities": args.severities, "kinds": sorted(set(kinds) - {"clean"}),
        "n_genuine": comp.n_genuine, "n_impostor": comp.n_impostor, "fmr": 1e-3, "discard_limit": 0.3,
        "threads": args.threads, "batch_size": args.batch_size, "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "torch": torch.__version__,
        "complete": len(rows) - 2 == 3 + len(args.methods) * len(args.rhos) - (1 if "l1" in args.methods and 0.4 in args.rhos else 0),
        "rows": rows,
    }
    out = Path(args.out)
    write_json(out.with_suffix(".json"), result)
    atomic_write_text(out.with_suffix(".md"), render_md(result))
    print(f"wrote {out.with_suffix('.md')}")
    return 0


def findings(rows: list[dict[str, Any]], rnd: dict[str, Any]) -> list[str]:
    """Plain statements about the table: best setting per method and where each method beats random."""
    out = []
    limit = rnd["pauc_x1e3_fixed"] - 3 * rnd["pauc_x1e3_fixed_std"]
    for m in sorted({x["method"] for x in rows if x["teacher"] == "prefiqs"}):
        rs = sorted((x for x in rows if x["teacher"] == "prefiqs" and x["method"] == m), key=lambda x: x["rho"])
        best = min(rs, key=lambda x: x["pauc_x1e3_fixed"])
        good = [x["rho"] for x in rs if x["pauc_x1e3_fixed"] < limit]
        out.append(f"- PreFIQs `{m}`: best rho {best['rho']:g} with pAUC x1e3 {best['pauc_x1e3_fixed']:.2f} "
                   f"(fixed) / {best['pauc_x1e3_reestimate']:.2f} (reestimate) vs random "
                   f"{rnd['pauc_x1e3_fixed']:.2f} / {rnd['pauc_x1e3_reestimate']:.2f}; "
                   + (f"more than 3 random-seed std below random at rho {', '.join(f'{g:g}' for g in good)}."
                      if good else "never more than 3 random-seed std below random."))
    for t in ("norm", "serfiq"):
        x = next((y for y in rows if y["teacher"] == t), None)
        if x:
            out.append(f"- `{x['key']}`: pAUC x1e3 {x['pauc_x1e3_fixed']:.2f} (fixed) / "
                       f"{x['pauc_x1e3_reestimate']:.2f} (reestimate).")
    out.append("- Rows with normalised pAUC near 1 and SRCC vs severity near or below 0 (high rho; random or "
               "structured pruning of this compact 1 M-parameter network) are no better than random: most likely "
               "the pruned copy's embedding no longer tracks the full model's, so the distance carries little "
               "information about the image.")
    return out


def _reproducible(argv: list[str]) -> list[str]:
    """The command line without the options that only split or assemble the work (same results)."""
    out, skip = [], False
    for a in argv:
        if a in ("--configs", "--tag"):
            skip = True
            continue
        if a == "--only-done":
            continue
        if skip and not a.startswith("--"):
            continue
        skip = False
        out.append(a)
    return out


def _srcc(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def render_md(r: dict[str, Any]) -> str:
    rows = r["rows"]
    rnd = next(x for x in rows if x["teacher"] == "random")

    def line(x: dict[str, Any]) -> str:
        ips = f"{x['images_per_second']:.1f}" if x.get("images_per_second") else "-"
        return (f"| {x['key']} | {x['pauc_x1e3_fixed']:.2f} | {x['pauc_norm_fixed']:.3f} | "
                f"{x['pauc_x1e3_reestimate']:.2f} | {x['pauc_norm_reestimate']:.3f} | {x['srcc_vs_severity']:.3f} | {ips} |")

    head = ["| teacher | pAUC x1e3 (fixed) | norm. (fixed) | pAUC x1e3 (reestimate) | norm. (reest.) | "
            "SRCC vs -severity | images/s |", "|---|---|---|---|---|---|---|"]
    md = ["# Quality teachers on LFW dev (MobileFaceNet): EDC pAUC", "",
          f"Reproduce: `nice -n 10 {r['command']}` (rows can be split over parallel runs with `--configs GLOB... "
          "--tag NAME` and assembled with `--only-done`; scores are deterministic, only images/s depends on the load).",
          "",
          f"Set: {r['n_images']} images = {r['n_clean']} clean LFW dev crops of {r['n_identities']} identities "
          f"(>= 2 images each) + one degraded copy per image at each severity {r['severities']} "
          f"(kind drawn per image from {', '.join(r['kinds'])}). Comparisons: {r['n_genuine']} genuine "
          f"(excluding two copies of one photo), {r['n_impostor']} impostor; cosine similarity of MobileFaceNet "
          f"embeddings. EDC: FNMR at FMR {r['fmr']:g}, discarding up to {r['discard_limit']}; pAUC x1e3 (lower is "
          "better); normalised pAUC: 0 = oracle, 1 = random discarding (fixed convention). "
          f"Throughput on {r['threads']} threads of a shared 2-core CPU, batch {r['batch_size']}.", "",
          *([] if r.get("complete", True) else ["**Partial run**: only the rows below were measured; missing cells show `-`.", ""]),
          "## Summary", "", *head]
    best = {}
    for x in rows:
        if x["teacher"] == "prefiqs":
            m = x["method"]
            if m not in best or x["pauc_x1e3_fixed"] < best[m]["pauc_x1e3_fixed"]:
                best[m] = x
    summary = [x for x in rows if x["key"] == "prefiqs-l1-0.4"] + [best[m] for m in sorted(best)]
    summary += [x for x in rows if x["teacher"] in ("norm", "serfiq", "severity", "random")]
    seen = set()
    for x in summary:
        if x["key"] not in seen:
            md.append(line(x))
            seen.add(x["key"])
    md += ["", "## Findings (computed from the rows below)", "", *findings(rows, rnd)]
    md += ["", f"Random scores: pAUC x1e3 {rnd['pauc_x1e3_fixed']:.2f} ± {rnd['pauc_x1e3_fixed_std']:.2f} (fixed), "
           f"{rnd['pauc_x1e3_reestimate']:.2f} ± {rnd['pauc_x1e3_reestimate_std']:.2f} (reestimate) over seeds.", "",
           "## PreFIQs rho sweep (pAUC x1e3, fixed convention; reestimate in parentheses)", "",
           "| rho | " + " | ".join(sorted({x['method'] for x in rows if x['teacher'] == 'prefiqs'})) + " |",
           "|---" * (1 + len({x['method'] for x in rows if x['teacher'] == 'prefiqs'})) + "|"]
    methods = sorted({x["method"] for x in rows if x["teacher"] == "prefiqs"})
    for rho in sorted({x["rho"] for x in rows if x["teacher"] == "prefiqs"}):
        cells = []
        for m in methods:
            x = next((y for y in rows if y["teacher"] == "prefiqs" and y["method"] == m and y["rho"] == rho), None)
            cells.append(f"{x['pauc_x1e3_fixed']:.2f} ({x['pauc_x1e3_reestimate']:.2f})" if x else "-")
        md.append(f"| {rho:g} | " + " | ".join(cells) + " |")
    md += ["", "## All rows", "", *head, *[line(x) for x in rows], ""]
    return "\n".join(md)


if __name__ == "__main__":
    raise SystemExit(main())
