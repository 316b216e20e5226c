"""Trackers (``edgefiq.video.track``) and the walk-up generator (``edgefiq.data.walkup``), on synthetic input."""

from __future__ import annotations

import numpy as np
import pytest

from edgefiq.data.walkup import WalkupPerson, walkup_sequence
from edgefiq.errors import UsageError
from edgefiq.video.track import TRACKERS, iou_matrix, make_tracker


def _crossing(frames: int = 30) -> list[np.ndarray]:
    """Two 40 px boxes moving towards each other on parallel rows (they pass without overlapping)."""
    out = []
    for t in range(frames):
        a = [20 + 8 * t, 100, 60 + 8 * t, 140]
        b = [300 - 8 * t, 150, 340 - 8 * t, 190]
        out.append(np.array([a, b], np.float32))
    return out


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    m = iou_matrix(a, np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32))
    assert m.shape == (2, 2) and m[0, 0] == pytest.approx(1.0) and m[0, 1] == pytest.approx(1 / 3)
    assert m[1].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name", sorted(TRACKERS))
def test_trackers_keep_two_moving_faces_apart(name):
    tracker = make_tracker(name, fps=25, lost_frames=10)
    seen: dict[int, set[int]] = {0: set(), 1: set()}
    for boxes in _crossing():
        ids = tracker.update(boxes, np.array([0.99, 0.98], np.float32))
        assert ids.shape == (2,) and ids.dtype == np.int64
        for k in (0, 1):
            if ids[k] >= 0:
                seen[k].add(int(ids[k]))
    assert len(seen[0]) == 1 and len(seen[1]) == 1 and seen[0] != seen[1]  # one id each, never swapped


def test_tracker_empty_frames_and_unknown_name():
    tracker = make_tracker("bytetrack")
    assert tracker.update(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)).shape == (0,)
    with pytest.raises(UsageError, match="unknown tracker 'bytetrak'.*bytetrack"):
        make_tracker("bytetrak")


def test_walkup_sequence_is_deterministic_and_carries_truth():
    img = np.random.default_rng(0).integers(0, 255, (250, 250, 3), dtype=np.uint8)
    pts = np.array([[103, 115], [145, 109], [116, 135], [109, 159], [147, 153]], np.float32)
    people = [WalkupPerson("a", img, pts), WalkupPerson("b", img[::-1].copy(), pts)]
    a = list(walkup_sequence(people, frames=12, size=(120, 160), seed=4))
    b = list(walkup_sequence(people, frames=12, size=(120, 160), seed=4))
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert [f.index for f in a] == list(range(12)) and all(len(f.people) == 2 for f in a)
    first = [f.people[0] for f in a]
    # the first person walks up: the face grows; severities are known and in [0, 1]
    assert first[-1].box[2] - first[-1].box[0] > 2 * (first[0].box[2] - first[0].box[0])
    assert all(0.0 <= p.severity <= 1.0 for f in a for p in f.people)
    assert any("motion_blur" in p.kinds for p in first) and first[-1].landmarks.shape == (5, 2)
    with pytest.raises(UsageError, match="1 to 3 people"):
        next(walkup_sequence(people * 2, frames=5))
