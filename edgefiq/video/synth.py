"""Write a synthetic walk-up video (``edgefiq.data.walkup``) as an MP4 with its ground truth beside it.

``write_walkup_video`` renders a sequence of real photos moving towards the camera and encodes it
(H.264), plus ``<stem>.truth.json``: per frame and person the landmarks, face box, visibility and
known degradation. It is what ``edgefiq data walkup`` runs, for trying ``edgefiq bestshot``
without a face video and for the tests.

Example:
    >>> write_walkup_video("../shared/data/lfw-dev/raw_sample", "../shared/data/lfw-dev/landmarks.tsv",
    ...                    "walkup.mp4", people=2)   # doctest: +SKIP
    PosixPath('walkup.mp4')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from edgefiq.data.walkup import WalkupFrame, load_people, walkup_sequence
from edgefiq.utils import write_json
from edgefiq.video.source import write_video


def truth_path(video: str | Path) -> Path:
    """Where the ground truth of a walk-up video is written: ``<stem>.truth.json`` beside it.

    Example:
        >>> truth_path("clips/walkup.mp4").as_posix()
        'clips/walkup.truth.json'
    """
    v = Path(video)
    return v.with_name(v.stem + ".truth.json")


def write_walkup_video(raw_root: str | Path, landmarks_tsv: str | Path, out: str | Path, *, people: int = 1,
                       photos: Sequence[str] | None = None, frames: int = 60, size: tuple[int, int] = (480, 640),
                       fps: int = 25, seed: int = 0) -> Path:
    """Render and encode a walk-up sequence of ``people`` photos (or the given ``photos``); returns the MP4.

    Example:
        >>> write_walkup_video("raw/", "landmarks.tsv", "w.mp4", frames=40, seed=3)   # doctest: +SKIP
        PosixPath('w.mp4')
    """
    persons = load_people(raw_root, landmarks_tsv, photos, count=people, seed=seed)
    truth: list[WalkupFrame] = []

    def images() -> Any:
        for f in walkup_sequence(persons, frames=frames, size=size, seed=seed):
            truth.append(f)
            yield f.image

    path = write_video(images(), out, fps=fps)
    write_json(truth_path(path), {"people": [p.name for p in persons], "fps": fps, "size": list(size), "frames": [
        {"frame": f.index, "people": [{"person": t.person, "visible": t.visible, "severity": t.severity,
                                       "kinds": list(t.kinds), "box": [round(float(v), 1) for v in t.box],
                                       "landmarks": t.landmarks.round(1).tolist()} for t in f.people]}
        for f in truth]})
    return path
