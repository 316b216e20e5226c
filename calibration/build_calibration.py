#!/usr/bin/env python
"""Build a calibration set for int8 export from any image folder.

Picks N images (default 300) stratified by teacher score: the images are sorted by score,
split into N equal-count bins, and one image is drawn from each bin, so dark, blurred and
sharp faces are all represented (their activation ranges differ most). Scores come from a
label CSV (``path,quality``, paths relative to the folder), or from a registered teacher
(``--teacher``); without either the pick is uniformly random.

Output: an ``.npz`` (uint8 images resized to --size, their relative paths and scores) or a
folder (the picked images copied unchanged plus ``calibration.csv``).

Example:
    python calibration/build_calibration.py ../shared/data/lfw-dev/aligned112 \\
        --labels runs/label/labels.csv -n 300 -o calibration/lfw300.npz
    edgefiq quantize best.pt -t onnx --calibration calibration/lfw300.npz --verify heldout/ -o export/
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from edgefiq.errors import EdgefiqError
    from edgefiq.export.calibration import build_calibration_set

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("images", help="image folder (searched recursively)")
    ap.add_argument("-o", "--out", required=True, help="output .npz file or folder")
    ap.add_argument("-n", type=int, default=300, help="number of images (default 300)")
    ap.add_argument("--labels", default=None, help="label CSV path,quality with teacher scores")
    ap.add_argument("--teacher", default=None, help="registered teacher name to score the images with")
    ap.add_argument("--size", default="112x112", help="HxW for .npz output (default 112x112)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--on-bad-image", choices=["error", "skip"], default="error")
    a = ap.parse_args(argv)
    try:
        h, _, w = a.size.partition("x")
        size = (int(h), int(w or h))
        out = build_calibration_set(a.images, a.out, n=a.n, labels_csv=a.labels, teacher=a.teacher, size=size,
                                    seed=a.seed, on_bad_image=a.on_bad_image)
    except ValueError:
        print(f"Error: --size must be HxW, got {a.size!r}", file=sys.stderr)
        return 2
    except EdgefiqError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
