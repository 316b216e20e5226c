"""Teacher benchmark at scale: EDC pAUC (FMR 1e-3 and 1e-4, both conventions) with bootstrap CIs over identities.

Set: the validation identities of LFW ``pairs.txt`` folds 6-7 (``val_identities.txt``) in the
benchmark subset prepared by ``tools/bench_distill.py --stage prepare`` (every clean dev image
plus one degraded copy, ``subset_index.csv``: ``path,source,kind,severity``): about 5,160 images.
Comparisons: every genuine and impostor pair of MobileFaceNet (``.pt``) embeddings, minus the
genuine pairs of two copies of one photo (same ``source``).

Teachers (``--stage score``, each through ``edgefiq.teachers.label_images``, resumable, one CSV
per row under ``<work>/labels/``): PreFIQs l1 at each ``--rhos`` from the ``.pt`` and from the
``.onnx`` (BatchNorm-folded weights), PreFIQs l1 at scope ``channel`` (``-l1ch-``, each
``--channel-rhos``: rho of every output channel) and at scope ``normalized`` (``-l1n-``: global
ranking of magnitudes relative to their output channel's norm); both prune the same weights in the
``.pt`` and the ``.onnx``; ``norm``, ``serfiq``, ``severity`` (1 - known severity).
``--stage report``: rank-averaged ensembles (``edgefiq.teachers.ensemble.rank01``) of pairs and
triples of the ``--ensemble-pool`` rows, with weights; pAUC x1e3 under ``fixed`` and ``reestimate``
(``edgefiq.metrics.edc``) at both FMRs; percentile bootstrap CIs (``--boot`` resamples of the
identities, shared by all rows, so differences between rows are paired); images/s as measured.

Run (the lead's training job prepares the set under /root/edgefiq-work/bd):
    nice -n 10 .venv/bin/python tools/bench_teachers.py --stage all
Outputs: results/teachers.json, results/teachers.md; labels and caches in runs/bench_teachers/.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("EDGEFIQ_SHARED", ROOT.parent / "shared" / "data"))
MFN = SHARED / "models" / "mobilefacenet"
BD = Path("/root/edgefiq-work/bd")
FMRS = (1e-3, 1e-4)
CONVENTIONS = ("fixed", "reestimate")


def validation_set(index: Path, val_ids: Path) -> list[dict[str, str]]:
    """Rows of ``index`` whose identity (first path component of ``source``) is a validation identity."""
    ids = set(val_ids.read_text().split())
    with open(index, newline="") as f:
        return [r for r in csv.DictReader(f) if r["source"].split("/")[0] in ids]


def teacher_rows(rhos: list[float], serfiq_m: int, index: Path, channel_rhos: tuple[float, ...] = (),
                 students: tuple[str, ...] = ()) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{row key: (teacher, options)}`` of the single teachers (``channel_rhos``: PreFIQs l1 at scopes channel
    and normalized) and of trained students (``NAME=MODEL`` scored by the ``model`` teacher: row ``student NAME``)."""
    rows: dict[str, tuple[str, dict[str, Any]]] = {}
    for spec in students:
        name, _, path = spec.partition("=")
        rows[f"student {name}"] = ("model", {"model": path})
    for src, path in (("pt", MFN / "mobilefacenet.pt"), ("onnx", MFN / "MobileFaceNet.onnx")):
        for rho in rhos:
            rows[f"prefiqs-l1-{rho:g}-{src}"] = ("prefiqs", {"fr_model": str(path), "method": "l1", "rho": rho,
                                                              "scope": "global"})
        for scope, tag in (("channel", "l1ch"), ("normalized", "l1n")):
            for rho in channel_rhos:
                rows[f"prefiqs-{tag}-{rho:g}-{src}"] = ("prefiqs", {"fr_model": str(path), "method": "l1", "rho": rho,
                                                                   "scope": scope})
    rows["norm"] = ("norm", {"fr_model": str(MFN / "mobilefacenet.pt")})
    rows[f"serfiq-m{serfiq_m}"] = ("serfiq", {"fr_model": str(MFN / "mobilefacenet.pt"), "m": serfiq_m})
    rows["severity"] = ("severity", {"index": str(index)})
    return rows


