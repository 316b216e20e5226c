"""Compare quickstart report.md files: byte-identical, or identical except the timing fields.

Latency (the ``p50 ms`` column and the ``speed-up`` and ``vs parent`` ratios made from it) and the
stage wall-time and slower-than-parent lines are measurements of a busy machine, not results: they are masked before the
second comparison. Everything else (SRCC, pAUC, sizes,
parity, status) must match exactly. Prints one line per file pair and the rows whose status is not ok.

Usage: python results/quickstart/compare_reports.py run1/report.md run2/report.md [...]
Example: python results/quickstart/compare_reports.py /tmp/qs-repro/qs*/runs/quickstart/report.md
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path


TIMING_COLUMNS = ("p50 ms", "speed-up", "vs parent")


def masked(text: str) -> list[str]:
    """The report without its timing fields (``TIMING_COLUMNS``, stage wall times)."""
    out = []
    cols: list[int] = []
    for line in text.splitlines():
        cells = line.split(" | ")
        if line.startswith("| model |"):
            cols = [i for i, c in enumerate(cells) if any(k in c for k in TIMING_COLUMNS)]
        elif not line.startswith("|"):
            cols = []   # the artifact table ended; later tables (per family) have no timing columns
        elif cols and line.startswith("| ") and not line.startswith("|---"):
            for i in cols:
                if i < len(cells):
                    cells[i] = "<timing>"
            line = " | ".join(cells)
        line = re.sub(r"^(Stage wall times \(s\)):.*", r"\1: <masked>", line)
        if line.startswith("- **Pruned artifacts slower than their unpruned parent:**"):
            continue   # present or not depending on the timings
        out.append(line)
    return out


def artifact_table(text: str) -> list[str]:
    """The rows of the report's artifact table (the one with a status column), header and rule left out."""
    rows: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("| model |"):
            inside = True
        elif inside and not line.startswith("|"):
            break
        elif inside and not line.startswith("|---"):
            rows.append(line)
    return rows


def main(paths: list[str]) -> int:
    texts = [Path(p).read_text() for p in paths]
    ok = True
    for p, t in zip(paths[1:], texts[1:]):
        same = t == texts[0]
        diff = list(difflib.unified_diff(masked(texts[0]), masked(t), paths[0], p, lineterm="", n=0))
        print(f"{paths[0]} vs {p}: {'byte-identical' if same else 'identical except timings' if not diff else 'DIFFERENT'}")
        for line in diff:
            print("   ", line)
        ok = ok and not diff
    for p, t in zip(paths, texts):
        bad = [ln for ln in artifact_table(t) if not ln.rstrip().endswith("| ok |")]
        print(f"{p}: {'every row ok' if not bad else f'{len(bad)} row(s) not ok'}")
        for ln in bad:
            print("   ", ln)
        ok = ok and not bad
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
