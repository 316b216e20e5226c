"""What `edgefiq score --reject-fraction F` rejects on clean photos and on all images (issue 26).

    python tools/clean_rejection.py RUN_DIR --model builtin:edgefiq-capture-edge   # -> results/clean-rejection.md

The validation images of a finished ``edgefiq run`` (its ``label/val.csv``), split into the clean
photos and all images (clean and degraded, the data stage's ``index.csv``), are scored with
``score_folder`` and a ``--reject-fraction`` gate for each model, fraction and stored distribution
(``--distribution clean|all``); the page gives the share of each set the gate rejects.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def link_sets(run_dir: Path, work: Path) -> dict[str, Path]:
    """``{"clean": folder, "all": folder}`` of symlinks to the run's validation images."""
    from edgefiq.data.readers import kind_index_of, read_label_map
    from edgefiq.pipeline.runner import stage_outputs

    images = run_dir / stage_outputs(run_dir, "data")["images"]
    kinds = kind_index_of(images) or {}
    rels = list(read_label_map(run_dir / stage_outputs(run_dir, "label")["val"]))
    sets = {"clean": [r for r in rels if kinds.get(r, "clean") == "clean"], "all": rels}
    out = {}
    for name, members in sets.items():
        for r in members:
            dst = work / name / r
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.symlink_to((images / r).resolve())
        out[name] = work / name
    return out


def rejected(csv_path: Path) -> tuple[int, int]:
    """(rejected, scored) rows of a score CSV with a ``decision`` column."""
    from edgefiq.data.pathtext import PATH_ENCODING, PATH_ERRORS

    with open(csv_path, newline="", encoding=PATH_ENCODING, errors=PATH_ERRORS) as f:   # any file name, as written
        rows = list(csv.DictReader(f))
    return sum(r["decision"] == "reject" for r in rows), len(rows)


def main() -> None:
    from edgefiq.runtime.score import score_folder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--model", action="append", required=True, help="model spec (repeatable), e.g. builtin:NAME")
    ap.add_argument("--fractions", default="0.05,0.1,0.2")
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgefiq-clean-rejection"))
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "clean-rejection.md")
    args = ap.parse_args()
    sets = link_sets(args.run_dir, args.work)
    rows = []
    for model in args.model:
        for fraction in [float(f) for f in args.fractions.split(",")]:
            for population in ("clean", "all"):
                row = {"model": model, "fraction": fraction, "distribution": population}
                for name, folder in sets.items():
                    out = args.work / "scores" / f"{model.replace(':', '_').replace('/', '_')}-{fraction}-{population}-{name}.csv"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    score_folder(model, folder, out, reject_fraction=fraction, population=population, threads=2)
                    bad, n = rejected(out)
                    row[f"rejected_{name}"], row[f"n_{name}"] = bad / n, n
                rows.append(row)
    lines = ["# `--reject-fraction` on clean photos and on all images (issue 26)", "",
             f"Reproduce: `python tools/clean_rejection.py RUN {' '.join('--model ' + m for m in args.model)}"
             f"{'' if args.fractions == '0.05,0.1,0.2' else ' --fractions ' + args.fractions}` over the "
             "full-size run of recipes/lfw-capture.yaml.", "",
             f"Validation identities of the run: {rows[0]['n_clean']} clean photos, {rows[0]['n_all']} images in all "
             "(clean and degraded). The gate's threshold is the F-quantile of the distribution stored in the "
             "model's sidecar (`--distribution`, default `clean`), computed on the validation identities of the run the "
             "model was built from: the same clean photos (one split for every LFW recipe), while its all-images "
             "distribution had that run's degradations.", "",
             "| model | --reject-fraction | --distribution | clean photos rejected | all images rejected |",
             "|---|---:|---|---:|---:|"]
    lines += [f"| {r['model']} | {r['fraction']:g} | {r['distribution']} | {r['rejected_clean']:.3f} | "
              f"{r['rejected_all']:.3f} |" for r in rows]
    args.output.write_text("\n".join(lines) + "\n")
    args.output.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
