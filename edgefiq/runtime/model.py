"""A quality model ready to score images: artifact (or checkpoint) + its preprocessing.

Torch-free for exported artifacts: this module imports only numpy, pillow (to
decode and resize) and the artifact's one backend runtime (through
``edgefiq.runtime.sidecar.load_runner``). Only an edgefiq ``.pt`` checkpoint pulls in torch,
and only when one is loaded.

Example:
    >>> qm = load_model("export/student_fp32.onnx", threads=1)      # doctest: +SKIP
    >>> qm.score_arrays([img])                                       # doctest: +SKIP
    array([0.73], dtype=float32)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgefiq.data.align import align_face
from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import DataError, UsageError
from edgefiq.registry import CHECKPOINT_RUNNERS
from edgefiq.runtime.builtin_models import is_builtin_spec, resolve_builtin
from edgefiq.runtime.inputs import SizeCheck, check_model_batch, to_model_batch
from edgefiq.runtime.sidecar import load_runner

CHECKPOINT_SUFFIXES = (".pt", ".pth")


@dataclass
class QualityModel:
    """A loaded scorer: ``runner(batch) -> scores`` plus the preprocessing it expects.

    Attributes:
        path: the artifact or checkpoint file.
        backend: backend name (``onnx``, ``openvino``, ``tflite``, ``torch``) or ``checkpoint``.
        precision: ``fp32``/``fp16``/``int8`` (from the sidecar) or ``fp32`` for checkpoints.
        preprocess: pixel convention from the sidecar / checkpoint.
        runner: callable on an NCHW float32 batch (runners convert to their native layout).
        meta: the sidecar as a dict (empty for checkpoints).
        mirror_average: score each image as the mean of its score and its mirror image's score
            (two runner calls per batch). A mirrored face has the same quality, so averaging the
            two cancels part of the model's error at twice the compute.
    """

    path: Path
    backend: str
    precision: str
    preprocess: Preprocess
    runner: Callable[[np.ndarray], np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    mirror_average: bool = False
    _detector: Any = field(default=None, repr=False, compare=False)   # made by detect_and_score on first use

    def __repr__(self) -> str:
        """One short line (the sidecar, with its stored score distribution, stays in ``meta``)."""
        h, w = self.preprocess.size
        mirror = ", mirror_average=True" if self.mirror_average else ""
        return (f"QualityModel({self.path.name!r}, backend={self.backend!r}, precision={self.precision!r}, "
                f"input={h}x{w}{mirror})")

    def prepare(self, img: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
        """HxWx3 uint8 RGB -> one preprocessed CHW float32 array (aligned first if landmarks given)."""
        if landmarks is not None:
            img = align_face(img, landmarks, size=tuple(self.preprocess.size))
        # runners take NCHW float32 and convert to their own layout themselves
        return self.preprocess.nchw().array(img)

    def score(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """Quality scores of images: higher = better face image for recognition.

        Args:
            images: an image path, a PIL image, an ``(H, W, 3)`` uint8 RGB array, an
                ``(N, H, W, 3)`` uint8 batch, an ``(N, 3, h, w)`` float32 batch already
                preprocessed for this model, or a list of paths / PIL images / HWC arrays
                (``edgefiq.runtime.inputs``). Other shapes or dtypes raise ``UsageError``.
                Images should be aligned face crops; other sizes are resized, with a ``UserWarning``
                (the CLI's). A folder is a ``UsageError``: use ``score_folder`` for folders.
            batch_size: images per runtime call.

        Returns:
            One float32 score per image (a 1-element array for a single image).

        Example:
            >>> import edgefiq
            >>> qm = edgefiq.load_model("runs/quickstart/export/onnx-int8/mobilenetv3_small_100_int8.onnx")  # doctest: +SKIP
            >>> qm.score(["face1.jpg", "face2.jpg"])                                   # doctest: +SKIP
            array([2.65, 0.41], dtype=float32)
        """
        sizes = SizeCheck(tuple(self.preprocess.size))
        if isinstance(images, (list, tuple)):
            chunks = [images[s:s + batch_size] for s in range(0, len(images), batch_size)]
        else:
            chunks = [images]
        parts = [to_model_batch(chunk, self.preprocess, sizes) for chunk in chunks]
        message = sizes.message()
        if message:  # the CLI's warning, for Python callers
            warnings.warn(message, UserWarning, stacklevel=2)
        scores = [self.score_batch(b[s:s + batch_size]) for b in parts for s in range(0, len(b), batch_size)]
        return np.concatenate(scores) if scores else np.zeros(0, np.float32)

    def score_batch(self, batch_nchw: np.ndarray) -> np.ndarray:
        """Scores of a preprocessed ``(N, 3, h, w)`` float32 batch as a 1-D float32 array.

        Raises ``UsageError`` for any other shape or dtype (e.g. an NHWC uint8 image batch:
        use :meth:`score` for images).
        """
        check_model_batch(batch_nchw, self.preprocess)
        scores = self._run(batch_nchw)
        if self.mirror_average:
            scores = 0.5 * (scores + self._run(np.asarray(batch_nchw)[..., ::-1]))
        return scores

    def _run(self, batch_nchw: np.ndarray) -> np.ndarray:
        out = np.asarray(self.runner(np.ascontiguousarray(batch_nchw, dtype=np.float32)), dtype=np.float32)
        return out.reshape(len(batch_nchw), -1)[:, 0]

    def score_arrays(self, images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray | None] | None = None,
                     batch_size: int = 32) -> np.ndarray:
        """Score decoded images (HxWx3 uint8 RGB) in batches.

        Example:
            >>> qm.score_arrays([np.zeros((112, 112, 3), np.uint8)])   # doctest: +SKIP
        """
        out: list[np.ndarray] = []
        for s in range(0, len(images), batch_size):
            chunk = images[s:s + batch_size]
            marks = landmarks[s:s + batch_size] if landmarks is not None else [None] * len(chunk)
            out.append(self.score_batch(np.stack([self.prepare(im, lm) for im, lm in zip(chunk, marks)])))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


    def detect_and_score(self, frame: np.ndarray, *, select: str | None = None,
                         detector: Any = None) -> list["ScoredFace"]:
        """Find the faces in an RGB frame (HxWx3 uint8; torch-free MTCNN), align each to the model's crop and
        score it: one :class:`ScoredFace` per face, largest-first order of the detector. ``select``
        (``largest``, ``center``, ``score``) keeps one face; ``detector``: an ``onnx_face_detector`` to use
        instead of the one made (once, 1 thread) for this model.

        Example:
            >>> [f.quality for f in qm.detect_and_score(frame, select="largest")]   # doctest: +SKIP
            [1.27]
        """
        if detector is None:
            if self._detector is None:
                from edgefiq.runtime.detect import onnx_face_detector  # cycle: runtime.detect imports this module

                self._detector = onnx_face_detector(threads=1)
            detector = self._detector
        faces = detector.detect(frame)
        keep = (list(range(len(faces.scores))) if select is None
                else [k for k in [faces.pick(select, frame.shape[:2])] if k is not None])
        quality = self.score_arrays([frame] * len(keep), landmarks=[faces.landmarks[k] for k in keep])
        return [ScoredFace(faces.boxes[k], faces.landmarks[k], float(faces.scores[k]), float(q))
                for k, q in zip(keep, quality)]


@dataclass(frozen=True)
class ScoredFace:
    """One face of :meth:`QualityModel.detect_and_score`: box ``(x1, y1, x2, y2)``, 5 landmarks ``(5, 2)``,
    the detector's confidence and the quality of its aligned crop (higher is better)."""

    box: np.ndarray
    landmarks: np.ndarray
    detection_score: float
    quality: float


def _checkpoint_model(path: Path, threads: int | None) -> QualityModel:
    """An edgefiq ``.pt`` checkpoint scored with torch (through ``CHECKPOINT_RUNNERS``: the models layer)."""
    try:
        import torch  # noqa: F401  (heavy, optional: only a .pt checkpoint needs it; the runtime is torch-free)
    except ImportError:
        raise UsageError(f"{path}: scoring a .pt checkpoint needs torch; export it (`edgefiq export`) "
                         "to score on a torch-free device") from None

    run, preprocess, meta = CHECKPOINT_RUNNERS.get("edgefiq")(path, threads)
    return QualityModel(path=path, backend="checkpoint", precision="fp32", preprocess=preprocess, runner=run,
                        meta=meta)


def load_model(path: str | Path | None = None, threads: int | None = None, *,
               mirror_average: bool = False) -> QualityModel:
    """Load an exported artifact (sidecar required), an edgefiq checkpoint or a built-in model for scoring.

    Args:
        path: ``.onnx`` / ``.xml`` / ``.tflite`` / ``.ts`` artifact with its ``<file>.json``
            sidecar, or an edgefiq ``.pt`` checkpoint; ``None`` or ``"builtin"`` for the default
            built-in model, ``"builtin:NAME"`` or ``"builtin:NAME/onnx-int8"`` for another one
            (``edgefiq.runtime.builtin_models``; ``edgefiq models`` lists them).
        threads: intra-op threads of the runtime (None = runtime default).
        mirror_average: score every image as the mean over it and its mirror image
            (``QualityModel.mirror_average``; twice the compute).

    Raises:
        DataError: file or sidecar missing/unreadable.
        BackendUnavailableError: the artifact's runtime is not installed (names the pip command).

    Example:
        >>> qm = load_model("export/student_int8.onnx", threads=2)   # doctest: +SKIP
        >>> qm = load_model()                                         # doctest: +SKIP  (the built-in model)
    """
    p = resolve_builtin(path) if is_builtin_spec(path) else Path(path)  # type: ignore[arg-type]
    if not p.exists():
        raise DataError(f"{p}: model file not found")
    if p.suffix in CHECKPOINT_SUFFIXES:
        qm = _checkpoint_model(p, threads)
    else:
        runner, meta = load_runner(p, threads)
        qm = QualityModel(path=p, backend=meta.backend, precision=meta.precision, preprocess=meta.preprocess,
                          runner=runner, meta=meta.to_dict())
    qm.mirror_average = mirror_average
    return qm


def landmarks_for(relpaths: Sequence[str], marks: Mapping[str, np.ndarray] | None) -> list[np.ndarray | None] | None:
    """Landmarks aligned with ``relpaths`` (``None`` entries where a file has none)."""
    if marks is None:
        return None
    return [marks.get(r) for r in relpaths]
