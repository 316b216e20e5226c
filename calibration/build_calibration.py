#!/usr/bin/env python
"""Build a calibration set for int8 export: a thin wrapper over ``edgefiq data calibration``.

Kept so older instructions keep working; the verb is the supported interface
(``edgefiq data calibration --help``). ``--out`` is accepted as ``--output``.

Example:
    python calibration/build_calibration.py ../shared/data/lfw-dev/aligned112 \\
        --labels runs/label/labels.csv -n 300 -o calib.npz
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run ``edgefiq data calibration`` with ``argv``; returns the exit code."""
    from edgefiq.cli import main as cli_main

    args = ["--output" if a == "--out" else a for a in (sys.argv[1:] if argv is None else argv)]
    try:
        cli_main(["data", "calibration", *args])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
