#!/usr/bin/env bash
# Fresh-clone reproducibility check of `make quickstart` (issue #20): N clones of the committed HEAD,
# each with its own new .venv, run ONE AFTER ANOTHER; durations, load averages and the report diff
# go to $OUT. Usage: results/quickstart/fresh_clone_runs.sh [N=3] [OUT=/tmp/qs-repro]
# Example: nohup nice -n 5 results/quickstart/fresh_clone_runs.sh 3 /tmp/qs-repro &
# (rm -rf ~/.cache/uv first for a first run like a new machine's: the install then unpacks every wheel)
set -u
N=${1:-3}
OUT=${2:-/tmp/qs-repro}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"
load() { python3 -c 'import os; print(" ".join(f"{x:.2f}" for x in os.getloadavg()))'; }
echo "source $SRC @ $(git -C "$SRC" rev-parse --short HEAD), $(nproc) cores" > "$OUT/runs.txt"
for i in $(seq 1 "$N"); do
  d="$OUT/qs$i"
  rm -rf "$d"
  git clone -q "$SRC" "$d"
  cache=$(du -sh "${UV_CACHE_DIR:-$HOME/.cache/uv}" 2>/dev/null | cut -f1)
  t0=$(date +%s); l0=$(load)
  (cd "$d" && make quickstart) > "$OUT/qs$i.log" 2>&1
  rc=$?
  t1=$(date +%s); l1=$(load)
  echo "run $i: commit $(git -C "$d" rev-parse --short HEAD) exit $rc, $((t1 - t0)) s (install + run), loadavg start [$l0] end [$l1], started $(date -u -d @"$t0" +%H:%M:%S) UTC, uv cache before ${cache:-empty}" >> "$OUT/runs.txt"
done
python3 "$SRC/results/quickstart/compare_reports.py" "$OUT"/qs*/runs/quickstart/report.md >> "$OUT/runs.txt" 2>&1
cat "$OUT/runs.txt"
