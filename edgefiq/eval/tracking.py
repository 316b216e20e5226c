"""How well best-shot tracks follow the people of a sequence with known ground truth (walk-up videos).

Each sighting of a track is matched to the person whose true face box overlaps it most (IoU at
least ``min_iou``). A track belongs to the person most of its sightings match. Per sequence:

- **ID switches** (the MOT definition): along a person's frames, the number of times the track
  that covers them changes (when two tracks cover a person on one frame, the one whose box
  overlaps the true face most; the other is a duplicate);
- **duplicates**: sightings on a person that another track already covers on that frame;
- **fragments**: tracks of a person beyond the first;
- **missed faces**: visible true faces (side at least ``min_face``) no sighting matches;
- **false tracks**: tracks whose sightings mostly match nobody.

Torch-free.

Example:
    >>> m = track_metrics(bs.finish(), frames, min_face=40)   # doctest: +SKIP
    >>> m.id_switches, m.missed, m.visible                    # doctest: +SKIP
    (0, 12, 140)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from edgefiq.data.walkup import WalkupFrame
from edgefiq.video.bestshot import Track
from edgefiq.video.track import iou_matrix


@dataclass
class TrackMetrics:
    """Tracking counts of one sequence (module docstring), plus which person each track belongs to."""

    id_switches: int = 0
    duplicates: int = 0
    fragments: int = 0
    missed: int = 0
    visible: int = 0
    false_tracks: int = 0
    person_of_track: dict[int, int | None] = field(default_factory=dict)

    def tracks_of(self, person: int) -> list[int]:
        """Ids of the tracks that belong to ``person``."""
        return [t for t, p in self.person_of_track.items() if p == person]


def track_metrics(tracks: Sequence[Track], frames: Sequence[WalkupFrame], *, min_face: float = 0.0,
                  min_iou: float = 0.3) -> TrackMetrics:
    """Match ``tracks`` to the ground truth of ``frames`` and count switches, fragments and misses.

    Example:
        >>> track_metrics([], []).id_switches
        0
    """
    truth = {f.index: f for f in frames}
    covered: dict[tuple[int, int], tuple[float, int]] = {}  # (frame, person) -> (IoU, track)
    out = TrackMetrics()
    for tr in tracks:
        votes: Counter = Counter()
        for s in tr.sightings:
            person, iou = _person_at(truth.get(s.frame), s.box, min_iou)
            votes[person] += 1
            if person is not None:
                key = (s.frame, person)
                out.duplicates += key in covered
                covered[key] = max(covered.get(key, (-1.0, 0)), (iou, tr.id))
        out.person_of_track[tr.id] = votes.most_common(1)[0][0] if votes else None
    out.false_tracks = sum(p is None for p in out.person_of_track.values())
    people = {p.person for f in frames for p in f.people}
    for person in people:
        seq = [covered[(f.index, person)][1] for f in frames if (f.index, person) in covered]
        out.id_switches += sum(a != b for a, b in zip(seq, seq[1:]))
        out.fragments += max(len(out.tracks_of(person)) - 1, 0)
    for f in frames:
        for p in f.people:
            if p.visible and float(p.box[2] - p.box[0]) >= min_face:
                out.visible += 1
                out.missed += (f.index, p.person) not in covered
    return out


def _person_at(frame: WalkupFrame | None, box: np.ndarray, min_iou: float) -> tuple[int | None, float]:
    """The person whose true face box overlaps ``box`` most (None below ``min_iou``), and that IoU."""
    if frame is None or not frame.people:
        return None, 0.0
    iou = iou_matrix(np.asarray(box, np.float32)[None], np.stack([p.box for p in frame.people]))[0]
    k = int(np.argmax(iou))
    return (frame.people[k].person, float(iou[k])) if iou[k] >= min_iou else (None, float(iou[k]))
