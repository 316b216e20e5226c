"""Teachers, built-in models and random on capture defects, per degradation family (issue 26).

    python tools/capture_defects.py                     # -> results/capture-defects.{md,json}
    python tools/capture_defects.py --sources 100 --work /tmp/cap-small -o /tmp/cap.md
    python tools/capture_defects.py --model face_trunk_112e=RUN/export/.../model_int8.tflite   # a run's artifact too

Steps, all package functions: the validation identities of recipes/lfw-mobilefacenet.yaml
(pairs folds 6-7); a seeded sample of their clean crops; ``make_degraded_set`` with every
kind (classic and capture), ``--per-image`` kinds per image at severities 0.5 and 1; one
``label_images`` run of the FR-only ensemble teacher (PreFIQs as the recipe sets it, SER-FIQ,
feature norm; its CSV keeps each member's score); the built-in models through
``score_folder``; ``evaluate`` with MobileFaceNet and ``by_degradation``. The work folder is
reused when the script is run again.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from edgefiq.data.degrade import KINDS, make_degraded_set
from edgefiq.data.readers import list_images, read_label_map, relpaths, write_labels_csv
from edgefiq.eval import evaluate
from edgefiq.eval.report import family_markdown
from edgefiq.pipeline.recipe import load_recipe
from edgefiq.pipeline.stages import split_identities
from edgefiq.runtime.builtin_models import builtin_root
from edgefiq.runtime.score import score_folder
from edgefiq.teachers.ensemble import rank01
from edgefiq.teachers.label import label_images
from edgefiq.utils import sha256_file

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FR = SHARED / "models" / "mobilefacenet" / "mobilefacenet.pt"
MEMBERS = ["prefiqs:1,method=l1,rho=0.4,scope=global", "serfiq:1", "norm:1"]   # the recipe's PreFIQs
BUILTIN = ("edgefiq-capture-edge", "edgefiq-lfw-edge", "edgefiq-lfw")   # the default first


def validation_sample(n: int, seed: int, dst: Path) -> Path:
    """Symlinks to ``n`` clean crops of the recipe's validation identities under ``dst``."""
    recipe = load_recipe(ROOT / "recipes" / "lfw-mobilefacenet.yaml")
    images = Path(recipe.data.images)
    _, val = split_identities(relpaths(list_images(images), images), recipe.data.split)
    by_id: dict[str, list[str]] = {}
    for rel in val:
        by_id.setdefault(rel.split("/")[0], []).append(rel)
    pick: list[str] = []   # up to 4 photos of each identity that has 2 or more (genuine pairs need them)
    for ident in np.random.default_rng(seed).permutation(sorted(i for i, r in by_id.items() if len(r) > 1)):
        pick += sorted(by_id[ident])[:4]
        if len(pick) >= n:
            break
    for rel in pick:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if not (dst / rel).exists():
            os.symlink((images / rel).resolve(), dst / rel)
    return dst


def sources(work: Path, deg: Path, extra: dict[str, str]) -> list[tuple[str, Path]]:
    """``(name, path,quality CSV)`` of every quality source, labelling or scoring what is not there yet."""
    ens = work / "ensemble.csv"
    if not ens.exists():
        label_images(deg, "ensemble", {"members": MEMBERS, "fr_model": str(FR)}, ens, batch_size=64)
    out = [("ensemble prefiqs+serfiq+norm", ens)]
    members = {}
    for name in ("prefiqs", "serfiq", "norm"):
        members[name] = read_label_map(ens, column=f"quality_{name}")
        path = work / f"{name}.csv"
        write_labels_csv(path, list(members[name]), list(members[name].values()))
        out.append((name, path))
    rels = list(members["prefiqs"])
    pair = (rank01(np.array([members["prefiqs"][r] for r in rels]))
            + rank01(np.array([members["serfiq"][r] for r in rels]))) / 2
    write_labels_csv(work / "prefiqs+serfiq.csv", rels, pair)
    out.append(("ensemble prefiqs+serfiq", work / "prefiqs+serfiq.csv"))
    for name, model in [*((m, f"builtin:{m}") for m in BUILTIN), *extra.items()]:
        # scores are kept under the content hash of the model file (a built-in model's card): a rebuilt model is scored again
        path = work / f"{name}-{sha256_file(builtin_root() / name / 'card.json' if name in BUILTIN else model)[:12]}.csv"
        if not path.exists():
            score_folder(model, deg, path, threads=2)
        out.append((name, path))
    return out


