"""``edgefiq bestshot``: each person's best face crops from a video, stream, camera or folder of frames (torch-free)."""

from __future__ import annotations

import click

from edgefiq.errors import UsageError
from edgefiq.runtime.gate import check_gate, gate_threshold, sidecar_distribution
from edgefiq.runtime.model import load_model


@click.command("bestshot")
@click.argument("source")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Output folder: tracks.csv/.json, <track>/<rank>.png crops, sheets/<track>.png.")
@click.option("--model", default=None, metavar="SPEC",
              help="Quality model: builtin, builtin:NAME, or an artifact/checkpoint file (default: the built-in).")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Crops kept per track.")
@click.option("--every", type=click.IntRange(min=1), default=5, show_default=True,
              help="Detect on the whole frame every N frames; in between only around tracked faces (faster).")
@click.option("--min-face-size", type=click.IntRange(min=12), default=40, show_default=True,
              help="Smallest face side to look for on whole frames, in pixels (smaller is slower).")
@click.option("--max-faces", type=click.IntRange(min=1), default=None, help="At most this many faces per frame "
              "(the largest).")
@click.option("--min-track", type=click.IntRange(min=1), default=5, show_default=True,
              help="Tracks seen on fewer frames are noise and are dropped.")
@click.option("--threshold", type=float, default=None,
              help="Quality gate: only frames at or above it are kept; a track without one reports 'no usable frame'.")
@click.option("--reject-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Quality gate as the fraction of the model's stored validation scores to reject.")
@click.option("--tracker", type=click.Choice(["bytetrack", "sort", "iou"]), default="bytetrack", show_default=True,
              help="Face tracker (results/bestshot.md compares them).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frame rate (default: the video's; 25 for a folder of frames).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Runtime threads (default: runtime's choice).")
@click.option("--force", is_flag=True, help="Replace an earlier bestshot run in the output folder.")
def bestshot(source: str, out_dir: str, model: str | None, top_k: int, every: int, min_face_size: int,
             max_faces: int | None, min_track: int, threshold: float | None, reject_fraction: float | None,
             tracker: str, fps: float | None, threads: int | None, force: bool) -> None:
    """Pick the best face crops of every person in SOURCE: detect, track, align, score.

    SOURCE is a video file, an rtsp:// or http(s):// stream, a camera index (0 = /dev/video0)
    or a folder of frames. Faces are detected (MTCNN) on every N-th frame and around tracked
    faces in between, tracked (ByteTrack), aligned to 112x112 and scored by the quality model;
    each track keeps its top-k crops. Needs `pip install 'edgefiq[video]'`; no torch.

    \b
    Example:
      edgefiq data walkup ../shared/data/lfw-dev/raw_sample ../shared/data/lfw-dev/landmarks.tsv -o walkup.mp4
      edgefiq bestshot walkup.mp4 -o best/
      edgefiq bestshot walkup.mp4 -o best/ --top-k 1 --every 3 --reject-fraction 0.1 --force
      edgefiq bestshot rtsp://camera.local/stream -o door/ --max-faces 4
    """
    # imports scipy (the video extra's trackers): only when the verb runs
    from edgefiq.video.outputs import run_bestshot

    check_gate(threshold, reject_fraction, None)
    qm = load_model(model, threads=threads)
    if reject_fraction is not None and not sidecar_distribution(qm.meta):
        raise UsageError(f"{qm.path.name} stores no validation score distribution: give --threshold")
    gate = gate_threshold(qm.meta, threshold=threshold, reject_fraction=reject_fraction)
    run = run_bestshot(source, out_dir, fps=fps, force=force, model=qm, top_k=top_k, every=every,
                       min_face_size=min_face_size, max_faces=max_faces, min_track=min_track,
                       threshold=gate[0] if gate else None, tracker=tracker, threads=threads,
                       settings={"gate": gate[1] if gate else None})
    click.echo(run.stage_table())
    click.echo(f"wrote {out_dir}: {run.summary_line()}")
