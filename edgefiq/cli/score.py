"""``edgefiq score``: quality scores for an image folder from any artifact or checkpoint (torch-free for artifacts)."""

from __future__ import annotations

import click

from edgefiq.data.detect import DetectOptions
from edgefiq.errors import UsageError
from edgefiq.runtime.detect import score_faces
from edgefiq.runtime.score import score_folder


@click.command("score")
@click.argument("inputs", nargs=-1, required=True, metavar="[MODEL] IMAGES", type=click.Path())
@click.option("--model", "model_opt", default=None, metavar="SPEC",
              help="builtin, builtin:NAME or builtin:NAME/KEY (see `edgefiq models`), or a model file; "
                   "default when no MODEL is given: the built-in model.")
@click.option("--threshold", type=float, default=None,
              help="Quality gate: add a decision column, 'reject' for scores below this value.")
@click.option("--reject-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Quality gate: reject this fraction, the threshold being that quantile of --reference scores, "
                   "else of the model's stored validation scores, else of the scored images.")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="path,quality CSV of this model's scores on representative images, for --reject-fraction.")
@click.option("--distribution", type=click.Choice(["clean", "all"]), default="clean", show_default=True,
              help="Which stored validation distribution --reject-fraction reads: clean photos (reject the worst "
                   "fraction of ordinary photos) or all validation images, clean and degraded.")
@click.option("--scale", type=click.Choice(["0-100"]), default=None,
              help="Add a quality_0_100 column (ISO/IEC 29794-1 convention: integer, higher is better): each "
                   "score's percentile in the model's stored validation distribution. The raw score stays.")
@click.option("-o", "--output", "out_csv", type=click.Path(dir_okay=False, allow_dash=True), required=True,
              help="Output CSV (path,quality; path relative to IMAGES); - writes it to stdout.")
@click.option("--batch-size", "batch_size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per runtime call.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Runtime threads (default: runtime's choice).")
@click.option("--landmarks", type=click.Path(dir_okay=False), default=None,
              help="TSV 'relpath<TAB>x1 y1 ... x5 y5': align each image to the ArcFace template first.")
@click.option("--on-bad-image", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Stop at the first unreadable image, or skip it and list it in OUTPUT_STEM.skipped.txt next to "
                   "the CSV (paths relative to IMAGES).")
@click.option("--detect", is_flag=True,
              help="Detect faces (MTCNN, torch-free) and score each one aligned: one row per face with path, face, "
                   "box, det_score, quality, status; an image without a face gets one row with status 'no face'.")
@click.option("--select", type=click.Choice(["all", "largest", "center", "score"]), default="all", show_default=True,
              help="With --detect: a row for every face, or only the one face per image with the largest box, "
                   "the largest box near the image centre (photos framed around one person, like LFW), or the "
                   "highest detector score.")
@click.option("--min-face-size", type=click.IntRange(min=12), default=20, show_default=True,
              help="With --detect: smallest face side to look for, in pixels (larger is faster on big photos).")
@click.option("--strict", is_flag=True,
              help="Refuse images that are not aligned crops of the model's input size (default: warn with a count).")
@click.option("--mirror-average", is_flag=True,
              help="Score each image as the mean of its and its mirror image's score (two passes: twice the "
                   "compute, usually a closer ranking).")
def score(inputs: tuple[str, ...], model_opt: str | None, threshold: float | None, reject_fraction: float | None,
          reference: str | None, distribution: str, scale: str | None, out_csv: str, batch_size: int,
          threads: int | None, landmarks: str | None, on_bad_image: str, detect: bool, select: str, min_face_size: int, strict: bool,
          mirror_average: bool) -> None:
    """Score every image under IMAGES with MODEL and write a path,quality CSV.

    MODEL is an exported artifact (.onnx, OpenVINO .xml, .tflite, TorchScript) with its
    .json sidecar (preprocessing comes from there), or an edgefiq .pt checkpoint (needs torch).
    Without MODEL the built-in quality model scores (aligned 112x112 face crops; `edgefiq
    models`). Artifacts are scored without torch. --threshold / --reject-fraction add a
    decision column (accept/reject; below the threshold is rejected); --reject-fraction F
    rejects what scores below the worst F of clean validation photos (--distribution all:
    of all validation images).

    \b
    Example:
      edgefiq score ../shared/data/lfw-dev/aligned112 -o q.csv
      edgefiq score faces/ -o q.csv --model builtin --reject-fraction 0.1 --scale 0-100
      edgefiq score faces/ -o q.csv --reject-fraction 0.1 --distribution all
      edgefiq score export/student_int8.onnx ../shared/data/lfw-dev/aligned112 -o scores.csv
      edgefiq score runs/distill/best.pt faces/ -o q.csv --on-bad-image skip
      edgefiq score student.onnx raw/ -o q.csv --landmarks marks.tsv
      edgefiq score student.onnx ../shared/data/lfw-dev/raw_sample -o faces.csv --detect
      edgefiq score ../shared/data/lfw-dev/raw_sample -o one_face.csv --detect --select center
      edgefiq score student_fp32.onnx faces/ -o q.csv --mirror-average
      edgefiq score student_int8.onnx faces/ -o - | sort -t, -k2 -g | head
    """
    if len(inputs) > 2 or (len(inputs) == 2 and model_opt is not None):
        raise UsageError("give IMAGES, or MODEL IMAGES, or --model SPEC IMAGES")
    if len(inputs) == 1 and inputs[0].endswith((".onnx", ".xml", ".tflite", ".ts", ".pt", ".pth")):
        raise UsageError(f"{inputs[0]} looks like a model: give the IMAGES folder after it")
    model, images = (inputs[0], inputs[1]) if len(inputs) == 2 else (model_opt, inputs[0])
    if detect:
        if landmarks:
            raise UsageError("give --detect or --landmarks, not both")
        res = score_faces(model, images, out_csv, batch_size=batch_size, threads=threads, on_bad_image=on_bad_image,
                          mirror_average=mirror_average, threshold=threshold, reject_fraction=reject_fraction,
                          reference=reference, options=DetectOptions(min_face_size=min_face_size), select=select,
                          population=distribution, scale=scale is not None)
        click.echo(f"wrote {res.csv}: {res.summary()}" if out_csv != "-" else res.summary(), err=out_csv == "-")
        return
    if select != "all":
        raise UsageError("--select applies with --detect")
    out = score_folder(model, images, out_csv, batch_size=batch_size, threads=threads, on_bad_image=on_bad_image,
                       landmarks_tsv=landmarks, mirror_average=mirror_average, threshold=threshold,
                       reject_fraction=reject_fraction, reference=reference, strict=strict,
                       population=distribution, scale=scale is not None)
    if out_csv != "-":
        click.echo(f"wrote {out}")
