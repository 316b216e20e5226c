"""``edgefiq data``: inspect, align, degrade and sample face-image data; build calibration sets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgefiq.cli import echo_table, json_mode, json_option
from edgefiq.data.align import align_folder, align_folder_detected
from edgefiq.data.degrade import DEGRADATIONS, FAMILY, ISO_COMPONENT, KINDS, make_degraded_set
from edgefiq.data.detect import DetectOptions
from edgefiq.data.images import SkipLog
from edgefiq.data.inspect import format_report, inspect_path
from edgefiq.data.synthetic import make_synthetic_sample
from edgefiq.errors import BadImageError, UsageError
from edgefiq.export.calibration import build_calibration_set
from edgefiq.runtime.detect import onnx_face_detector
from edgefiq.utils import atomic_write_text, write_json

ON_BAD_IMAGE = click.option("--on-bad-image", type=click.Choice(["error", "skip"]), default="error", show_default=True,
                            help="Stop at the first unreadable image, or skip it and list it in OUT/skipped.txt.")


def _csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.group()
def data() -> None:
    """Inspect, align, degrade and sample face-image data; build calibration sets.

    Inputs: folders, identity trees, LFW pairs, insightface .bin.

    \b
    Example:
      edgefiq data inspect ../shared/data/lfw-dev/aligned112
      edgefiq data degrade faces/ -o faces-degraded/ --kinds gaussian_blur,jpeg
      edgefiq data calibration faces/ --labels labels.csv -n 300 -o calib.npz
      edgefiq data walkup ../shared/data/lfw-dev/raw_sample ../shared/data/lfw-dev/landmarks.tsv -o walkup.mp4
    """


@data.command("inspect")
@click.argument("path", type=click.Path())
@click.option("--images-root", type=click.Path(file_okay=False), default=None,
              help="For a pairs .txt or label .csv: folder their paths are relative to "
                   "(default: aligned112/ next to pairs.txt; the CSV's folder).")
@click.option("--verify", is_flag=True, help="Decode every image fully (slower; catches truncated files).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False), default=None,
              help="Also write inspect.json, inspect.md (and skipped.txt) into this folder.")
@ON_BAD_IMAGE
def inspect_cmd(path: str, images_root: str | None, verify: bool, as_json: bool, out: str | None,
                on_bad_image: str) -> None:
    """Count images, identities, sizes, modes and unreadable files in PATH.

    PATH may be an image folder, an identity tree (<identity>/<image>), an LFW
    pairs.txt, a label CSV (path,quality) or an insightface .bin. Reads image
    headers only unless --verify is given.

    \b
    Example:
      edgefiq data inspect ../shared/data/lfw-dev/aligned112
      edgefiq data inspect ../shared/data/lfw-dev/pairs.txt --images-root ../shared/data/lfw-dev/aligned112
      edgefiq data inspect ../shared/data/insightface-bin/small_lfw.bin --json
      edgefiq data inspect faces/ --verify --on-bad-image skip -o report/
    """
    skips = SkipLog()
    try:
        rep = inspect_path(path, images_root=images_root, verify=verify, on_bad_image=on_bad_image, skips=skips)
    except BadImageError as e:
        raise BadImageError(e.path, f"{e.reason} (use --on-bad-image skip to list every unreadable file)") from None
    text = format_report(rep)
    click.echo(json.dumps(rep, indent=2, default=str) if as_json else text)
    if out:
        write_json(Path(out) / "inspect.json", rep)
        atomic_write_text(Path(out) / "inspect.md", "# edgefiq data inspect\n\n```\n" + text + "\n```\n")
        skips.write(out)


@data.command("align")
@click.argument("images", type=click.Path(file_okay=False))
@click.argument("landmarks", type=click.Path(dir_okay=False), required=False)
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False), help="Output folder (created).")
@click.option("--size", default="112x112", show_default=True, metavar="HxW",
              help="Output size as HxW (e.g. 112x96) or one number for a square.")
@click.option("--convention", type=click.Choice(["pillow", "opencv"]), default="pillow", show_default=True,
              help="Landmark pixel convention: pillow (pixel i spans [i,i+1)) or opencv (centres at integers).")
@click.option("--all-faces", is_flag=True,
              help="Without LANDMARKS: one crop per detected face, named <stem>__face<k>.<ext> (k by detector score).")
@click.option("--select", "face_rule", type=click.Choice(["largest", "center", "score"]), default="largest",
              show_default=True, help="Without LANDMARKS: which face to crop (center: large and near the middle).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Detector threads (onnxruntime).")
@click.option("--min-face-size", type=click.IntRange(min=12), default=20, show_default=True,
              help="Without LANDMARKS: smallest face side to look for, in pixels (larger is faster on big photos).")
@ON_BAD_IMAGE
def align_cmd(images: str, landmarks: str | None, out: str, size: str, convention: str, all_faces: bool,
              face_rule: str, threads: int | None, min_face_size: int, on_bad_image: str) -> None:
    """Align the faces in IMAGES to the ArcFace 5-point template using LANDMARKS.tsv, or detect them.

    LANDMARKS.tsv lines: relative/path.jpg then 10 numbers (x,y of left eye,
    right eye, nose tip, left and right mouth corner). Outputs mirror the
    relative paths under OUT. Without LANDMARKS, MTCNN (torch-free) finds the
    faces and OUT gets landmarks.tsv and faces.tsv of what it found and
    skipped.txt of images without a face.

    \b
    Example:
      edgefiq data align ../shared/data/lfw-dev/raw_sample ../shared/data/lfw-dev/landmarks.tsv -o aligned/
      edgefiq data align raw/ marks.tsv -o aligned96/ --size 112x96
      edgefiq data align ../shared/data/lfw-dev/raw_sample -o detected/
      edgefiq data align photos/ -o crops/ --all-faces
    """
    try:
        hw = tuple(int(v) for v in size.lower().split("x"))
        shape = (hw[0], hw[0]) if len(hw) == 1 else (hw[0], hw[1])
        if len(hw) > 2 or min(shape) < 8:
            raise ValueError
    except ValueError:
        raise UsageError(f"--size: expected HxW like 112x112 or 112x96, got {size!r}") from None
    if landmarks is None:
        detector = onnx_face_detector(threads, DetectOptions(min_face_size=min_face_size))
        res = align_folder_detected(images, out, detector.detect, size=shape, all_faces=all_faces,
                                    face_rule=face_rule, on_bad_image=on_bad_image, convention=convention)
    elif all_faces:
        raise UsageError("--all-faces needs face detection: drop LANDMARKS")
    else:
        res = align_folder(images, landmarks, out, size=shape, on_bad_image=on_bad_image, convention=convention)
    skipped = f", skipped {len(res.skipped)} (see {Path(out) / 'skipped.txt'})" if res.skipped else ""
    click.echo(f"aligned {res.aligned} images to {shape[0]}x{shape[1]} in {out}{skipped}")


def _echo_kinds() -> None:
    """The table of every degradation kind: group, family, ISO/IEC 29794-5 component."""
    echo_table([{"kind": k, "group": "classic" if k in DEGRADATIONS else "capture", "family": FAMILY[k],
                 "ISO/IEC 29794-5 component": ISO_COMPONENT[k] or "-"} for k in KINDS])


@data.command("degrade")
@click.argument("src", required=False, type=click.Path(file_okay=False))
@click.option("-o", "--output", "out", type=click.Path(file_okay=False), help="Output root (created).")
@click.option("--kinds", default="classic", show_default=True, metavar="K1,K2",
              help="Comma-separated kinds, families or groups: classic (blur, noise, compression, resolution, "
                   "occlusion, exposure), capture (misalignment, pose, lens, occluder, illumination, background), "
                   "all. --list shows every kind.")
@click.option("--list", "list_kinds", is_flag=True, help="List every kind with its family and ISO/IEC 29794-5 "
                                                          "component, then exit.")
@click.option("--severities", default="0.25,0.5,0.75,1.0", show_default=True, metavar="S1,S2",
              help="Comma-separated severities in (0, 1]; each drawn kind is rendered at all of them.")
@click.option("--per-image", default=1, show_default=True, type=click.IntRange(min=0),
              help="Distinct kinds drawn per image (0 = every kind).")
@click.option("--fraction", default=1.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of images that get degraded copies.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (outputs are deterministic).")
@click.option("--no-clean", is_flag=True, help="Do not copy the clean images into OUT.")
@ON_BAD_IMAGE
@json_option
def degrade_cmd(src: str | None, out: str | None, kinds: str, list_kinds: bool, severities: str, per_image: int,
                fraction: float, seed: int, no_clean: bool, on_bad_image: str) -> None:
    """Write degraded copies of the images under SRC into OUT, mirroring its identity tree.

    Files are named <stem>__<kind>_<severity>.jpg; OUT/index.csv lists
    path,source,kind,severity. Re-running resumes (existing files are kept).

    \b
    Example:
      edgefiq data degrade ../shared/data/lfw-dev/aligned112 -o lfw-deg/ --fraction 0.1
      edgefiq data degrade faces/ -o deg/ --kinds gaussian_blur,occlusion --severities 0.5,1 --per-image 2
      edgefiq data degrade faces/ -o deg-capture/ --kinds capture,blur --per-image 2
      edgefiq data degrade --list
    """
    if list_kinds:
        return _echo_kinds()
    if not src or not out:
        raise UsageError("data degrade needs SRC and -o OUT (or --list)")
    try:
        sevs = [float(s) for s in _csv_list(severities) or []]
    except ValueError:
        raise UsageError(f"--severities: expected comma-separated numbers, got {severities!r}") from None
    index = make_degraded_set(src, out, kinds=_csv_list(kinds) or ['classic'], severities=sevs,
                              per_image=per_image, fraction=fraction, seed=seed, include_clean=not no_clean,
                              on_bad_image=on_bad_image)
    n = sum(1 for _ in open(index)) - 1
    if json_mode():
        return click.echo(json.dumps({"index": str(index), "images": n}))
    click.echo(f"wrote {n} images listed in {index}")


@data.command("synthetic")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False), help="Output folder (created).")
@click.option("--identities", default=20, show_default=True, type=click.IntRange(min=1), help="Number of identities.")
@click.option("--per-identity", default=6, show_default=True, type=click.IntRange(min=1), help="Clean images per identity.")
@click.option("--size", default=112, show_default=True, type=click.IntRange(min=16), help="Square image side in pixels.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (outputs are deterministic).")
@click.option("--no-degraded", is_flag=True, help="Only clean images (no degraded copies).")
def synthetic_cmd(out: str, identities: int, per_identity: int, size: int, seed: int, no_degraded: bool) -> None:
    """Write a SYNTHETIC sample: procedural cartoon faces in an identity tree, plus degraded copies.

    For trying the pipeline and for tests without real data; the folder holds a
    SYNTHETIC.txt marker, index.csv (path,source,kind,severity,identity,synthetic)
    and landmarks.tsv. These are not real faces.

    \b
    Example:
      edgefiq data synthetic -o synth/
      edgefiq data synthetic -o synth-big/ --identities 100 --per-identity 10 --seed 1
    """
    root = make_synthetic_sample(out, n_identities=identities, per_identity=per_identity, seed=seed, size=size,
                                 degraded=not no_degraded)
    n = sum(1 for _ in open(root / "index.csv")) - 1
    click.echo(f"wrote {n} SYNTHETIC images of {identities} identities to {root} (see {root / 'SYNTHETIC.txt'})")


@data.command("walkup")
@click.argument("raw", type=click.Path(exists=True, file_okay=False))
@click.argument("landmarks", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="Output MP4.")
@click.option("--people", default=1, show_default=True, type=click.IntRange(1, 3),
              help="People in the video (the first walks up, the others cross).")
@click.option("--photo", "photos", multiple=True, help="Photo (relative to RAW) per person, instead of a random pick.")
@click.option("--frames", default=60, show_default=True, type=click.IntRange(min=2), help="Number of frames.")
@click.option("--size", default="480x640", show_default=True, help="Frame size HxW.")
@click.option("--fps", default=25, show_default=True, type=click.IntRange(min=1), help="Frame rate.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (outputs are deterministic).")
def walkup_cmd(raw: str, landmarks: str, out: str, people: int, photos: tuple[str, ...], frames: int, size: str,
               fps: int, seed: int) -> None:
    """Write a synthetic walk-up MP4 from still photos, for trying `edgefiq bestshot`.

    Real photos (with 5-point landmarks) move towards the camera over a background, with a known
    degradation per frame: motion blur that fades, a stretch with an occluder and one with
    strong exposure. The ground truth goes to OUTPUT_STEM.truth.json.

    \b
    Example:
      edgefiq data walkup ../shared/data/lfw-dev/raw_sample ../shared/data/lfw-dev/landmarks.tsv -o walkup.mp4
      edgefiq data walkup ../shared/data/lfw-dev/raw_sample ../shared/data/lfw-dev/landmarks.tsv \\
          -o two.mp4 --people 2 --frames 80 --seed 3
    """
    # imports scipy (video extra): only for this subcommand
    from edgefiq.video.synth import truth_path, write_walkup_video

    try:
        h, w = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be HxW (e.g. 480x640), got {size!r}") from None
    if photos and len(photos) != people:
        people = len(photos)
    path = write_walkup_video(raw, landmarks, out, people=people, photos=list(photos) or None, frames=frames,
                              size=(h, w), fps=fps, seed=seed)
    click.echo(f"wrote {path} ({frames} frames, {people} {'person' if people == 1 else 'people'}) and {truth_path(path)}")


@data.command("calibration")
@click.argument("images", type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", "out", required=True, type=click.Path(),
              help="An .npz (images resized to --size) or a folder (copies of the picked images + calibration.csv).")
@click.option("-n", "--count", "n", default=300, show_default=True, type=click.IntRange(min=1),
              help="Number of images to pick.")
@click.option("--labels", type=click.Path(dir_okay=False, exists=True), default=None,
              help="path,quality CSV of teacher scores (paths relative to IMAGES) to stratify by.")
@click.option("--teacher", default=None, help="Score the images with this registered teacher instead (needs torch).")
@click.option("--size", default="112x112", show_default=True, metavar="HxW", help="Image size stored in an .npz.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (outputs are deterministic).")
@ON_BAD_IMAGE
def calibration_cmd(images: str, out: str, n: int, labels: str | None, teacher: str | None, size: str, seed: int,
                    on_bad_image: str) -> None:
    """Pick N images from IMAGES that span the quality range, for int8 calibration.

    The images are sorted by teacher score, split into N equal-count bins and one is drawn
    per bin, so dark, blurred and sharp faces are all represented (their activation ranges
    differ most). Without --labels or --teacher the pick is uniformly random. Use the
    result with `edgefiq quantize --calibration`.

    \b
    Example:
      edgefiq data calibration ../shared/data/lfw-dev/aligned112 --labels labels.csv -n 300 -o calib.npz
      edgefiq data calibration faces/ -o calib/ -n 200
      edgefiq quantize best.pt -t onnx --calibration calib.npz --verify heldout/ -o export/
    """
    try:
        h, _, w = size.lower().partition("x")
        shape = (int(h), int(w or h))
    except ValueError:
        raise UsageError(f"--size: expected HxW like 112x112, got {size!r}") from None
    path = build_calibration_set(images, out, n=n, labels_csv=labels, teacher=teacher, size=shape, seed=seed,
                                 on_bad_image=on_bad_image)
    click.echo(f"wrote {path}")
