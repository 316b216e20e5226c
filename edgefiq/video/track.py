"""Face trackers behind one small interface: ``update(boxes, scores) -> track ids``.

``bytetrack`` and ``sort`` are Roboflow's ``trackers`` library (Apache-2.0, numpy + scipy +
supervision); ``iou`` is the baseline they are measured against (results/bestshot.md): the boxes
of the previous frame matched to the current ones by ``scipy.optimize.linear_sum_assignment`` on
IoU, without motion model or memory. A detection the tracker has not confirmed yet gets id -1; confirmed tracks are numbered from 1.

``norfair`` was the third candidate of issue 27: its releases pin ``numpy<2`` (2.3.0) or ``rich<13``
(2.1.1), and edgefiq needs numpy 2 and rich 13+, so it cannot be installed beside edgefiq.

Example:
    >>> t = make_tracker("iou")
    >>> t.update(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32)).tolist()
    [1]
    >>> t.update(np.array([[1, 0, 11, 10]], np.float32), np.array([0.9], np.float32)).tolist()
    [1]
"""

from __future__ import annotations

import warnings
from typing import Callable, Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgefiq.errors import BackendUnavailableError, UsageError
from edgefiq.registry import suggest

_PIP = "pip install 'edgefiq[video]'"


class Tracker(Protocol):
    """Assigns a persistent id to each detection of a frame (-1: not confirmed yet)."""

    name: str

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """``boxes`` (N, 4) x1, y1, x2, y2 and ``scores`` (N,) of one frame -> (N,) int ids."""


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4), as an (N, M) array.

    Example:
        >>> iou_matrix(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]])).round(3).tolist()
        [[0.333]]
    """
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


class IouTracker:
    """The baseline: Hungarian matching on IoU with the previous frame's boxes, no memory."""

    name = "iou"

    def __init__(self, min_iou: float = 0.3) -> None:
        self.min_iou = min_iou
        self.boxes = np.zeros((0, 4), np.float32)
        self.ids = np.zeros(0, np.int64)
        self.next_id = 1

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        ids = np.full(len(boxes), -1, np.int64)
        if len(boxes) and len(self.boxes):
            iou = iou_matrix(self.boxes, boxes)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.min_iou:
                    ids[c] = self.ids[r]
        for k in np.flatnonzero(ids < 0):
            ids[k], self.next_id = self.next_id, self.next_id + 1
        self.boxes, self.ids = np.asarray(boxes, np.float32).reshape(-1, 4), ids
        return ids


class LibraryTracker:
    """SORT or ByteTrack from the ``trackers`` library, fed ``supervision.Detections``."""

    def __init__(self, name: str, fps: float = 25.0, lost_frames: int = 25) -> None:
        try:
            with warnings.catch_warnings():  # supervision warns that it runs without OpenCV: it does not need it here
                warnings.simplefilter("ignore")
                import supervision as sv  # heavy optional dependency (matplotlib); only for these trackers
                import trackers
        except ImportError:
            raise BackendUnavailableError(f"the {name} tracker needs the trackers library: `{_PIP}`") from None
        self.name, self._sv = name, sv
        self._ids: dict[int, int] = {}
        # faces are confirmed after 2 frames; MTCNN's O-Net scores of real faces are > 0.9
        common = dict(lost_track_buffer=lost_frames, frame_rate=fps, minimum_consecutive_frames=2)
        if name == "sort":
            self._impl = trackers.SORTTracker(track_activation_threshold=0.7, minimum_iou_threshold=0.1, **common)
        else:
            self._impl = trackers.ByteTrackTracker(track_activation_threshold=0.8, high_conf_det_threshold=0.85,
                                                   minimum_iou_threshold=0.1, **common)

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        n = len(boxes)
        det = self._sv.Detections(xyxy=np.asarray(boxes, np.float32).reshape(-1, 4),
                                  confidence=np.asarray(scores, np.float32),
                                  class_id=np.zeros(n, int), data={"index": np.arange(n)})
        out = self._impl.update(det)
        ids = np.full(n, -1, np.int64)
        for k, lib_id in zip(np.asarray(out.data.get("index", []), int), np.asarray(out.tracker_id, np.int64)):
            if lib_id >= 0:  # the library numbers tracks across all its instances: number ours from 1
                ids[k] = self._ids.setdefault(int(lib_id), len(self._ids) + 1)
        return ids


TRACKERS: dict[str, Callable[..., Tracker]] = {
    "bytetrack": lambda fps=25.0, lost_frames=25: LibraryTracker("bytetrack", fps, lost_frames),
    "sort": lambda fps=25.0, lost_frames=25: LibraryTracker("sort", fps, lost_frames),
    "iou": lambda fps=25.0, lost_frames=25: IouTracker(),
}


def make_tracker(name: str, fps: float = 25.0, lost_frames: int = 25) -> Tracker:
    """A new tracker by name (``TRACKERS``); ``lost_frames`` = frames a lost face is kept for.

    Example:
        >>> make_tracker("iou").name
        'iou'
    """
    if name not in TRACKERS:
        raise UsageError(f"unknown tracker {name!r}{suggest(name, list(TRACKERS))}")
    return TRACKERS[name](fps=fps, lost_frames=lost_frames)