def score_stage(args: argparse.Namespace, rels: list[str], work: Path) -> None:
    """Label the validation images with every single teacher (resumable); speeds go to ``<work>/speed.json``."""
    from edgefiq.teachers import label_images
    from edgefiq.utils import write_json

    speed_file = work / "speed.json"
    for key, (name, opts) in teacher_rows(args.rhos, args.serfiq_m, Path(args.index), args.channel_rhos,
                                          args.students).items():
        out = work / "labels" / f"{key}.csv"
        if out.is_file() or (args.configs and key not in args.configs):
            continue
        engine = {"batch_size": args.batch_size, "cache_dir": work / "cache"}
        if name != "severity":  # one-off graph export / pruning outside the timed run
            label_images(args.subset, name, opts, work / "warm" / f"{key}.csv", relpaths=rels[:8], **engine)
        load0 = os.getloadavg()
        label_images(args.subset, name, opts, out, relpaths=rels, **engine)
        meta = json.loads(out.with_name(out.name + ".json").read_text())
        speed = json.loads(speed_file.read_text()) if speed_file.is_file() else {}  # parallel runs (--configs)
        speed[key] = {"images_per_second": meta.get("images_per_second"), "loadavg_before": load0,
                      "loadavg_after": os.getloadavg(), "n": meta["n_labelled"]}
        write_json(speed_file, speed)
        print(f"{key}: {meta['n_labelled']} images, {meta.get('images_per_second') or 0:.1f} img/s, "
              f"load {load0[0]:.1f}", flush=True)


def load_qualities(work: Path, rels: list[str], root: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``({row: quality aligned with rels}, {row: speed record})`` of every labelled single teacher."""
    from edgefiq.data.readers import read_labels_csv

    speed_file = work / "speed.json"
    speed = json.loads(speed_file.read_text()) if speed_file.is_file() else {}
    pos = {r: k for k, r in enumerate(rels)}
    out: dict[str, np.ndarray] = {}
    for f in sorted((work / "labels").glob("*.csv")):
        key = f.name[:-4]
        paths, q = read_labels_csv(f, root)
        arr = np.full(len(rels), np.nan)
        arr[[pos[p.relative_to(root).as_posix()] for p in paths]] = q
        if np.isfinite(arr).all():
            out[key] = arr
            meta = json.loads(f.with_name(f.name + ".json").read_text())
            speed.setdefault(key, {"images_per_second": meta.get("images_per_second")})
    return out, speed


def val_comparisons(rows: list[dict[str, str]], args: argparse.Namespace, work: Path, impostors: int) -> Any:
    """Genuine + a seeded sample of impostor pairs of the .pt model's embeddings, copies of one photo dropped."""
    from edgefiq.metrics.edc import comparisons_from_identities
    from edgefiq.teachers import make_teacher

    rels = [r["path"] for r in rows]
    t = make_teacher("norm", {"fr_model": str(MFN / "mobilefacenet.pt")}, cache_dir=work / "cache")
    emb, _ = t.cached_full(Path(args.subset), rels)
    if emb is None:  # not cached by the PreFIQs rows: one pass
        t.score_paths(rels, root=args.subset)
        emb, _ = t.cached_full(Path(args.subset), rels)
    c = comparisons_from_identities(emb, [r["source"].split("/")[0] for r in rows], max_impostors=impostors, seed=0)
    src = np.array([r["source"] for r in rows])
    return c.select(src[c.i] != src[c.j])


def paucs(comp: Any, q: np.ndarray, conventions: tuple[str, ...] = CONVENTIONS, step: float | None = None) -> dict[str, float]:
    """pAUC x1e3 (discard 0.3) at each FMR and convention: ``{"fixed@0.001": ...}`` (``step``: EDC grid)."""
    from edgefiq.metrics.edc import edc_curve, pauc_x1e3

    return {f"{conv}@{fmr:g}": pauc_x1e3(edc_curve(comp, q, fmr=fmr, convention=conv, discard_limit=0.3, step=step), 0.3)
            for conv in conventions for fmr in FMRS}


def ensembles(single: dict[str, np.ndarray], pool: list[str]) -> dict[str, np.ndarray]:
    """Weighted rank averages: every pair of ``pool`` at weights 1:1, 2:1, 1:2 and every triple at 1:1:1."""
    from edgefiq.teachers.ensemble import rank01

    ranks = {k: rank01(single[k]) for k in pool}
    out = {}
    for a, b in itertools.combinations(pool, 2):
        for wa, wb in ((1, 1), (2, 1), (1, 2)):
            out[f"ens {a}:{wa} + {b}:{wb}"] = (wa * ranks[a] + wb * ranks[b]) / (wa + wb)
    for trio in itertools.combinations(pool, 3):
        out["ens " + " + ".join(f"{k}:1" for k in trio)] = sum(ranks[k] for k in trio) / 3
    return out


def bootstrap(comp: Any, qs: dict[str, np.ndarray], idents: np.ndarray, n_boot: int,
              conventions: tuple[str, ...]) -> dict[str, dict[str, list[float]]]:
    """pAUC of every row on ``n_boot`` resamples of the identities (the same resamples for every row).

    A replicate draws identities with replacement; each comparison is repeated by the product of
    its two identities' draw counts (genuine: the identity's count), which resamples genuine and
    impostor pairs together.
    """
    from edgefiq.metrics.edc import Comparisons

    _, lab = np.unique(idents, return_inverse=True)
    li, lj = lab[comp.i], lab[comp.j]
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, list[float]]] = {k: {} for k in qs}
    for b in range(n_boot):
        mult = np.bincount(rng.integers(0, lab.max() + 1, lab.max() + 1), minlength=lab.max() + 1)
        rep = np.where(comp.genuine, mult[li], mult[li] * mult[lj])
        keep = np.repeat(np.arange(len(comp)), rep)
        c = Comparisons(i=comp.i[keep], j=comp.j[keep], similarity=comp.similarity[keep], genuine=comp.genuine[keep])
        for k, q in qs.items():
            for m, v in paucs(c, q, conventions, step=0.01).items():
                out[k].setdefault(m, []).append(v)
    return out


