"""Torch-free face detection: the MTCNN nets as ONNX files run by onnxruntime, and scoring per face.

The three ONNX graphs under ``edgefiq/runtime/assets/mtcnn/`` are exported from facenet-pytorch
2.6.0's weights (MIT licence, see ``LICENSE`` there) by ``tools/export_mtcnn_onnx.py`` and are
sha256-checked before use (``MTCNN_ONNX_SHA256``). The cascade itself is
``edgefiq.data.detect.FaceDetector``. ``score_faces`` gives one quality score per detected face
(or per image, for one face picked by a rule) and a ``no face`` row for an image without one.

Example:
    >>> det = onnx_face_detector(threads=1)                       # doctest: +SKIP
    >>> score_faces("student.onnx", "photos/", "q.csv").csv        # doctest: +SKIP
    PosixPath('q.csv')
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.data.detect import FACE_RULES, DetectOptions, FaceDetector, MtcnnNets
from edgefiq.data.images import SkipLog, check_on_bad_image, load_or_skip
from edgefiq.data.pathtext import write_path_text
from edgefiq.data.readers import list_images, relpaths
from edgefiq.errors import BackendUnavailableError, UsageError
from edgefiq.packaged import verify_sha256
from edgefiq.runtime.gate import SCALE_COLUMN, check_gate, scaled_scores
from edgefiq.runtime.model import load_model
from edgefiq.runtime.score import _gate
from edgefiq.utils import progress

MTCNN_ONNX_DIR = Path(__file__).resolve().parent / "assets" / "mtcnn"
#: sha256 of the shipped graphs (printed by tools/export_mtcnn_onnx.py).
MTCNN_ONNX_SHA256: dict[str, str] = {
    "pnet": "6a852c5ceeb1dee1f492c3a91fffc49f412b50a7e886297bcdc94b411abb654d",
    "rnet": "39656c085cd8e0189a82e86be89eedefbc2b227d6d5087c04d722aebb3352177",
    "onet": "821c08dce823853a1391a08db37a19859f65bc78c588a09cd510cfe0d9f8c26b",
}
_PIP = "pip install onnxruntime"


def onnx_mtcnn_nets(threads: int | None = None, folder: str | Path | None = None, verify: bool = True) -> MtcnnNets:
    """P-, R- and O-Net as onnxruntime sessions wrapped as numpy callables.

    Args:
        threads: intra-op threads per session (None = onnxruntime's default).
        folder: where ``pnet.onnx``, ``rnet.onnx``, ``onet.onnx`` are (default: the shipped assets).
        verify: check each file's sha256 against ``MTCNN_ONNX_SHA256``.

    Raises:
        BackendUnavailableError: onnxruntime is not installed (names the pip command).
        DataError: a file is missing or fails its hash (names the fix).

    Example:
        >>> nets = onnx_mtcnn_nets(threads=1)   # doctest: +SKIP
    """
    try:
        import onnxruntime as ort  # heavy: loaded only when a detector is made
    except ImportError:
        raise BackendUnavailableError(f"face detection needs onnxruntime: `{_PIP}`") from None

    root = Path(folder) if folder is not None else MTCNN_ONNX_DIR
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shared cores: block, do not spin

    def session(name: str) -> Any:
        path = root / f"{name}.onnx"
        if verify:
            verify_sha256(path, MTCNN_ONNX_SHA256[name], fix="reinstall edgefiq (pip install --force-reinstall edgefiq)")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return lambda x: sess.run(None, {"input": np.ascontiguousarray(x, np.float32)})

    return MtcnnNets(session("pnet"), session("rnet"), session("onet"), name="onnxruntime")


def onnx_face_detector(threads: int | None = None, options: DetectOptions | None = None) -> FaceDetector:
    """A ``FaceDetector`` on the shipped ONNX nets (torch-free).

    Example:
        >>> faces = onnx_face_detector(threads=1).detect(img)   # doctest: +SKIP
    """
    return FaceDetector(onnx_mtcnn_nets(threads), options)


FACE_COLUMNS = ("path", "face", "x1", "y1", "x2", "y2", "det_score", "quality", "status")
#: ``score_faces(select=...)``: ``all`` faces of an image, or the one a ``Faces.pick`` rule picks.
FACE_SELECT = ("all", *FACE_RULES)
NO_FACE = "no face"


@dataclass(frozen=True)
class FaceScores:
    """What ``score_faces`` wrote: the CSV, its counts, and the skip file (if any image was unreadable).

    Example:
        >>> FaceScores(Path("q.csv"), 3, 3, 1).summary()
        "3 images, 3 faces, 1 image without a face (rows with status 'no face')"
    """

    csv: Path
    n_images: int
    n_faces: int
    n_no_face: int
    skipped: Path | None = None

    def summary(self) -> str:
        """One console line: images read, faces scored, images without a face."""
        def n(k: int, what: str) -> str:
            return f"{k} {what}{'' if k == 1 else 's'}"

        return (f"{n(self.n_images, 'image')}, {n(self.n_faces, 'face')}, {n(self.n_no_face, 'image')} without a "
                f"face (rows with status {NO_FACE!r})")


def score_faces(model_path: str | Path | None, images: str | Path, out_csv: str | Path, *, batch_size: int = 32,
                threads: int | None = None, on_bad_image: str = "error", mirror_average: bool = False,
                options: DetectOptions | None = None, threshold: float | None = None,
                reject_fraction: float | None = None, reference: str | Path | None = None,
                select: str = "all", population: str = "clean", scale: bool = False) -> FaceScores:
    """Detect the faces under ``images``, align and score them, and write a CSV with a row for every image.

    Columns: ``path`` (relative to ``images``), ``face`` (index in the image, highest detector score
    first), ``x1, y1, x2, y2`` (box in pixels), ``det_score``, ``quality``, ``status`` (``ok``, or
    ``no face`` for an image where no face was found: one row with ``face``, box and ``quality``
    empty), and ``decision`` under a quality gate (as in ``edgefiq.runtime.score.score_folder``; the
    gate counts faces, a no-face row has no decision). ``select="all"`` writes one row per face;
    ``largest``, ``center`` or ``score`` keep the one face ``Faces.pick`` picks (``center`` suits photos
    framed around one person, like LFW, where face 0 can be a partial face at the edge).
    Unreadable images (``on_bad_image="skip"``) go to ``<csv stem>.skipped.txt``. Torch-free for
    exported artifacts: detection runs on onnxruntime. ``out_csv="-"`` writes to stdout.

    Raises:
        UsageError: an unknown ``select`` or contradictory gate options (before anything runs).

    Example:
        >>> res = score_faces("student.onnx", "../shared/data/lfw-dev/raw_sample", "faces.csv",
        ...                   select="center")   # doctest: +SKIP
        >>> res.summary()                          # doctest: +SKIP
        "60 images, 60 faces, 0 images without a face (rows with status 'no face')"
    """
    check_on_bad_image(on_bad_image)
    check_gate(threshold, reject_fraction, reference)
    if select not in FACE_SELECT:
        raise UsageError(f"select must be one of {', '.join(FACE_SELECT)}, got {select!r}")
    root = Path(images)
    paths = [root] if root.is_file() else list_images(root)
    rels = [root.name] if root.is_file() else relpaths(paths, root)
    model = load_model(model_path, threads=threads, mirror_average=mirror_average)
    if scale:
        scaled_scores(model.meta, [])   # a model without a stored distribution is refused before scoring
    detector = onnx_face_detector(threads, options)
    skips = SkipLog(root=root.parent if root.is_file() else root)
    rows: list[list[Any]] = []  # face rows end in "ok" and get a quality; no-face rows end in NO_FACE
    qualities: list[float] = []
    batch: list[np.ndarray] = []
    n_images = 0
    for p, rel in zip(progress(paths, desc="detect+score"), rels):
        img = load_or_skip(p, on_bad_image, skips)
        if img is None:
            continue
        n_images += 1
        faces = detector.detect(img)
        if not len(faces):
            rows.append([rel, "", "", "", "", "", "", NO_FACE])
            continue
        chosen = range(len(faces)) if select == "all" else [faces.pick(select, img.shape[:2])]
        for k in chosen:
            batch.append(model.prepare(img, faces.landmarks[k]))
            rows.append([rel, k, *(f"{v:.2f}" for v in faces.boxes[k]), f"{faces.scores[k]:.5f}", "ok"])
            if len(batch) >= batch_size:
                qualities.extend(model.score_batch(np.stack(batch)).tolist())
                batch.clear()
    if batch:
        qualities.extend(model.score_batch(np.stack(batch)).tolist())
    decision = _gate(model, np.asarray(qualities, np.float32), threshold, reject_fraction, reference, unit="faces",
                     population=population)
    scaled = scaled_scores(model.meta, qualities).tolist() if scale else None
    out = write_path_text(out_csv, _face_rows_text(rows, qualities, decision, scaled))
    n_no_face = sum(r[-1] == NO_FACE for r in rows)
    return FaceScores(out, n_images, len(rows) - n_no_face, n_no_face, skips.write_for(out_csv))


def _face_rows_text(rows: list[list[Any]], qualities: list[float], decision: list[str] | None,
                    scaled: list[int] | None = None) -> str:
    """The per-face CSV: ``quality`` (``quality_0_100``, ``decision``) filled in on face rows, empty on no-face rows."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*FACE_COLUMNS, *([SCALE_COLUMN] if scaled is not None else []),
                *(["decision"] if decision is not None else [])])
    k = 0
    for row in rows:
        if row[-1] == NO_FACE:
            w.writerow([*row[:-1], "", row[-1], *([""] if scaled is not None else []),
                        *([""] if decision is not None else [])])
            continue
        w.writerow([*row[:-1], repr(float(qualities[k])), row[-1], *([scaled[k]] if scaled is not None else []),
                    *([decision[k]] if decision is not None else [])])
        k += 1
    return buf.getvalue()
