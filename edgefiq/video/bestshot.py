"""Best-shot selection on a stream: detect, track, align and score faces, keep each person's best crops.

``BestShot`` is fed one frame at a time (``update(image, timestamp) -> events``) and returns the
finished tracks at the end (``finish() -> tracks``), so an application can feed camera frames
itself; ``edgefiq bestshot`` (``edgefiq.video.outputs.run_bestshot``) is this loop over a decoded
video plus the output files.

Per frame:

1. **detect**: the whole frame every ``every``-th frame (MTCNN down to ``min_face_size``), and in
   between only a region of interest around each live track (its last box moved by its last
   velocity, twice its size, resized so the face is about 48 px): constant work per face, whatever
   the frame size;
2. **track**: the frame's boxes get track ids (``edgefiq.video.track``: ByteTrack by default);
3. **align**: each tracked face is warped to the 112x112 ArcFace template, ready for recognition;
4. **score**: the frame's crops are scored in one batch by the quality model.

A track keeps its ``top_k`` crops by quality (only those at or above ``threshold``, when one is
given: a track without any reports ``no usable frame``). Tracks seen on fewer than ``min_track``
frames are noise and are dropped. Torch-free: numpy, pillow, onnxruntime (or the artifact's
runtime) and the tracker library.

Example:
    >>> from edgefiq.video import BestShot, open_frames              # doctest: +SKIP
    >>> bs = BestShot(top_k=3)                                       # doctest: +SKIP
    >>> for f in open_frames("door.mp4"):                            # doctest: +SKIP
    ...     for event in bs.update(f.image, f.timestamp):
    ...         print(event)
    >>> [t.best[0].frame for t in bs.finish()]                       # doctest: +SKIP
    [41, 17]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np
from PIL import Image

from edgefiq.data.align import align_face
from edgefiq.data.detect import DetectOptions, FaceDetector, Faces, nms
from edgefiq.errors import UsageError
from edgefiq.runtime.detect import onnx_mtcnn_nets
from edgefiq.runtime.model import QualityModel, load_model
from edgefiq.video.track import make_tracker

CROP_SIZE = 112  # aligned crops for face recognition (ArcFace template)
THUMB_SIZE = 56  # contact-sheet tiles
MAX_THUMBS = 64  # a long track keeps every 2nd, 4th, ... thumbnail beyond this
STAGES = ("detect", "track", "align", "score")
NO_USABLE_FRAME = "no usable frame"
_ROI_FACE = 48  # a region of interest is resized so that the tracked face is about this many pixels


@dataclass(frozen=True)
class Sighting:
    """One face of one frame on a track: where it was and how good it was."""

    frame: int
    timestamp: float
    box: np.ndarray
    landmarks: np.ndarray
    det_score: float
    quality: float


@dataclass(frozen=True)
class Shot:
    """One kept crop of a track: its rank (1 = best), the sighting it came from, the aligned crop."""

    rank: int
    sighting: Sighting
    crop: np.ndarray

    @property
    def frame(self) -> int:
        return self.sighting.frame

    @property
    def quality(self) -> float:
        return self.sighting.quality


@dataclass
class Track:
    """A person's track: every sighting, the best crops so far and thumbnails for a contact sheet.

    Attributes:
        id: the tracker's id.
        sightings: every frame the face was tracked on, in time order.
        best: the kept crops, best first (at most ``top_k``; only those passing the threshold).
        thumbs: ``{frame: small aligned crop}``, thinned to at most ``MAX_THUMBS`` evenly spaced ones.
        status: ``ok``, or ``no usable frame`` when no frame reached the threshold.
    """

    id: int
    sightings: list[Sighting] = field(default_factory=list)
    best: list[Shot] = field(default_factory=list)
    thumbs: dict[int, np.ndarray] = field(default_factory=dict)
    status: str = "ok"
    _thumb_every: int = 1

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

    def add(self, s: Sighting, crop: np.ndarray, top_k: int, threshold: float | None) -> bool:
        """Record a sighting; True if it entered the top ``top_k``."""
        self.sightings.append(s)
        if len(self.sightings) % self._thumb_every == 0 or len(self.sightings) == 1:
            self.thumbs[s.frame] = np.asarray(Image.fromarray(crop).resize((THUMB_SIZE, THUMB_SIZE),
                                                                           Image.Resampling.BILINEAR))
        if len(self.thumbs) > MAX_THUMBS:  # keep every other one, and sample half as often from now on
            self.thumbs = dict(list(self.thumbs.items())[::2])
            self._thumb_every *= 2
        if threshold is not None and s.quality < threshold:
            return False
        shots = sorted([*(b.sighting for b in self.best), s], key=lambda x: (-x.quality, x.frame))[:top_k]
        if not any(x is s for x in shots):
            return False
        crops = {b.sighting.frame: b.crop for b in self.best} | {s.frame: crop}
        self.best = [Shot(r + 1, x, crops[x.frame]) for r, x in enumerate(shots)]
        return True


@dataclass(frozen=True)
class Event:
    """Something an application may act on: ``new_track``, ``best_improved`` or ``track_ended``."""

    kind: str
    track: int
    frame: int
    quality: float | None = None


class BestShot:
    """Best-shot selection over a stream of frames (module docstring for the loop).

    Args:
        model: a ``QualityModel``, a model path or builtin spec (``None`` = the built-in model).
        top_k: crops kept per track.
        every: full-frame detection every ``every`` frames (1 = every frame); tracked regions between.
        min_face_size: smallest face side searched for on full frames, in pixels.
        max_faces: keep at most this many faces per frame (the largest); ``None`` = all.
        min_track: tracks seen on fewer frames are dropped as noise.
        threshold: quality gate; a track without a frame at or above it is ``no usable frame``.
        tracker: ``bytetrack``, ``sort`` or ``iou`` (``edgefiq.video.track.TRACKERS``).
        fps: frame rate (the tracker's motion model; how long a lost face is kept).
        lost_frames: frames a lost face is kept before its track ends (default: one second).
        threads: runtime threads for the detector and the quality model.

    Example:
        >>> bs = BestShot(top_k=1, every=5)                    # doctest: +SKIP
        >>> events = bs.update(frame_rgb, timestamp=0.04)      # doctest: +SKIP
    """

    def __init__(self, model: QualityModel | str | None = None, *, top_k: int = 3, every: int = 5,
                 min_face_size: int = 40, max_faces: int | None = None, min_track: int = 5,
                 threshold: float | None = None, tracker: str = "bytetrack", fps: float = 25.0,
                 lost_frames: int | None = None, threads: int | None = None) -> None:
        if top_k < 1 or every < 1 or min_track < 1 or (max_faces is not None and max_faces < 1):
            raise UsageError("top_k, every, min_track and max_faces must be at least 1")
        self.model = model if isinstance(model, QualityModel) else load_model(model, threads=threads)
        nets = onnx_mtcnn_nets(threads)
        self.detector = FaceDetector(nets, DetectOptions(min_face_size=min_face_size))
        self.roi_detector = FaceDetector(nets, DetectOptions(min_face_size=_ROI_FACE // 2))
        self.top_k, self.every, self.max_faces, self.min_track = top_k, every, max_faces, min_track
        self.threshold = threshold
        self.lost_frames = int(round(fps)) if lost_frames is None else lost_frames
        self.tracker = make_tracker(tracker, fps=fps, lost_frames=self.lost_frames)
        self.live: dict[int, Track] = {}
        self._pending: list[np.ndarray] = []  # last frame's boxes the tracker has not confirmed
        self.ended: list[Track] = []
        self.frames = 0
        self.detections = 0
        self.dropped = 0
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def update(self, image: np.ndarray, timestamp: float | None = None) -> list[Event]:
        """Process the next frame (``HxWx3`` uint8 RGB); returns what happened on it.

        Example:
            >>> [e.kind for e in bs.update(frame)]   # doctest: +SKIP
            ['new_track', 'best_improved']
        """
        index = self.frames
        self.frames += 1
        t = index / 25.0 if timestamp is None else float(timestamp)
        clock = perf_counter()
        faces = self._detect(image, index)
        self.detections += len(faces)
        clock = self._tick("detect", clock)
        ids = self.tracker.update(faces.boxes, faces.scores) if len(faces) else \
            self.tracker.update(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
        clock = self._tick("track", clock)
        keep = [k for k in range(len(faces)) if ids[k] >= 0]
        self._pending = [faces.boxes[k] for k in range(len(faces)) if ids[k] < 0]  # not confirmed yet: look again
        crops = [align_face(image, faces.landmarks[k], CROP_SIZE) for k in keep]
        clock = self._tick("align", clock)
        quality = self.model.score_batch(np.stack([self.model.prepare(c) for c in crops])) if crops else []
        self._tick("score", clock)
        events: list[Event] = []
        for k, crop, q in zip(keep, crops, quality):
            tid = int(ids[k])
            s = Sighting(index, t, faces.boxes[k].copy(), faces.landmarks[k].copy(), float(faces.scores[k]), float(q))
            if tid not in self.live:
                self.live[tid] = Track(tid)
                events.append(Event("new_track", tid, index, s.quality))
            if self.live[tid].add(s, crop, self.top_k, self.threshold):
                events.append(Event("best_improved", tid, index, s.quality))
        for tid in [i for i, tr in self.live.items() if index - tr.last.frame > self.lost_frames]:
            events.extend(self._end(tid, index))
        return events

    def finish(self) -> list[Track]:
        """End every live track and return all kept tracks (``min_track`` frames or more), by id.

        Example:
            >>> [(t.id, len(t.sightings), t.status) for t in bs.finish()]   # doctest: +SKIP
            [(1, 57, 'ok')]
        """
        for tid in list(self.live):
            self._end(tid, self.frames)
        return sorted(self.ended, key=lambda tr: tr.id)

    def _end(self, tid: int, index: int) -> list[Event]:
        tr = self.live.pop(tid)
        if len(tr.sightings) < self.min_track:
            self.dropped += 1
            return []
        if not tr.best:
            tr.status = NO_USABLE_FRAME
        self.ended.append(tr)
        return [Event("track_ended", tid, index, tr.best[0].quality if tr.best else None)]

    def _tick(self, stage: str, since: float) -> float:
        now = perf_counter()
        self.seconds[stage] += now - since
        return now

    def _detect(self, image: np.ndarray, index: int) -> Faces:
        """Full-frame detection every ``every``-th frame, else regions of interest around live tracks."""
        if index % self.every == 0:
            faces = self.detector.detect(image)
        else:
            boxes = [_predict(tr, index) for tr in self.live.values() if index - tr.last.frame <= self.every]
            faces = _merge([_detect_region(self.roi_detector, image, b) for b in [*boxes, *self._pending]])
        if self.max_faces is not None and len(faces) > self.max_faces:
            area = (faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])
            faces = _subset(faces, np.sort(np.argsort(-area, kind="stable")[: self.max_faces]))
        return faces


def _predict(tr: Track, index: int) -> np.ndarray:
    """The track's box moved on to frame ``index`` at its last velocity (per frame)."""
    last = tr.last
    if len(tr.sightings) < 2:
        return last.box
    prev = tr.sightings[-2]
    step = (last.box - prev.box) / max(last.frame - prev.frame, 1)
    return last.box + step * (index - last.frame)


def _detect_region(detector: FaceDetector, image: np.ndarray, box: np.ndarray) -> Faces:
    """Detect in a square twice the size of ``box`` around its centre, resized so the face is ~48 px."""
    h, w = image.shape[:2]
    side = float(max(box[2] - box[0], box[3] - box[1], 12.0))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = int(max(cx - side, 0)), int(max(cy - side, 0))
    x1, y1 = int(min(cx + side, w)), int(min(cy + side, h))
    if x1 - x0 < 12 or y1 - y0 < 12:
        return Faces()
    s = _ROI_FACE / side
    size = (max(int(round((x1 - x0) * s)), 12), max(int(round((y1 - y0) * s)), 12))
    region = np.asarray(Image.fromarray(image[y0:y1, x0:x1]).resize(size, Image.Resampling.BILINEAR))
    faces = detector.detect(region)
    sx, sy = (x1 - x0) / size[0], (y1 - y0) / size[1]
    scale, offset = np.array([sx, sy, sx, sy], np.float32), np.array([x0, y0, x0, y0], np.float32)
    return Faces(faces.boxes * scale + offset, faces.scores,
                 faces.landmarks * np.array([sx, sy], np.float32) + np.array([x0, y0], np.float32))


def _merge(found: list[Faces]) -> Faces:
    """One ``Faces`` from several regions; a face found in two overlapping regions is kept once.

    Suppression is by intersection over the smaller box (0.7, the detector's last stage): two
    regions can return the same face at different scales, whose IoU is low while one box holds the
    other, and a kept duplicate would start a second track on the same face.
    """
    found = [f for f in found if len(f)]
    if not found:
        return Faces()
    allf = Faces(np.concatenate([f.boxes for f in found]), np.concatenate([f.scores for f in found]),
                 np.concatenate([f.landmarks for f in found]))
    keep = nms(allf.boxes, allf.scores, 0.7, "min")
    return _subset(allf, np.asarray(keep, np.int64))


def _subset(faces: Faces, idx: np.ndarray) -> Faces:
    return Faces(faces.boxes[idx], faces.scores[idx], faces.landmarks[idx])


def stage_rates(seconds: dict[str, float], frames: int) -> dict[str, Any]:
    """Per-stage milliseconds per frame and frames/s, plus the total (``edgefiq bench``-style rows).

    Example:
        >>> stage_rates({"detect": 0.5, "score": 0.1}, 10)["total"]["ms_per_frame"]
        60.0
    """
    rows: dict[str, Any] = {}
    for stage, sec in [*seconds.items(), ("total", sum(seconds.values()))]:
        ms = 1000.0 * sec / max(frames, 1)
        rows[stage] = {"ms_per_frame": round(ms, 3), "fps": round(1000.0 / ms, 1) if ms > 0 else None}
    return rows
