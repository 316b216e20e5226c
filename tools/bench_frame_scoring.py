"""Latency of scoring camera frames from Python: ``edgefiq.detect_and_score`` split into detect and score.

    .venv/bin/python tools/bench_frame_scoring.py        # -> results/frame_scoring.{md,json}

Frames: the 200 raw LFW photos (250x250) and each pasted at the centre of a grey 640x480 frame
(a camera's size). Per frame size: p50 of the whole call, of the detector alone and of scoring
the detected faces (the built-in model on onnxruntime, 1 thread), with the CPU, the load average
and the other processes' CPU share recorded. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

import edgefiq
from edgefiq.data.images import load_image
from edgefiq.data.readers import list_images
from edgefiq.pipeline.card import build_machine
from edgefiq.runtime.detect import onnx_face_detector
from edgefiq.timing import time_callable

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "data" / "lfw-dev" / "raw_sample"


def _in_vga(img: np.ndarray) -> np.ndarray:
    frame = np.full((480, 640, 3), 128, np.uint8)
    y, x = (480 - img.shape[0]) // 2, (640 - img.shape[1]) // 2
    frame[y:y + img.shape[0], x:x + img.shape[1]] = img
    return frame


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    qm = edgefiq.load_model()
    detector = onnx_face_detector(threads=1)
    photos = [load_image(p) for p in list_images(RAW)]
    rows = []
    load_before = os.getloadavg()
    for label, frames in (("250x250 photo", photos), ("640x480 frame", [_in_vga(p) for p in photos])):
        it = iter(range(10**9))
        pick = lambda: frames[next(it) % len(frames)]  # noqa: E731 - cycle through the frames
        whole = time_callable(lambda: qm.detect_and_score(pick(), select="largest", detector=detector),
                              warmup=5, min_runs=len(frames), min_time_s=2)
        detect = time_callable(lambda: detector.detect(pick()), warmup=5, min_runs=len(frames), min_time_s=2)
        faces = [detector.detect(f) for f in frames]
        found = [(f, fc.landmarks[fc.pick("largest")]) for f, fc in zip(frames, faces) if len(fc.scores)]
        j = iter(range(10**9))

        def align_and_score() -> None:
            frame, marks = found[next(j) % len(found)]
            qm.score_arrays([frame], landmarks=[marks])

        score = time_callable(align_and_score, warmup=5, min_runs=len(found), min_time_s=1)
        rows.append({"frames": label, "n": len(frames), "with_face": len(found),
                     "detect_and_score_p50_ms": round(whole["p50_ms"], 2), "detect_p50_ms": round(detect["p50_ms"], 2),
                     "align_and_score_p50_ms": round(score["p50_ms"], 3),
                     "other_cpu": whole["other_cpu"]})
    env = {"cpu": build_machine()["cpu"], "cores": os.cpu_count(), "threads": 1, "model": repr(qm),
           "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()]}
    out = ROOT / "results" / "frame_scoring"
    out.with_suffix(".json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    lines = ["# Scoring camera frames from Python: `edgefiq.detect_and_score`", "",
             "Reproduce: `.venv/bin/python tools/bench_frame_scoring.py`", "",
             f"CPU: {env['cpu']}, {env['cores']} cores, 1 thread; model: `{env['model']}`; load average before "
             f"{env['load_before']}, after {env['load_after']}.", "",
             "| frames | images | with a face | detect_and_score p50 ms | detect p50 ms | align + score p50 ms | "
             "other processes' CPU |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        other = f"{r['other_cpu']:.0%}" if r["other_cpu"] is not None else "-"
        lines.append(f"| {r['frames']} | {r['n']} | {r['with_face']} | {r['detect_and_score_p50_ms']} | "
                     f"{r['detect_p50_ms']} | {r['align_and_score_p50_ms']} | {other} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
