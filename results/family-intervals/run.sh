#!/usr/bin/env bash
# Issue 26: how sure is each per-family ratio to the teacher? `edgefiq eval --by degradation --bootstrap 1000`
# on a capture run's validation images (the run's teacher labels and degradation index), with the built-in
# models scored there and any run artifacts' score CSVs given as extra "--quality CSV --name NAME" pairs.
#
#   results/family-intervals/run.sh RUN WORK [--quality CSV --name NAME ...]
#
# RUN: an `edgefiq run recipes/lfw-capture.yaml` folder with data and label done; WORK: scratch (scores, embeddings).
set -eu
RUN=$1 WORK=$2
shift 2
E=${EDGEFIQ:-edgefiq}
FR=${FR_MODEL:-../shared/data/models/mobilefacenet/mobilefacenet.pt}
mkdir -p "$WORK"
for m in edgefiq-capture-edge edgefiq-lfw-edge; do
  [ -f "$WORK/$m.csv" ] || $E score "$RUN/data/images" --model "builtin:$m/tflite-int8" -q -o "$WORK/$m.csv"
done
EMB=(--fr-model "$FR" --save-embeddings "$WORK/emb")
[ -f "$WORK/emb/embeddings.npy" ] && EMB=(--embeddings "$WORK/emb/embeddings.npy" --embeddings-index "$WORK/emb/embeddings_index.csv")
# the run's eval protocol: identity folders, copies of one photo not compared, 500k impostors, seed 0
$E eval --images "$RUN/data/images" --identities-from-folders "${EMB[@]}" \
  --quality "$RUN/label/val.csv" --name teacher \
  --quality "$WORK/edgefiq-capture-edge.csv" --name edgefiq-capture-edge/tflite-int8 \
  --quality "$WORK/edgefiq-lfw-edge.csv" --name edgefiq-lfw-edge/tflite-int8 \
  "$@" --reference teacher --random-baseline --fmr 1e-3 --max-impostors 500000 \
  --same-source-index "$RUN/data/images/index.csv" --by degradation --bootstrap 1000 -o "$WORK/out"
