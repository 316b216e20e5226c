"""What `edgefiq score --reject-fraction F` rejects on clean photos and on all images (issue 26).

    python tools/clean_rejection.py RUN_DIR --model builtin:edgefiq-capture-edge   # -> results/clean-rejection.md

The validation images of a finished ``edgefiq run`` (its ``label/val.csv``), split into the clean photos
and all images (clean and degraded, the data stage's ``index.csv``), are scored once per model
(``score_paths``); for each fraction and stored distribution (``--distribution clean|all``) the gate of
``edgefiq score --reject-fraction`` (``gate_threshold``, ``decisions``) gives the share of each set it rejects.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgefiq.data.readers import kind_index_of, read_label_map
from edgefiq.pipeline.runner import stage_outputs
from edgefiq.runtime import load_model
from edgefiq.runtime.gate import decisions, gate_threshold
from edgefiq.runtime.score import score_paths

ROOT = Path(__file__).resolve().parents[1]


def validation_sets(run_dir: Path) -> dict[str, list[Path]]:
    """``{"clean": images, "all": images}``: the run's validation images, clean photos and all of them."""
    images = run_dir / stage_outputs(run_dir, "data").images
    kinds = kind_index_of(images) or {}
    rels = list(read_label_map(run_dir / stage_outputs(run_dir, "label").val))
    return {"clean": [images / r for r in rels if kinds.get(r, "clean") == "clean"], "all": [images / r for r in rels]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--model", action="append", required=True, help="model spec (repeatable), e.g. builtin:NAME")
    ap.add_argument("--fractions", default="0.05,0.1,0.2")
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "clean-rejection.md")
    args = ap.parse_args()
    sets = validation_sets(args.run_dir)
    rows = []
    for model in args.model:
        qm = load_model(model, threads=2)
        scores = {name: score_paths(qm, paths, desc=f"{model} {name}")[1] for name, paths in sets.items()}
        for fraction in [float(f) for f in args.fractions.split(",")]:
            for population in ("clean", "all"):
                row = {"model": model, "fraction": fraction, "distribution": population}
                for name, s in scores.items():
                    t, _ = gate_threshold(qm.meta, reject_fraction=fraction, scores=s, population=population)
                    row[f"rejected_{name}"], row[f"n_{name}"] = decisions(s, t).count("reject") / len(s), len(s)
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