def markdown(report: dict, command: str, seconds: float) -> str:
    """The results page: per-family table, each source's worst family against the recipe teacher, overall pAUC."""
    fams = report["by_degradation"]
    names = list(fams[0]["pauc"])
    def rel(f: dict, s: str, ref: str) -> float | None:
        a, b = f["pauc"][s].get("0.001"), f["pauc"][ref].get("0.001")
        return a / b if a is not None and b else None

    def worst(s: str, ref: str) -> str:
        r = {f["family"]: rel(f, s, ref) for f in fams if f["family"] != "clean" and rel(f, s, ref) is not None}
        w = max(r, key=lambda f: r[f], default=None)
        return f"{w} {r[w]:.2f}" if w else "-"

    overall = {r["source"]: r["pauc_x1e3"] for r in report["pauc"] if r["convention"] == "fixed"}
    lines = ["# Capture defects: pAUC per degradation family (issue 26)", "",
             f"Reproduce: `{command}` ({seconds / 60:.0f} min on 2 cores).", "",
             f"- images: {report['n_images']} of the validation identities of recipes/lfw-mobilefacenet.yaml "
             "(pairs folds 6-7), clean crops and degraded copies; comparisons: "
             f"{report['n_genuine']} genuine, {report['n_impostor']} impostor ({report['protocol']})",
             f"- FR model: {report['fr_model']}; pAUC x1e3 at FMR 1e-3, fixed threshold, discard up to "
             f"{report['limit']}; lower is better", "",
             *family_markdown(fams),
             "## Worst family against a teacher", "",
             "PreFIQs l1 0.4 global is the teacher of recipes/lfw-mobilefacenet.yaml and lfw-edge.yaml (edgefiq-lfw, "
             "edgefiq-lfw-edge); the ensemble is the teacher of recipes/lfw-capture.yaml (edgefiq-capture-edge). "
             "Each cell: the family, clean aside, where the source's pAUC is highest relative to that teacher's, "
             "and the ratio.", "",
             "| source | overall pAUC | worst vs PreFIQs | worst vs the ensemble |", "|---|---:|---|---|"]
    ens = "ensemble prefiqs+serfiq+norm"
    for s in sorted(names, key=lambda s: overall.get(s, 0)):
        lines.append(f"| {s} | {overall[s]:.2f} | {worst(s, 'prefiqs')} | {worst(s, ens)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=300, help="clean validation crops to degrade")
    ap.add_argument("--per-image", type=int, default=4, help="kinds drawn per crop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgefiq-capture"))
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                    help="also score this model file (a run's artifact), as NAME; repeatable")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "capture-defects.md")
    args = ap.parse_args()
    if any("=" not in m for m in args.model):
        ap.error("--model takes NAME=PATH")
    extra = dict(m.split("=", 1) for m in args.model)
    if len(extra) < len(args.model) or set(extra) & set(BUILTIN):
        ap.error(f"--model names must differ from each other and from the built-in models ({', '.join(BUILTIN)})")
    if missing := [p for p in extra.values() if not Path(p).is_file()]:
        ap.error(f"--model: no such file: {missing[0]}")
    t0 = time.time()
    src = validation_sample(args.sources, args.seed, args.work / "clean")
    deg = args.work / "degraded"
    index = make_degraded_set(src, deg, kinds=KINDS, severities=(0.5, 1.0), per_image=args.per_image, seed=args.seed)
    report = evaluate(deg, qualities=sources(args.work, deg, extra), identities_from_folders=True, fr_model=FR,
                      random_baseline=True, fmrs=(1e-3,), conventions=("fixed",), same_source_index=index,
                      by_degradation=index, seed=args.seed, out_dir=args.work / "eval")
    command = ("python tools/capture_defects.py" + (f" --sources {args.sources}" if args.sources != 300 else "")
               + "".join(f" --model {m}" for m in args.model))
    args.output.write_text(markdown(report, command, time.time() - t0))
    keep = {k: report[k] for k in ("n_images", "n_genuine", "n_impostor", "protocol", "fr_model", "pauc",
                                   "by_degradation", "sources")}
    args.output.with_suffix(".json").write_text(json.dumps(keep, indent=1) + "\n")
    print(f"wrote {args.output} and {args.output.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
