"""Leave-one-family-out: how a student does on a degradation family it never saw in training (issue 26).

    python tools/leave_one_family_out.py --run-dir runs/lfw-capture          # -> results/leave-one-family-out.md
    python tools/leave_one_family_out.py --run-dir runs/lfw-capture --families misalignment pose

Over a finished data + label stage of ``edgefiq run recipes/lfw-capture.yaml`` (its images, degradation
index and teacher labels), one student of the recipe is distilled once with every family (``all``) and
once per family F with ``data.leave_out: [F]`` (``edgefiq distill --leave-out F``), all with the same
short schedule (``--set`` overrides, default ``SHORT``). Each student scores the validation images
(``runtime.score_paths``); ``evaluate(..., by_degradation=index)`` gives pAUC per family with
MobileFaceNet. The gap of family F = pAUC on F of the student trained without F / that of ``all``.
Students already trained in the work folder are reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edgefiq.data.degrade import FAMILY
from edgefiq.data.readers import read_label_map, write_labels_csv
from edgefiq.distill import distill
from edgefiq.eval import evaluate
from edgefiq.eval.report import family_markdown
from edgefiq.pipeline.recipe import data_fields_for, distill_config, load_recipe
from edgefiq.pipeline.runner import stage_outputs
from edgefiq.recipe import apply_overrides
from edgefiq.runtime import load_model
from edgefiq.runtime.score import score_paths

ROOT = Path(__file__).resolve().parents[1]
FR = ROOT.parent / "shared" / "data" / "models" / "mobilefacenet" / "mobilefacenet.pt"
SHORT = ("optim.epochs=1", "max_steps_per_epoch=150", "optim.warmup_epochs=0.2")
DECODED = "decoded"   # data.cache_dir under --work: the training images are decoded once for every student


def distill_students(recipe: object, run_dir: Path, student: str, families: list[str], sets: list[str],
                     work: Path) -> dict[str, Path]:
    """``{"all" | family: best.pt}``: one short distillation per left-out family, plus one with every family."""
    data, labels = stage_outputs(run_dir, "data"), stage_outputs(run_dir, "label")
    images = run_dir / data.images
    section = next(s for s in recipe.distill.students if s.label == student)  # type: ignore[attr-defined]
    out = {}
    for fam in ["all", *families]:
        fields = data_fields_for(images=str(images), train_labels=str(run_dir / labels.train),
                                 val_labels=str(run_dir / labels.val), index=str(images / "index.csv"))
        fields["data"]["leave_out"] = [] if fam == "all" else [fam]
        fields["data"]["cache_dir"] = str(work / DECODED)
        cfg = distill_config(recipe.distill, section, seed=recipe.seed, data=fields)  # type: ignore[attr-defined]
        cfg = apply_overrides(cfg, [*SHORT, *sets])
        sdir = work / fam
        if not (sdir / "model.json").is_file():
            distill(cfg, sdir, resume=(sdir / "last.pt").is_file())
        out[fam] = sdir / "best.pt"
    return out


def score_validation(models: dict[str, Path], images: Path, val: Path, work: Path) -> list[tuple[str, Path]]:
    """``(name, quality CSV)`` of every student on the validation images (each CSV written once)."""
    rels = list(read_label_map(val))
    out = []
    for fam, ckpt in models.items():
        csv = work / f"scores-{fam}.csv"
        if not csv.is_file():
            idx, q = score_paths(load_model(ckpt), [images / r for r in rels], desc=f"score {fam}")
            write_labels_csv(csv, [rels[i] for i in idx], q)
        out.append((f"without {fam}" if fam != "all" else "all families", csv))
    return out


def markdown(report: dict, families: list[str], command: str, minutes: float, sets: list[str]) -> str:
    """The results page: the gap per family, then the full per-family table."""
    fam = {r["family"]: r["pauc"] for r in report["by_degradation"]}
    lines = ["# Leave one degradation family out of training (issue 26)", "",
             f"Reproduce: `{command}` ({minutes:.0f} min on 2 cores).", "",
             f"- Students: the recipe's student, short schedule (`{' '.join([*SHORT, *sets])}`), once with every "
             "family and once per family F without F's degraded copies; scored on the validation identities "
             f"({report['n_images']} images; {report['n_genuine']} genuine, {report['n_impostor']} impostor comparisons)",
             f"- pAUC x1e3 at FMR 1e-3, fixed threshold, discard up to {report['limit']}, FR model {report['fr_model']}; "
             "gap = pAUC on F without F / pAUC on F with every family (above 1: F's copies in training helped)", "",
             "| family F | teacher | all families | without F | gap | random |", "|---|---:|---:|---:|---:|---:|"]
    for f in families:
        row = fam.get(f, {})
        get = {k: row.get(k, {}).get("0.001") for k in ("teacher", "all families", f"without {f}", "random")}
        gap = get[f"without {f}"] / get["all families"] if get[f"without {f}"] and get["all families"] else None
        cells = [f"{v:.2f}" if v is not None else "-" for v in get.values()]
        lines.append(f"| {f} | {cells[0]} | {cells[1]} | {cells[2]} | {f'{gap:.3f}' if gap else '-'} | {cells[3]} |")
    return "\n".join([*lines, "", *family_markdown(report["by_degradation"])]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, required=True, help="run folder of recipes/lfw-capture.yaml (data, label done)")
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "lfw-capture.yaml"))
    ap.add_argument("--student", default="face_trunk_64")
    ap.add_argument("--families", nargs="+", default=sorted(set(FAMILY.values())))
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra distill override KEY=VALUE")
    ap.add_argument("--var", dest="variables", action="append", default=[], help="recipe variable NAME=VALUE")
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgefiq-lofo"))
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "leave-one-family-out.md")
    args = ap.parse_args()

    t0 = time.time()
    recipe = load_recipe(args.recipe, dict(v.split("=", 1) for v in args.variables))
    models = distill_students(recipe, args.run_dir, args.student, args.families, args.sets, args.work)
    images = args.run_dir / stage_outputs(args.run_dir, "data").images
    val = args.run_dir / stage_outputs(args.run_dir, "label").val
    index = images / "index.csv"
    report = evaluate(images, qualities=[("teacher", val), *score_validation(models, images, val, args.work)],
                      identities_from_folders=True, fr_model=FR, random_baseline=True, fmrs=(1e-3,),
                      conventions=("fixed",), same_source_index=index, by_degradation=index, max_impostors=500_000,
                      out_dir=args.work / "eval")
    fams = " ".join(args.families)
    command = (f"python tools/leave_one_family_out.py --run-dir RUN" + (f" --families {fams}" if args.families
               != sorted(set(FAMILY.values())) else "") + "".join(f" --set {s}" for s in args.sets))
    args.output.write_text(markdown(report, args.families, command, (time.time() - t0) / 60, args.sets))
    keep = {k: report[k] for k in ("n_images", "n_genuine", "n_impostor", "fr_model", "by_degradation", "pauc")}
    args.output.with_suffix(".json").write_text(json.dumps({"families": args.families, "short": [*SHORT, *args.sets],
                                                            **keep}, indent=1) + "\n")
    print(f"wrote {args.output} and {args.output.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
