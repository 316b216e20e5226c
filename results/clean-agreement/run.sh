#!/usr/bin/env bash
# How far the teacher agrees with itself on clean photos (issue 26's clean-photo SRCC >= 0.80 must-show).
# Over the clean validation crops of a finished data + label stage of recipes/lfw-capture.yaml, with the
# product's verbs only: the recipe's teacher re-labelled with one free choice changed at a time (SER-FIQ's
# dropout seed, PreFIQs' pruning ratio), its members alone (SER-FIQ also at 100 passes and with another
# seed), the built-in students (`edgefiq score`), then `edgefiq eval --reference teacher` for SRCC with the
# teacher and pAUC on the clean photos.
# Usage: results/clean-agreement/run.sh RUN_DIR WORK [OUT=results/clean-agreement]
#   RUN_DIR  run folder of `edgefiq run recipes/lfw-capture.yaml` with data and label done
#   WORK     scratch folder (the clean crops are linked there, the CSVs written there)
set -euo pipefail
RUN=$1; WORK=$2; OUT=${3:-$(dirname "$0")}
EDGEFIQ=${EDGEFIQ:-edgefiq}
PYTHON=${PYTHON:-python3}   # a Python that imports edgefiq (the transformed copies use its augmentation)
FR=${FR_MODEL:-$(dirname "$0")/../../../shared/data/models/mobilefacenet/mobilefacenet.pt}
IMG=$WORK/images
mkdir -p "$WORK"
# the clean validation crops (index.csv kind == clean, listed in val.txt), linked under WORK/images
python3 - "$RUN" "$IMG" <<'PY'
import csv, os, sys
from pathlib import Path
run, out = Path(sys.argv[1]), Path(sys.argv[2])
root = run / "data" / "images"
kind = {r["path"]: r["kind"] for r in csv.DictReader(open(root / "index.csv"))}
for rel in (l.strip() for l in open(run / "data" / "val.txt")):
    if rel and kind[rel] == "clean" and not (out / rel).exists():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink((root / rel).resolve(), out / rel)
PY
PRE="prefiqs:1,method=l1,scope=global"
label() { local name=$1; shift; [ -f "$WORK/$name.csv" ] || "$EDGEFIQ" label "$IMG" --fr-model "$FR" -q -o "$WORK/$name.csv" "$@"; }
# the run's own labels (rank average over all 47,510 images), restricted to the clean validation crops
[ -f "$WORK/run-labels.csv" ] || "$EDGEFIQ" label "$IMG" --teacher csv --csv "$RUN/label/val.csv" -q -o "$WORK/run-labels.csv"
label teacher --teacher ensemble --ensemble "$PRE,rho=0.4" --ensemble serfiq:1 --ensemble norm:1
label teacher-serfiq-seed1 --teacher ensemble --ensemble "$PRE,rho=0.4" --ensemble serfiq:1,seed=1 --ensemble norm:1
label teacher-prefiqs-rho0.3 --teacher ensemble --ensemble "$PRE,rho=0.3" --ensemble serfiq:1 --ensemble norm:1
label prefiqs --teacher prefiqs --method l1 --scope global --rho 0.4
label serfiq --teacher serfiq
label serfiq-seed1 --teacher serfiq --seed 1
label serfiq-m100 --teacher serfiq --passes 100
label serfiq-m100-seed1 --teacher serfiq --passes 100 --seed 1
label norm --teacher norm
# the teacher on the training augmentations of a student (edgefiq.distill.data.augment_batch): each crop
# mirrored, shifted by up to 4 px, and, as the control for the re-encoding both need, only re-encoded
# (JPEG quality 100); same relative paths, so the scores line up with the originals
"$PYTHON" - "$IMG" "$WORK" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from edgefiq.distill.data import augment_batch
img, work = Path(sys.argv[1]), Path(sys.argv[2])
rng = np.random.default_rng(0)
for src in sorted(img.rglob("*.jpg")):
    rel = src.relative_to(img)
    x = np.asarray(Image.open(src).convert("RGB"))[None]
    views = {"reencoded": x, "mirrored": augment_batch(x, rng, hflip=1.0, shift=0),
             "shifted": augment_batch(x, rng, hflip=0.0, shift=4)}
    for name, v in views.items():
        dst = work / name / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(v[0]).save(dst, quality=100)
PY
for v in reencoded mirrored shifted; do
  [ -f "$WORK/teacher-$v.csv" ] || "$EDGEFIQ" label "$WORK/$v" --fr-model "$FR" -q -o "$WORK/teacher-$v.csv" \
      --teacher ensemble --ensemble "$PRE,rho=0.4" --ensemble serfiq:1 --ensemble norm:1
done
for m in edgefiq-capture-edge edgefiq-lfw-edge edgefiq-lfw; do
  [ -f "$WORK/$m.csv" ] || "$EDGEFIQ" score "$IMG" --model "builtin:$m" -q -o "$WORK/$m.csv"
done
names=(teacher run-labels teacher-serfiq-seed1 teacher-prefiqs-rho0.3 prefiqs serfiq serfiq-seed1 serfiq-m100
       serfiq-m100-seed1 norm teacher-reencoded teacher-mirrored teacher-shifted
       edgefiq-capture-edge edgefiq-lfw-edge edgefiq-lfw)
args=(); for n in "${names[@]}"; do args+=(--quality "$WORK/$n.csv" --name "$n"); done
"$EDGEFIQ" eval --images "$IMG" --identities-from-folders --fr-model "$FR" "${args[@]}" --reference teacher \
  --random-baseline --fmr 1e-3 -o "$OUT"
