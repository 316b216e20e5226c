"""5-point face alignment to the ArcFace template (least-squares similarity, no reflection).

Landmarks are (x, y) pixel coordinates of left eye, right eye, nose tip, left
and right mouth corner. ``similarity_transform`` is Umeyama's closed form;
``align_face`` warps with pillow's bilinear affine (no OpenCV needed), black
outside the source. Two coordinate conventions:

- ``convention="pillow"`` (default): continuous coordinates, pixel ``i`` spans
  ``[i, i+1)``. This reproduces the shared ``lfw-dev/aligned112`` crops from
  ``landmarks.tsv`` exactly (mean abs difference 0.0 after JPEG q95; see
  ``tests/test_data_align.py``).
- ``convention="opencv"``: pixel centres at integer coordinates, matching
  ``cv2.warpAffine(img, M, (w, h))`` with a similarity ``M`` (use it for landmarks
  from OpenCV/insightface-style detectors; differs from ``pillow`` by half a pixel).

Template for ``size=(h, w)``: the 112x112 ArcFace points scaled by ``h / 112`` and
shifted in x by ``(w - h) / 2``; this gives the usual 112x96 convention (x - 8)
and a plain rescale for square sizes.

Torch-free (numpy + pillow).

Example:
    >>> import numpy as np
    >>> img = np.zeros((250, 250, 3), np.uint8)
    >>> pts = np.array([[103, 115], [145, 109], [116, 135], [109, 159], [147, 153]], float)
    >>> align_face(img, pts).shape
    (112, 112, 3)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

from edgefiq.data.images import SkipLog, check_on_bad_image, load_or_skip
from edgefiq.data.readers import list_images
from edgefiq.errors import BadImageError, DataError, EdgefiqError, UsageError
from edgefiq.utils import atomic_path, atomic_write_text, progress

ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def arcface_template(size: tuple[int, int] | int = (112, 112)) -> np.ndarray:
    """The 5 ArcFace template points for an output of ``size`` = (height, width) pixels.

    Example:
        >>> arcface_template((112, 96))[0].round(4).tolist()
        [30.2946, 51.6963]
    """
    h, w = (size, size) if isinstance(size, int) else size
    if h <= 0 or w <= 0:
        raise UsageError(f"alignment size must be positive, got {size}")
    pts = ARCFACE_TEMPLATE_112 * (h / 112.0)
    pts[:, 0] += (w - h) / 2.0
    return pts


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping ``src`` to ``dst``.

    Umeyama (1991). Returns the 2x3 matrix ``M`` with ``dst ~= M[:, :2] @ p + M[:, 2]``.

    Example:
        >>> src = np.array([[0, 0], [1, 0], [0, 1]], float)
        >>> similarity_transform(src, 2 * src + 3).round(6).tolist()
        [[2.0, 0.0, 3.0], [0.0, 2.0, 3.0]]
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / n
    if var_s <= 1e-12:
        raise DataError("degenerate landmarks: all points coincide")
    cov = d_c.T @ s_c / n
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0  # forbid reflections
    r = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def align_face(img: np.ndarray, landmarks5: np.ndarray, size: tuple[int, int] | int = (112, 112),
               convention: str = "pillow") -> np.ndarray:
    """Warp ``img`` so its 5 landmarks land on the ArcFace template for ``size`` = (h, w).

    Args:
        img: ``HxWx3`` uint8 RGB image.
        landmarks5: ``(5, 2)`` (or 10 numbers) x, y pixel coordinates in ``img``.
        size: output (height, width) or one int for a square.
        convention: ``pillow`` (pixel i spans [i, i+1)) or ``opencv`` (pixel centres at integers).

    Returns:
        The aligned ``h x w x 3`` uint8 crop (bilinear, black outside the source).

    Example:
        >>> crop = align_face(img, pts, size=(112, 96))   # doctest: +SKIP
    """
    h, w = (size, size) if isinstance(size, int) else size
    pts = np.asarray(landmarks5, np.float64).reshape(5, 2)
    if not np.isfinite(pts).all():
        raise DataError("landmarks contain NaN or inf")
    m = similarity_transform(pts, arcface_template((h, w)))
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    # pillow samples output pixel centres at (u + 0.5, v + 0.5) and reads input pixel i at i + 0.5;
    # shift so integer landmark coordinates are pixel centres, as in cv2.warpAffine
    a, c = inv[:, :2], inv[:, 2]
    if convention == "opencv":
        # pillow samples output pixel centres at (u + 0.5, v + 0.5) and reads input pixel i at i + 0.5;
        # shift so integer landmark coordinates are pixel centres, as in cv2.warpAffine
        c = c + 0.5 - a.sum(axis=1) * 0.5
    elif convention != "pillow":
        raise UsageError(f"alignment convention must be 'pillow' or 'opencv', got {convention!r}")
    coeffs = (a[0, 0], a[0, 1], c[0], a[1, 0], a[1, 1], c[1])
    out = Image.fromarray(img).transform((w, h), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(out, dtype=np.uint8).copy()


def read_landmarks_tsv(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``relpath<TAB>x1 y1 ... x5 y5`` lines into ``{relpath: (5, 2) array}`` (file order).

    Blank lines and lines starting with ``#`` are ignored. The path is the first tab-separated
    field (or the first token when there is no tab); the numbers may be separated by any whitespace.

    Raises:
        DataError: missing file, no entries, or a malformed line (named by line number).

    Example:
        >>> marks = read_landmarks_tsv("../shared/data/lfw-dev/landmarks.tsv")   # doctest: +SKIP
        >>> marks["AJ_Cook/AJ_Cook_0001.jpg"][0].tolist()                          # doctest: +SKIP
        [103.0, 115.0]
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: landmarks file not found")
    out: dict[str, np.ndarray] = {}
    for no, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # the path is the first tab-separated field (so it may contain spaces), else the first token
        head, _, rest = line.partition("\t") if "\t" in line else line.strip().partition(" ")
        parts = [head.strip(), *rest.split()]
        try:
            if len(parts) != 11:
                raise ValueError
            vals = np.array([float(x) for x in parts[1:]], np.float64)
            if not np.isfinite(vals).all():
                raise ValueError
        except ValueError:
            raise DataError(f"{p} line {no}: expected 'relpath' then 10 finite numbers (x,y of 5 points), "
                            f"got {len(parts)} fields") from None
        out[Path(parts[0]).as_posix()] = vals.reshape(5, 2)
    if not out:
        raise DataError(f"{p}: no landmark lines")
    return out


@dataclass
class AlignResult:
    """What ``align_folder`` did."""

    out_root: Path
    aligned: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def align_folder(images_root: str | Path, landmarks_tsv: str | Path, out_root: str | Path,
                 size: tuple[int, int] | int = (112, 112), on_bad_image: str = "error",
                 quality: int = 95, convention: str = "pillow") -> AlignResult:
    """Align every image under ``images_root`` that has landmarks, writing ``out_root/<relpath>``.

    Images without a landmark line count as bad inputs (error, or skipped and listed in
    ``out_root/skipped.txt``); landmark lines without an image are ignored, so one big
    TSV serves any subset of a dataset. JPEG outputs use ``quality``; ``convention`` as in
    ``align_face``.

    Returns:
        ``AlignResult`` with the count of aligned images and the skipped ones.

    Example:
        >>> align_folder("raw/", "landmarks.tsv", "aligned112/")   # doctest: +SKIP
        AlignResult(out_root=PosixPath('aligned112'), aligned=200, skipped=[])
    """
    check_on_bad_image(on_bad_image)
    root, out = Path(images_root), Path(out_root)
    if out.resolve() == root.resolve():
        raise UsageError("output folder must differ from the images folder")
    marks = read_landmarks_tsv(landmarks_tsv)
    paths = list_images(root)
    skips = SkipLog()
    result = AlignResult(out_root=out)
    with _all_or_nothing() as written:
        for p in progress(paths, desc="align", unit="img"):
            rel = p.relative_to(root).as_posix()
            if rel not in marks:
                skips.handle(BadImageError(p, f"no landmarks for {rel!r} in {Path(landmarks_tsv).name}"), on_bad_image)
                continue
            img = load_or_skip(p, on_bad_image, skips)
            if img is None:
                continue
            written.append(save_crop(align_face(img, marks[rel], size, convention), out / rel, quality))
            result.aligned += 1
    result.skipped = list(skips.entries)
    skips.write(out)
    if result.aligned == 0:
        raise DataError(f"{root}: no image could be aligned ({len(skips)} skipped; see {out / 'skipped.txt'})")
    return result


@contextmanager
def _all_or_nothing() -> Iterator[list[Path]]:
    """Crops listed in the yielded list are removed again when the block stops on an error (a bad
    image under ``on_bad_image="error"``): a failed run leaves no partial output behind."""
    written: list[Path] = []
    try:
        yield written
    except EdgefiqError:
        for f in written:
            f.unlink(missing_ok=True)
        raise


def _record_face(marks: list[str], faces_rows: list[str], rel: str, k: int, crop_rel: str, faces: Any) -> None:
    """The landmarks.tsv and faces.tsv lines of face ``k`` of image ``rel``."""
    marks.append(rel + "\t" + "\t".join(f"{v:.2f}" for v in faces.landmarks[k].reshape(-1)) + "\n")
    box = "\t".join(f"{v:.2f}" for v in faces.boxes[k])
    faces_rows.append(f"{rel}\t{k}\t{crop_rel}\t{box}\t{faces.scores[k]:.5f}\n")


def save_crop(crop: np.ndarray, target: str | Path, quality: int = 95) -> Path:
    """Write an aligned crop atomically in the format of ``target``'s suffix (JPEG at ``quality``).

    Example:
        >>> save_crop(np.zeros((112, 112, 3), np.uint8), "out/a.jpg")   # doctest: +SKIP
    """
    target = Path(target)
    with atomic_path(target) as tmp:
        fmt = "JPEG" if target.suffix.lower() in (".jpg", ".jpeg") else None
        Image.fromarray(crop).save(tmp, format=fmt or Image.registered_extensions()[target.suffix.lower()],
                                   **({"quality": quality} if fmt else {}))
    return target


def face_crop_relpath(relpath: str, face: int) -> str:
    """Where ``--all-faces`` puts face ``face`` of image ``relpath``: ``<stem>__face<k><suffix>``.

    Example:
        >>> face_crop_relpath("A/A_0001.jpg", 1)
        'A/A_0001__face1.jpg'
    """
    p = Path(relpath)
    return p.with_name(f"{p.stem}__face{face}{p.suffix}").as_posix()


def align_folder_detected(images_root: str | Path, out_root: str | Path, detect: Callable[[np.ndarray], Any], *,
                          size: tuple[int, int] | int = (112, 112), all_faces: bool = False, face_rule: str = "largest",
                          on_bad_image: str = "error", quality: int = 95, convention: str = "pillow") -> AlignResult:
    """Detect faces in every image under ``images_root`` and write aligned crops under ``out_root``.

    ``detect(img)`` returns the faces of one image (``edgefiq.data.detect.Faces``, e.g. a
    ``FaceDetector``'s ``detect``). One crop per image (the face ``face_rule`` picks, at the image's
    relative path) or, with ``all_faces``, one per face at ``face_crop_relpath(rel, k)``. Writes
    ``out_root/landmarks.tsv`` (relpath then the 10 coordinates in the source image, one line per crop,
    readable by ``read_landmarks_tsv``), ``out_root/faces.tsv`` (path, face, crop, box, score) and
    ``out_root/skipped.txt`` for images with no face (always skipped, never an error) or unreadable ones.

    Example:
        >>> from edgefiq.runtime.detect import onnx_face_detector                          # doctest: +SKIP
        >>> align_folder_detected("raw/", "aligned/", onnx_face_detector(threads=1).detect)  # doctest: +SKIP
        AlignResult(out_root=PosixPath('aligned'), aligned=200, skipped=[])
    """
    check_on_bad_image(on_bad_image)
    root, out = Path(images_root), Path(out_root)
    if out.resolve() == root.resolve():
        raise UsageError("output folder must differ from the images folder")
    skips, result = SkipLog(), AlignResult(out_root=out)
    marks, faces_rows = ["# relpath<TAB>x,y of left eye, right eye, nose, left and right mouth corner (detected)\n"], \
        ["path\tface\tcrop\tx1\ty1\tx2\ty2\tscore\n"]
    with _all_or_nothing() as written:
        for p in progress(list_images(root), desc="detect+align", unit="img"):
            rel = p.relative_to(root).as_posix()
            img = load_or_skip(p, on_bad_image, skips)
            if img is None:
                continue
            faces = detect(img)
            chosen = range(len(faces)) if all_faces else [k for k in [faces.pick(face_rule, img.shape[:2])]
                                                          if k is not None]
            if not chosen:
                skips.add(p, "no face found")
            for k in chosen:
                crop_rel = face_crop_relpath(rel, k) if all_faces else rel
                written.append(save_crop(align_face(img, faces.landmarks[k], size, convention), out / crop_rel,
                                         quality))
                _record_face(marks, faces_rows, rel, k, crop_rel, faces)
                result.aligned += 1
    atomic_write_text(out / "landmarks.tsv", "".join(marks))
    atomic_write_text(out / "faces.tsv", "".join(faces_rows))
    result.skipped = list(skips.entries)
    skips.write(out)
    return result
