"""Regenerate the MTCNN ONNX files that the torch-free runtime ships (edgefiq/runtime/assets/mtcnn/).

Exports P-, R- and O-Net from the verified facenet-pytorch weights
(``edgefiq.models.mtcnn.export_mtcnn_onnx``), checks each graph against torch with onnxruntime
and prints the sha256s to paste into ``edgefiq.runtime.detect.MTCNN_ONNX_SHA256``.

    python tools/export_mtcnn_onnx.py [--out edgefiq/runtime/assets/mtcnn]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "edgefiq/runtime/assets/mtcnn"))
    args = ap.parse_args()
    from edgefiq.models.mtcnn import export_mtcnn_onnx, mtcnn_onnx_parity
    from edgefiq.utils import sha256_file

    paths = export_mtcnn_onnx(args.out)
    for name, diff in mtcnn_onnx_parity(Path(args.out)).items():
        print(f"{name}: max |onnxruntime - torch| = {diff:.2e}")
    for name, p in paths.items():
        print(f'    "{name}": "{sha256_file(p)}",  # {p.stat().st_size} bytes')


if __name__ == "__main__":
    main()