def cached_bootstrap(args: argparse.Namespace, comp: Any, qs: dict[str, np.ndarray], idents: np.ndarray,
                     work: Path) -> dict[str, dict[str, list[float]]]:
    """``bootstrap`` of each row, cached per (row scores, settings) under ``<work>/boot/`` (resamples are seeded,
    so rows computed in different runs are still paired)."""
    import hashlib

    from edgefiq.utils import write_json

    sub = rng_impostors(comp, args.boot_impostors)
    tag = f"{args.impostors}-{args.boot_impostors}-{args.boot}-{args.boot_reestimate}-{len(comp)}-grid0.01"
    out = {}
    k_shard, n_shard = (int(x) for x in args.boot_shard.split("/"))
    for n, (k, q) in enumerate(qs.items()):
        if n % n_shard != k_shard:
            continue
        f = work / "boot" / f"{hashlib.sha256(np.asarray(q, np.float64).tobytes() + tag.encode()).hexdigest()[:20]}.json"
        if not f.is_file():
            res = {"point": paucs(comp, q), **bootstrap(sub, {k: q}, idents, args.boot, ("fixed",))[k]}
            res.update(bootstrap(sub, {k: q}, idents, args.boot_reestimate, ("reestimate",))[k])
            write_json(f, res)
            print(f"bootstrap: {k}", flush=True)
        out[k] = json.loads(f.read_text())
    return out


def ci(vals: list[float]) -> list[float]:
    """95% percentile interval."""
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]


def report(args: argparse.Namespace, rows: list[dict[str, str]], work: Path) -> None:
    """Metrics, ensembles, bootstrap CIs -> ``<out>.json`` and ``<out>.md``."""
    from edgefiq.utils import atomic_write_text, write_json

    rels = [r["path"] for r in rows]
    idents = np.array([r["source"].split("/")[0] for r in rows])
    single, speed = load_qualities(work, rels, Path(args.subset))
    comp = val_comparisons(rows, args, work, args.impostors)
    print(f"comparisons: {comp.n_genuine} genuine, {comp.n_impostor} impostor", flush=True)
    boot = cached_bootstrap(args, comp, single, idents, work)  # fills the cache while other rows are scored
    if args.singles_only:
        return
    point = {k: boot[k].pop("point") for k in single}
    rnd = [paucs(comp, np.random.default_rng(100 + s).random(len(rels))) for s in range(3)]
    point["random (mean of 3 seeds)"] = {m: float(np.mean([r[m] for r in rnd])) for m in rnd[0]}
    key = "fixed@0.001"
    prefiqs = [k for k in single if k.startswith("prefiqs")]
    pool = args.ensemble_pool or [*([min(prefiqs, key=lambda k: point[k][key])] if prefiqs else []),
                                  *[k for k in single if k == "norm" or k.startswith("serfiq") or k == "severity"]]
    ens = ensembles(single, pool)
    point.update({k: paucs(comp, q) for k, q in ens.items()})
    top_ens = sorted(ens, key=lambda k: point[k][key])[: args.top_ensembles]
    boot.update({k: v for k, v in cached_bootstrap(args, comp, {k: ens[k] for k in top_ens}, idents, work).items()})
    for k in top_ens:
        boot[k].pop("point")
    qs = {**single, **{k: ens[k] for k in top_ens}}
    best = min(qs, key=lambda k: point[k][key])
    result = {"command": "nice -n 10 .venv/bin/python tools/bench_teachers.py --stage all"
                         + (f" --students {' '.join(args.students)}" if args.students else ""),
              "n_images": len(rels), "n_identities": int(len(set(idents))), "n_genuine": comp.n_genuine,
              "n_impostor": comp.n_impostor, "boot": args.boot, "boot_reestimate": args.boot_reestimate,
              "boot_impostors": args.boot_impostors, "ensemble_pool": pool, "best": best,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version(),
              "rows": {k: {"pauc_x1e3": point[k], "speed": speed.get(k),
                           "ci95": {m: ci(v) for m, v in boot.get(k, {}).items()},
                           "diff_vs_best_ci95": {m: ci(list(np.subtract(v, boot[best][m]))) for m, v in boot.get(k, {}).items()}}
                       for k in point}}
    out = Path(args.out)
    write_json(out.with_suffix(".json"), result)
    atomic_write_text(out.with_suffix(".md"), render_md(result))
    print(f"wrote {out.with_suffix('.md')}; best: {best}", flush=True)


