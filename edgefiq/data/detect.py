"""MTCNN face detection in numpy: image pyramid, P/R/O-Net cascade, NMS, box regression, 5 landmarks.

The three networks are plain callables on NCHW float32 batches (``MtcnnNets``), so the same
cascade runs with torch (``edgefiq.models.mtcnn.torch_mtcnn_nets``) and with onnxruntime
(``edgefiq.runtime.detect.onnx_mtcnn_nets``, torch-free). The cascade follows facenet-pytorch
2.6.0 (``detect_face``), whose weights (MIT) edgefiq uses: area-resampled pyramid, P-Net
proposals with NMS per scale (IoU 0.5) and per image (0.7), R-Net refinement, O-Net boxes and
landmarks, a final "Min"-overlap NMS. Landmarks are (x, y) of left eye, right eye, nose tip,
left and right mouth corner, in 0-based pixel coordinates of the input image (facenet-pytorch keeps
the original Matlab code's 1-based ones: its boxes and points are 1 larger).

Torch-free (numpy only).

Example:
    >>> from edgefiq.runtime.detect import onnx_mtcnn_nets         # doctest: +SKIP
    >>> det = FaceDetector(onnx_mtcnn_nets(threads=1))              # doctest: +SKIP
    >>> faces = det.detect(img)                                     # doctest: +SKIP
    >>> faces.boxes.shape, faces.landmarks.shape                    # doctest: +SKIP
    ((1, 4), (1, 5, 2))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from edgefiq.errors import UsageError
from edgefiq.packaged import PackagedFile

#: The facenet-pytorch 2.6.0 wheel (MIT) ships the three MTCNN state dicts; see requirements-weights.txt.
MTCNN_WEIGHTS: dict[str, PackagedFile] = {
    "pnet": PackagedFile("facenet-pytorch", "facenet_pytorch", "data/pnet.pt",
                         "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
    "rnet": PackagedFile("facenet-pytorch", "facenet_pytorch", "data/rnet.pt",
                         "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
    "onet": PackagedFile("facenet-pytorch", "facenet_pytorch", "data/onet.pt",
                         "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
}

Net = Callable[[np.ndarray], Sequence[np.ndarray]]
FACE_RULES = ("largest", "center", "score")


@dataclass(frozen=True)
class MtcnnNets:
    """The three MTCNN networks as callables on NCHW float32 batches (pixels scaled to [-1, 1]).

    Attributes:
        pnet: ``(N, 3, H, W) -> (reg (N, 4, h, w), prob (N, 2, h, w))``, fully convolutional.
        rnet: ``(N, 3, 24, 24) -> (reg (N, 4), prob (N, 2))``.
        onet: ``(N, 3, 48, 48) -> (reg (N, 4), landmarks (N, 10), prob (N, 2))``.
        name: what runs them (``torch``, ``onnxruntime``), for reports.

    Example:
        >>> nets = MtcnnNets(pnet_fn, rnet_fn, onet_fn, name="mine")   # doctest: +SKIP
        >>> FaceDetector(nets).detect(img)                              # doctest: +SKIP
    """

    pnet: Net
    rnet: Net
    onet: Net
    name: str = "custom"


@dataclass(frozen=True)
class DetectOptions:
    """Detector settings (the facenet-pytorch defaults).

    Attributes:
        min_face_size: smallest face side searched for, in pixels (sets the pyramid's first scale).
        thresholds: face-probability thresholds of the P-, R- and O-Net stages.
        factor: scale step of the image pyramid.
        deterministic: run the networks on one image at a time, so an image's faces never depend on
            which other images share the call (runtimes pick kernels by batch size); ``False``
            batches R-/O-Net crops across images (faster for many small images).

    Example:
        >>> DetectOptions(min_face_size=40).thresholds
        (0.6, 0.7, 0.7)
    """

    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.min_face_size < 12:
            raise UsageError(f"min_face_size must be >= 12 pixels (P-Net's window), got {self.min_face_size}")
        if len(self.thresholds) != 3 or not all(0.0 <= t < 1.0 for t in self.thresholds):
            raise UsageError(f"thresholds must be 3 probabilities in [0, 1), got {self.thresholds}")
        if not 0.1 <= self.factor < 1.0:
            raise UsageError(f"pyramid factor must be in [0.1, 1), got {self.factor}")


@dataclass
class Faces:
    """The faces found in one image, highest detector score first.

    Attributes:
        boxes: ``(n, 4)`` float32 x1, y1, x2, y2 in pixels.
        scores: ``(n,)`` float32 O-Net face probabilities.
        landmarks: ``(n, 5, 2)`` float32 (x, y) of left eye, right eye, nose, left and right mouth corner.

    Example:
        >>> len(Faces())
        0
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def largest(self) -> int | None:
        """Index of the face with the largest box area (``None`` when there is none).

        Example:
            >>> Faces().largest() is None
            True
        """
        return self.pick("largest")

    def pick(self, rule: str = "largest", image_size: tuple[int, int] | None = None) -> int | None:
        """Index of the one face ``rule`` picks, or ``None`` when there is no face.

        Rules: ``largest`` box area; ``center``: area minus twice the squared distance of the box
        centre from the image centre (facenet-pytorch's ``center_weighted_size``; for photos
        framed around one person, like LFW); ``score``: highest detector score.

        Example:
            >>> Faces().pick("center", (250, 250)) is None
            True
        """
        if rule not in FACE_RULES:
            raise UsageError(f"face rule must be one of {', '.join(FACE_RULES)}, got {rule!r}")
        if not len(self):
            return None
        b = self.boxes.astype(np.float64)
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        if rule == "score":
            return 0  # faces are sorted by score
        if rule == "center":
            if image_size is None:
                raise UsageError("face rule 'center' needs the image size (height, width)")
            centre = np.array([image_size[1], image_size[0]], np.float64) / 2.0
            area = area - 2.0 * ((((b[:, :2] + b[:, 2:]) / 2.0 - centre) ** 2).sum(axis=1))
        return int(np.argmax(area))


def area_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area (box-filter) resampling of an ``HxWxC`` image to ``size`` = (h, w), as ``float32``.

    Same bins as ``torch.nn.functional.interpolate(mode="area")`` (adaptive average pooling):
    output row ``i`` averages input rows ``floor(i*H/h) .. ceil((i+1)*H/h) - 1``, likewise for
    columns. Computed from an integral image (exact integer sums for uint8 input).

    Example:
        >>> area_resize(np.arange(16, dtype=np.float32).reshape(4, 4, 1), (2, 2))[..., 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """
    x = np.asarray(img)
    return _area_from_integral(integral_image(x), (0, 0, x.shape[0], x.shape[1]), size)


def integral_image(img: np.ndarray) -> np.ndarray:
    """``(H+1, W+1, C)`` cumulative sums with a zero first row and column.

    For uint8 images below 16.8 megapixels the sums are uint32 (they stay below 2**32); a box sum
    ``D - B - C + A`` may wrap around in between but ends exact (modular arithmetic). That halves
    the memory of a phone photo's integral (146 MB instead of 293 MB at 12 MP). Other integer
    images use int64, float images float64.

    Example:
        >>> integral_image(np.ones((2, 2, 1), np.uint8))[..., 0].tolist()
        [[0, 0, 0], [0, 1, 2], [0, 2, 4]]
    """
    x = np.asarray(img)
    small = x.dtype == np.uint8 and 255 * x.shape[0] * x.shape[1] < 2**32
    dtype = np.uint32 if small else np.int64 if x.dtype.kind in "ub" else np.float64
    out = np.zeros((x.shape[0] + 1, x.shape[1] + 1, x.shape[2]), dtype)
    np.cumsum(x, axis=0, out=out[1:, 1:])
    np.cumsum(out[1:, 1:], axis=1, out=out[1:, 1:])
    return out


def _area_from_integral(integral: np.ndarray, region: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Area-resize the ``region`` = (y0, x0, y1, x1) (exclusive ends) of an image to ``size``, from its integral."""
    y0, x0, y1, x1 = region

    def bins(n_in: int, n_out: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(n_out)
        return offset + (i * n_in) // n_out, offset - ((-(i + 1) * n_in) // n_out)

    (r0, r1), (c0, c1) = bins(y1 - y0, size[0], y0), bins(x1 - x0, size[1], x0)
    top, bottom = integral[r0], integral[r1]
    sums = bottom[:, c1] - bottom[:, c0] - top[:, c1] + top[:, c0]
    return (sums / ((r1 - r0)[:, None, None] * (c1 - c0)[None, :, None])).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, highest score first.

    ``union``: IoU with areas ``(x2-x1)*(y2-y1)`` (torchvision's ``nms``); ``min``: intersection over
    the smaller box with the ``+1`` pixel areas of the original MTCNN. Ties keep the lower index
    (stable sort), so the result is reproducible.

    Example:
        >>> b = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
        >>> nms(b, np.array([0.9, 0.8, 0.7]), 0.5).tolist()
        [0, 2]
    """
    if method not in ("union", "min"):
        raise UsageError(f"nms method must be 'union' or 'min', got {method!r}")
    one = 1.0 if method == "min" else 0.0
    x1, y1, x2, y2 = (boxes[:, k].astype(np.float64) for k in range(4))
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = iw * ih
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-12) <= threshold]
    return np.asarray(keep, np.int64)


def _grouped_nms(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float,
                 method: str = "union") -> np.ndarray:
    """``nms`` within each group (image), kept indices of all groups in ascending group order."""
    keep = [np.flatnonzero(groups == g)[nms(boxes[groups == g], scores[groups == g], threshold, method)]
            for g in np.unique(groups)]
    return np.concatenate(keep) if keep else np.zeros(0, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow boxes (x1, y1, x2, y2) to squares around their centres (MTCNN's ``rerec``)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply R-/O-Net box offsets (relative to the ``+1`` pixel width and height)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + reg * np.stack([w, h, w, h], axis=1)


def _normalise(x: np.ndarray) -> np.ndarray:
    return ((x - 127.5) * 0.0078125).astype(np.float32)


def _crops(integrals: Sequence[np.ndarray], boxes: np.ndarray, groups: np.ndarray,
           size: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-resized ``size``-square NCHW crops of the boxes (clipped to the image, as facenet-pytorch).

    Returns the crops and the indices of the boxes that had a non-empty region.
    """
    b = np.trunc(boxes).astype(np.int64)
    out, kept = [], []
    for k, (x1, y1, x2, y2) in enumerate(b):
        integral = integrals[groups[k]]
        h, w = integral.shape[0] - 1, integral.shape[1] - 1
        x1, y1, x2, y2 = max(x1, 1), max(y1, 1), min(x2, w), min(y2, h)
        if x2 > x1 - 1 and y2 > y1 - 1:
            out.append(_area_from_integral(integral, (y1 - 1, x1 - 1, y2, x2), (size, size)))
            kept.append(k)
    crops = np.stack(out).transpose(0, 3, 1, 2) if out else np.zeros((0, 3, size, size), np.float32)
    return _normalise(crops), np.asarray(kept, np.int64)


def _pyramid(h: int, w: int, opts: DetectOptions) -> list[float]:
    m = 12.0 / opts.min_face_size
    minl = min(h, w) * m
    scales: list[float] = []
    scale = m
    while minl >= 12:
        scales.append(scale)
        scale *= opts.factor
        minl *= opts.factor
    return scales


def _proposals(integral: np.ndarray, pnet: Net, opts: DetectOptions) -> np.ndarray:
    """P-Net stage on one image (given its integral image): ``(n, 9)`` rows x1, y1, x2, y2, score, 4 offsets."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    found = []
    for scale in _pyramid(h, w, opts):
        x = _normalise(_area_from_integral(integral, (0, 0, h, w), (int(h * scale + 1), int(w * scale + 1))))
        reg, prob = (np.asarray(a, np.float32) for a in pnet(x.transpose(2, 0, 1)[None])[:2])
        ys, xs = np.nonzero(prob[0, 1] >= opts.thresholds[0])
        if not len(ys):
            continue
        cell = np.stack([xs, ys], axis=1).astype(np.float32)
        q1 = np.floor((2 * cell + 1) / scale)
        q2 = np.floor((2 * cell + 12) / scale)
        rows = np.concatenate([q1, q2, prob[0, 1, ys, xs, None], reg[0][:, ys, xs].T], axis=1)
        found.append(rows[nms(rows[:, :4], rows[:, 4], 0.5)])
    if not found:
        return np.zeros((0, 9), np.float32)
    rows = np.concatenate(found)
    rows = rows[nms(rows[:, :4], rows[:, 4], 0.7)]
    bw, bh = rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]
    refined = rows[:, :4] + rows[:, 5:9] * np.stack([bw, bh, bw, bh], axis=1)
    return np.concatenate([_square(refined), rows[:, 4:]], axis=1)


def _run(net: Net, crops: np.ndarray, groups: np.ndarray, per_image: bool) -> list[np.ndarray]:
    """Run ``net`` on all crops at once or one image's crops at a time; outputs in crop order."""
    if not len(crops):
        return []
    if not per_image:
        return [np.asarray(o, np.float32) for o in net(crops)]
    parts = [[np.asarray(o, np.float32) for o in net(crops[groups == g])] for g in np.unique(groups)]
    return [np.concatenate(col) for col in zip(*parts)]


class FaceDetector:
    """MTCNN over any ``MtcnnNets``: ``detect(img)`` for one image, ``detect_batch(images)`` for many.

    Example:
        >>> det = FaceDetector(nets, DetectOptions(min_face_size=40))   # doctest: +SKIP
        >>> [len(f) for f in det.detect_batch([img1, img2])]            # doctest: +SKIP
        [1, 2]
    """

    def __init__(self, nets: MtcnnNets, options: DetectOptions | None = None) -> None:
        self.nets = nets
        self.options = options or DetectOptions()

    def detect(self, img: np.ndarray) -> Faces:
        """Faces in one ``HxWx3`` uint8 RGB image.

        Example:
            >>> faces = det.detect(np.zeros((250, 250, 3), np.uint8))   # doctest: +SKIP
            >>> len(faces)                                                # doctest: +SKIP
            0
        """
        return self.detect_batch([img])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Faces]:
        """Faces in each of ``images`` (``HxWx3`` uint8 RGB, any sizes), in input order.

        Example:
            >>> [len(f) for f in det.detect_batch([img1, img2])]   # doctest: +SKIP
            [1, 2]
        """
        opts, per_image = self.options, self.options.deterministic
        integrals = [integral_image(_check_image(im)) for im in images]
        props = [_proposals(im, self.nets.pnet, opts) for im in integrals]
        groups = np.concatenate([np.full(len(p), g, np.int64) for g, p in enumerate(props)]) if integrals else \
            np.zeros(0, np.int64)
        boxes = np.concatenate(props)[:, :4] if integrals else np.zeros((0, 4), np.float32)
        # R-Net: refine and re-score the proposals
        crops, ok = _crops(integrals, boxes, groups, 24)
        boxes, groups = boxes[ok], groups[ok]
        outs = _run(self.nets.rnet, crops, groups, per_image)
        if outs:
            reg, prob = outs[0], outs[1][:, 1]
            keep = np.flatnonzero(prob > opts.thresholds[1])
            boxes, groups, reg, prob = boxes[keep], groups[keep], reg[keep], prob[keep]
            pick = _grouped_nms(boxes, prob, groups, 0.7)
            boxes = _square(_regress(boxes[pick], reg[pick]))
            groups = groups[pick]
        # O-Net: final boxes, scores and landmarks
        crops, ok = _crops(integrals, boxes, groups, 48)
        boxes, groups = boxes[ok], groups[ok]
        outs = _run(self.nets.onet, crops, groups, per_image)
        if not outs:
            return [Faces() for _ in integrals]
        reg, marks, prob = outs[0], outs[1], outs[2][:, 1]
        keep = np.flatnonzero(prob > opts.thresholds[2])
        boxes, groups, reg, marks, prob = boxes[keep], groups[keep], reg[keep], marks[keep], prob[keep]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = np.stack([w * marks[:, :5] + boxes[:, :1] - 1, h * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, reg)
        pick = _grouped_nms(boxes, prob, groups, 0.7, "min")
        # the cascade keeps MTCNN's 1-based (Matlab) pixel coordinates; report 0-based ones
        boxes, points = boxes[pick] - 1.0, points[pick] - 1.0
        return [_faces(boxes, prob[pick], points, groups[pick] == g) for g in range(len(integrals))]


def _faces(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, sel: np.ndarray) -> Faces:
    order = np.argsort(-scores[sel], kind="stable")
    return Faces(boxes[sel][order].astype(np.float32), scores[sel][order].astype(np.float32),
                 points[sel][order].astype(np.float32))


def _check_image(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise UsageError(f"face detection needs HxWx3 uint8 RGB images, got shape {a.shape} dtype {a.dtype}")
    return a
