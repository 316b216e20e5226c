#!/usr/bin/env bash
# Issue 26: the per-family intervals on the capture-defect set of tools/capture_defects.py, from its work folder
# (its labels and score CSVs), with any extra "--quality CSV --name NAME" pairs (scores of WORK/degraded).
#
#   results/family-intervals/capture-defects.sh WORK OUT [--quality CSV --name NAME ...]
set -eu
W=$1 OUT=$2
shift 2
E=${EDGEFIQ:-edgefiq}
FR=${FR_MODEL:-../shared/data/models/mobilefacenet/mobilefacenet.pt}
src=()
for n in prefiqs serfiq norm edgefiq-capture-edge edgefiq-lfw-edge edgefiq-lfw; do
  f=$(ls "$W/$n.csv" "$W/$n"-????????????.csv 2>/dev/null | head -1)   # capture_defects.py's CSV (built-ins: -HASH)
  src+=(--quality "$f" --name "$n")
done
$E eval --images "$W/degraded" --identities-from-folders --fr-model "$FR" \
  --quality "$W/ensemble.csv" --name ensemble "${src[@]}" "$@" \
  --reference ensemble --random-baseline --fmr 1e-3 --same-source-index "$W/degraded/index.csv" \
  --by degradation --bootstrap 1000 -o "$OUT"