def rng_impostors(comp: Any, n: int) -> Any:
    """All genuine comparisons and a seeded sample of ``n`` impostors (the bootstrap's base set)."""
    imp = np.flatnonzero(~comp.genuine)
    if len(imp) <= n:
        return comp
    keep = np.zeros(len(comp), bool)
    keep[comp.genuine] = True
    keep[np.random.default_rng(1).choice(imp, n, replace=False)] = True
    return comp.select(keep)


def render_md(r: dict[str, Any]) -> str:
    """The report: summary (rows with CIs), then every row's point estimates."""
    metrics = [f"{c}@{f:g}" for c in CONVENTIONS for f in FMRS]
    rows = r["rows"]

    def cell(k: str, m: str) -> str:
        v = rows[k]["pauc_x1e3"][m]
        c = rows[k]["ci95"].get(m)
        return f"{v:.1f} [{c[0]:.1f}, {c[1]:.1f}]" if c else f"{v:.1f}"

    def ips(k: str) -> str:
        s = rows[k].get("speed") or {}
        v = s.get("images_per_second")
        return f"{v:.0f}" if v else "-"

    head = ("| teacher | " + " | ".join(f"pAUC x1e3 {m.replace('@', ' FMR ')}" for m in metrics) + " | images/s |",
            "|---" * (len(metrics) + 2) + "|")
    with_ci = sorted((k for k in rows if rows[k]["ci95"]), key=lambda k: rows[k]["pauc_x1e3"]["fixed@0.001"])
    md = ["# Quality teachers at scale: LFW validation identities (pairs.txt folds 6-7), MobileFaceNet", "",
          f"Reproduce: `{r['command']}` (scores: `--stage score`, resumable; tables: `--stage report`).", "",
          f"Set: {r['n_images']} images of {r['n_identities']} identities (every clean image + one degraded copy). "
          f"Comparisons: {r['n_genuine']} genuine (pairs of two copies of one photo dropped) and a seeded sample of "
          f"{r['n_impostor']} impostor pairs; cosine similarity of mobilefacenet.pt embeddings. EDC pAUC x1e3 up to "
          "30% discarded, lower is better; `fixed` = ISO/IEC 29794-1 (threshold set once, before discarding), `reestimate` = "
          "SER-FIQ/CR-FIQA code style. [95% CI]: percentile bootstrap over identities (EDC on a 0.01 discard grid) "
          f"({r['boot']} resamples for fixed, {r['boot_reestimate']} for reestimate, {r['boot_impostors']} impostors "
          "per replicate), the same resamples for every row. images/s: `label_images` on 2 shared cores while other "
          "jobs ran at load 9-19 (contaminated; standalone per-teacher throughput: results/label_speed.md); PreFIQs rows "
          "after the first of each model, and norm, reuse cached full-model embeddings, so their images/s is not a "
          "teacher's cost.", "",
          "PreFIQs `-pt` prunes the state dict's weights (`edgefiq.prune`), `-onnx` the BatchNorm-folded weights of "
          "MobileFaceNet.onnx (`edgefiq.teachers.onnx_graph`, the same as `--fold-bn` on the .pt); the folded "
          "magnitude ranking removes other weights (mask overlap with the .pt's: Jaccard 0.58 at rho 0.4). "
          "`-l1ch-` (`--scope channel`: rho of every output channel) and `-l1n-` (`--scope normalized`: one "
          "global ranking of each weight's magnitude divided by its output channel's L2 norm) ignore how output "
          "channels are scaled, so folding a BatchNorm changes neither mask: their `-pt` and `-onnx` rows are the "
          "same teacher (identical pAUC). `normalized` is the default scope of l1 PreFIQs on either format (results/prefiqs_formats.md).", "",
          "`student NAME` rows: a distilled student's own scores (`edgefiq.teachers` `model`), on the same "
          "comparisons, so its pAUC compares with every teacher's.", "",
          f"Ensembles: rank averages (`edgefiq.teachers.ensemble.rank01`) of pairs (weights 1:1, 2:1, 1:2) and triples "
          f"(1:1:1) of {', '.join(r['ensemble_pool'])}; the best {len([k for k in with_ci if k.startswith('ens ')])} "
          "(by fixed FMR 1e-3) get CIs. Selecting the best of many ensembles on this set is optimistic.", "",
          "## Rows with confidence intervals (sorted by fixed FMR 1e-3)", "", *head,
          *[f"| {k} | " + " | ".join(cell(k, m) for m in metrics) + f" | {ips(k)} |" for k in with_ci], "",
          f"## Difference to the best row ({r['best']}), paired bootstrap 95% CI (negative = better than it)", "",
          "| teacher | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for k in with_ci:
        d = rows[k]["diff_vs_best_ci95"]
        md.append(f"| {k} | " + " | ".join(f"[{d[m][0]:+.1f}, {d[m][1]:+.1f}]" if m in d else "-" for m in metrics) + " |")
    md += ["", "## Every row (point estimates)", "", *head]
    for k in sorted(rows, key=lambda k: rows[k]["pauc_x1e3"]["fixed@0.001"]):
        md.append(f"| {k} | " + " | ".join(f"{rows[k]['pauc_x1e3'][m]:.1f}" for m in metrics) + f" | {ips(k)} |")
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=["score", "report", "all"], default="all")
    ap.add_argument("--subset", default=str(BD / "data" / "subset"))
    ap.add_argument("--index", default=str(BD / "data" / "subset_index.csv"))
    ap.add_argument("--val-ids", default=str(BD / "val_identities.txt"))
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench_teachers_val"))
    ap.add_argument("--out", default=str(ROOT / "results" / "teachers"), help="output stem (.json/.md)")
    ap.add_argument("--rhos", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4])
    ap.add_argument("--channel-rhos", type=float, nargs="*", default=[0.1, 0.2, 0.4],
                    help="PreFIQs l1 rows at scopes channel and normalized (.pt and .onnx prune alike)")
    ap.add_argument("--students", nargs="*", default=[], metavar="NAME=MODEL",
                    help="trained students (ONNX / checkpoint) scored on the same comparisons, row 'student NAME'")
    ap.add_argument("--serfiq-m", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--impostors", type=int, default=1_000_000, help="impostor pairs (seeded sample) for the metrics")
    ap.add_argument("--boot", type=int, default=40, help="bootstrap resamples of the identities (fixed)")
    ap.add_argument("--boot-reestimate", type=int, default=10, help="bootstrap resamples (reestimate)")
    ap.add_argument("--boot-impostors", type=int, default=300_000,
                    help="impostor pairs (seeded sample of the above) in each bootstrap replicate")
    ap.add_argument("--top-ensembles", type=int, default=4, help="best ensembles that get CIs")
    ap.add_argument("--ensemble-pool", nargs="+", default=None,
                    help="rows combined into ensembles (default: the best PreFIQs row, norm, serfiq, severity)")
    ap.add_argument("--configs", nargs="+", default=None, help="score only these row keys")
    ap.add_argument("--singles-only", action="store_true", help="report stage: only fill the single rows' bootstrap cache")
    ap.add_argument("--boot-shard", default="0/1", help="with --singles-only: fill rows k, k+n, ... (k/n)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = validation_set(Path(args.index), Path(args.val_ids))
    rels = [r["path"] for r in rows]
    print(f"validation set: {len(rels)} images of {len({r['source'].split('/')[0] for r in rows})} identities", flush=True)
    if args.stage in ("score", "all"):
        score_stage(args, rels, work)
    if args.stage in ("report", "all"):
        report(args, rows, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
