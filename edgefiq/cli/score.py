"""``edgefiq score``: quality scores for an image folder from any artifact or checkpoint (torch-free for artifacts)."""

from __future__ import annotations

import click


@click.command("score")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("images", type=click.Path())
@click.option("-o", "--out", "out_csv", type=click.Path(dir_okay=False), required=True,
              help="Output CSV (path,quality; path relative to IMAGES).")
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per runtime call.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Runtime threads (default: runtime's choice).")
@click.option("--landmarks", type=click.Path(dir_okay=False), default=None,
              help="TSV 'relpath<TAB>x1 y1 ... x5 y5': align each image to the ArcFace template first.")
@click.option("--on-bad-image", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Stop at the first unreadable image, or skip it and list it in skipped.txt next to the CSV.")
@click.option("--mirror-average", is_flag=True,
              help="Score each image as the mean of its and its mirror image's score (two passes: twice the "
                   "compute, usually a closer ranking).")
def score(model: str, images: str, out_csv: str, batch_size: int, threads: int | None, landmarks: str | None,
          on_bad_image: str, mirror_average: bool) -> None:
    """Score every image under IMAGES with MODEL and write a path,quality CSV.

    MODEL is an exported artifact (.onnx, OpenVINO .xml, .tflite, TorchScript) with its
    .json sidecar (preprocessing comes from there), or an edgefiq .pt checkpoint (needs torch).
    Artifacts are scored without torch.

    \b
    Example:
      edgefiq score export/student_int8.onnx ../shared/data/lfw-dev/aligned112 -o scores.csv
      edgefiq score runs/distill/best.pt faces/ -o q.csv --on-bad-image skip
      edgefiq score student.onnx raw/ -o q.csv --landmarks landmarks.tsv
      edgefiq score student_fp32.onnx faces/ -o q.csv --mirror-average
    """
    from edgefiq.runtime.score import score_folder

    out = score_folder(model, images, out_csv, batch_size=batch_size, threads=threads, on_bad_image=on_bad_image,
                       landmarks_tsv=landmarks, mirror_average=mirror_average)
    click.echo(f"wrote {out}")
