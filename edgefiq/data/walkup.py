"""Synthetic "walk-up" face videos with known ground truth, for testing best-shot selection.

edgefiq has no face videos, so ``walkup_sequence`` makes them: real photos with known 5-point
landmarks (LFW raw photos and ``landmarks.tsv``) move across a static, textured background and grow
as the person walks towards the camera. Every frame carries a known degradation schedule, so the
least degraded frame (the *oracle* a best-shot selector should approach) is known:

- motion blur that is strong while the person walks in and fades;
- a stretch of frames with a hand-sized occluder on the face, and one with strong exposure;
- light sensor noise on every frame.

Two or three people can cross in one sequence (opposite directions, different depths; the nearer
person is drawn on top), which is what breaks trackers. Ground truth per frame and person: the
landmarks in frame coordinates, the face box, whether the face is visible, and the frame's
degradation (``severity`` in [0, 1], 0 = clean; ``kinds``). The degradations are the ones of
``edgefiq.data.degrade``.

Torch-free (numpy + pillow).

Example:
    >>> import numpy as np
    >>> img = np.full((250, 250, 3), 128, np.uint8)
    >>> pts = np.array([[103, 115], [145, 109], [116, 135], [109, 159], [147, 153]], np.float32)
    >>> frames = list(walkup_sequence([WalkupPerson("a", img, pts)], frames=5, size=(120, 160)))
    >>> frames[0].image.shape, len(frames[0].people)
    ((120, 160, 3), 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from edgefiq.data.align import read_landmarks_tsv
from edgefiq.data.degrade import degrade
from edgefiq.data.images import load_image
from edgefiq.data.readers import identity_of, list_images
from edgefiq.data.readers import relpaths as rel_of
from edgefiq.errors import DataError, UsageError


@dataclass(frozen=True)
class WalkupPerson:
    """One person of a sequence: a photo and its 5 landmarks (x, y in photo pixels)."""

    name: str
    image: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class PersonTruth:
    """Ground truth of one person in one frame.

    Attributes:
        person: index of the person in the sequence.
        landmarks: ``(5, 2)`` landmarks in frame pixels.
        box: ``(4,)`` face box x1, y1, x2, y2 in frame pixels (from the landmarks).
        visible: the face centre is inside the frame and not covered by a nearer person.
        severity: strongest degradation applied to this face in this frame (0 = clean).
        kinds: the degradation kinds applied.
    """

    person: int
    landmarks: np.ndarray
    box: np.ndarray
    visible: bool
    severity: float
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class WalkupFrame:
    """One rendered frame: the RGB image and the truth of every person in it."""

    index: int
    image: np.ndarray
    people: list[PersonTruth] = field(default_factory=list)


@dataclass(frozen=True)
class _Path:
    """A person's trajectory: face centre and inter-ocular distance (frame pixels) at t = 0 and t = 1."""

    start: tuple[float, float]
    end: tuple[float, float]
    iod: tuple[float, float]
    sway: float
    phase: float

    def at(self, t: float) -> tuple[float, float, float]:
        x = self.start[0] + (self.end[0] - self.start[0]) * t
        y = self.start[1] + (self.end[1] - self.start[1]) * t + self.sway * np.sin(2 * np.pi * (2 * t + self.phase))
        return float(x), float(y), float(self.iod[0] * (self.iod[1] / self.iod[0]) ** t)


def background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A static textured background: smooth colour fields, a few flat rectangles, fine grain.

    Example:
        >>> background((48, 64), np.random.default_rng(0)).shape
        (48, 64, 3)
    """
    h, w = size
    coarse = rng.uniform(40, 200, (6, 8, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float32)
    for _ in range(int(rng.integers(3, 7))):  # furniture, door frames, posters
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x2, y2 = x1 + int(rng.integers(w // 12, w // 3)), y1 + int(rng.integers(h // 12, h // 2))
        img[y1:y2, x1:x2] = rng.uniform(20, 235, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _paths(n: int, size: tuple[int, int], rng: np.random.Generator) -> list[_Path]:
    """Trajectories: the first person walks up from far to near; others cross in opposite directions."""
    h, w = size
    out = []
    for k in range(n):
        side = 1 if k % 2 == 0 else -1
        x0 = w * (0.5 - side * rng.uniform(0.15, 0.4))
        x1 = w * (0.5 + side * rng.uniform(-0.1, 0.3)) if k else w * rng.uniform(0.4, 0.6)
        near = rng.uniform(0.10, 0.16) * w if k == 0 else rng.uniform(0.06, 0.11) * w
        far = rng.uniform(0.025, 0.04) * w
        out.append(_Path((x0, h * rng.uniform(0.35, 0.5)), (x1, h * rng.uniform(0.4, 0.5)), (far, near),
                         sway=rng.uniform(0, 0.02) * h, phase=float(rng.uniform())))
    return out


@dataclass(frozen=True)
class _Schedule:
    """Per-frame degradations of one person: (kind, severity) steps for frame t of T."""

    blur_until: float
    blur_max: float
    occlusion: tuple[int, int]
    exposure: tuple[int, int]
    exposure_kind: str

    def steps(self, i: int, frames: int) -> list[tuple[str, float]]:
        t = i / max(1, frames - 1)
        out = []
        if t < self.blur_until:
            out.append(("motion_blur", round(self.blur_max * (1 - t / self.blur_until), 3)))
        if self.occlusion[0] <= i < self.occlusion[1]:
            out.append(("occlusion", 0.8))
        if self.exposure[0] <= i < self.exposure[1]:
            out.append((self.exposure_kind, 0.85))
        return [(k, s) for k, s in out if s > 0.0]


def _schedule(frames: int, rng: np.random.Generator) -> _Schedule:
    def stretch() -> tuple[int, int]:
        n = int(rng.integers(max(2, frames // 12), max(3, frames // 5)))
        a = int(rng.integers(frames // 5, max(frames // 5 + 1, frames - n)))
        return a, a + n

    return _Schedule(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.6, 1.0)), stretch(), stretch(),
                     str(rng.choice(["exposure_under", "exposure_over"])))


def _face_box(marks: np.ndarray) -> np.ndarray:
    """A face box around 5 landmarks (about MTCNN's framing: 1.1 inter-ocular distances either side)."""
    c = marks.mean(axis=0)
    iod = float(np.linalg.norm(marks[1] - marks[0]))
    return np.array([c[0] - 1.1 * iod, c[1] - 1.4 * iod, c[0] + 1.1 * iod, c[1] + 1.2 * iod], np.float32)


def _render_person(frame: np.ndarray, person: WalkupPerson, centre: tuple[float, float], iod: float,
                   steps: list[tuple[str, float]], rng_seed: Sequence[int]) -> np.ndarray:
    """Composite ``person`` into ``frame`` (in place) with face centre ``centre`` and inter-ocular ``iod``."""
    src = person.landmarks.astype(np.float64)
    s = iod / float(np.linalg.norm(src[1] - src[0]))
    c_src = src.mean(axis=0)
    # frame -> photo: p_src = (p - centre) / s + c_src; clip the work to the head's bounding box
    rx, ry = 1.7 * iod, 2.3 * iod
    h, w = frame.shape[:2]
    x1, y1 = max(0, int(centre[0] - rx)), max(0, int(centre[1] - ry))
    x2, y2 = min(w, int(centre[0] + rx) + 1), min(h, int(centre[1] + ry) + 1)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return (src - c_src) * s + np.asarray(centre)
    ox, oy = (x1 - centre[0]) / s + c_src[0], (y1 - centre[1]) / s + c_src[1]
    patch = Image.fromarray(person.image).transform((x2 - x1, y2 - y1), Image.AFFINE, (1 / s, 0, ox, 0, 1 / s, oy),
                                                    resample=Image.BILINEAR)
    layer = np.asarray(patch)
    for k, (kind, sev) in enumerate(steps):
        layer = degrade(layer, kind, sev, np.random.default_rng([*rng_seed, k]))
    yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32)
    r = np.sqrt(((xx - centre[0]) / rx) ** 2 + ((yy - centre[1] + 0.3 * iod) / ry) ** 2)
    alpha = np.clip((1.0 - r) / 0.15, 0.0, 1.0)[..., None]
    region = frame[y1:y2, x1:x2].astype(np.float32)
    frame[y1:y2, x1:x2] = (region * (1 - alpha) + layer.astype(np.float32) * alpha).astype(np.uint8)
    return (src - c_src) * s + np.asarray(centre)


def walkup_sequence(people: Sequence[WalkupPerson], *, frames: int = 60, size: tuple[int, int] = (480, 640),
                    seed: int = 0, noise: float = 3.0) -> Iterator[WalkupFrame]:
    """Render a walk-up sequence of ``people`` (the first walks up; the others cross).

    Args:
        people: one to three persons (photo + landmarks).
        frames: number of frames.
        size: frame (height, width).
        seed: random seed (trajectories, background, degradation schedule).
        noise: sensor noise sigma on every frame (0-255 scale).

    Yields:
        ``WalkupFrame`` per frame, with the ground truth of every person.

    Example:
        >>> seq = walkup_sequence(persons, frames=60, seed=3)   # doctest: +SKIP
        >>> [p.severity for p in next(seq).people]             # doctest: +SKIP
        [0.84]
    """
    if not 1 <= len(people) <= 3:
        raise UsageError(f"a walk-up sequence takes 1 to 3 people, got {len(people)}")
    if frames < 2:
        raise UsageError(f"a walk-up sequence needs at least 2 frames, got {frames}")
    rng = np.random.default_rng(seed)
    bg = background(size, rng)
    paths = _paths(len(people), size, rng)
    schedules = [_schedule(frames, rng) for _ in people]
    for i in range(frames):
        t = i / (frames - 1)
        frame = bg.copy()
        states = [(k, *paths[k].at(t)) for k in range(len(people))]
        truths: dict[int, PersonTruth] = {}
        drawn: list[tuple[int, np.ndarray]] = []
        for k, x, y, iod in sorted(states, key=lambda s: s[3]):  # far first, near on top
            steps = schedules[k].steps(i, frames)
            marks = _render_person(frame, people[k], (x, y), iod, steps, (seed, k))
            drawn.append((k, marks))
            sev = max((s for _, s in steps), default=0.0)
            truths[k] = PersonTruth(k, marks.astype(np.float32), _face_box(marks), True, sev,
                                    tuple(kind for kind, _ in steps))
        for n, (k, marks) in enumerate(drawn):
            c = marks.mean(axis=0)
            inside = 0 <= c[0] < size[1] and 0 <= c[1] < size[0]
            covered = any(_covers(m2, c) for _, m2 in drawn[n + 1:])
            if not inside or covered:
                tr = truths[k]
                truths[k] = PersonTruth(k, tr.landmarks, tr.box, False, tr.severity, tr.kinds)
        if noise:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        yield WalkupFrame(i, frame, [truths[k] for k in range(len(people))])


def _covers(marks: np.ndarray, point: np.ndarray) -> bool:
    """Whether the head drawn around ``marks`` covers ``point`` (inside its opaque ellipse)."""
    c = marks.mean(axis=0)
    iod = float(np.linalg.norm(marks[1] - marks[0]))
    return ((point[0] - c[0]) / (1.5 * iod)) ** 2 + ((point[1] - c[1] + 0.3 * iod) / (2.0 * iod)) ** 2 < 1.0


def load_people(raw_root: str | Path, landmarks_tsv: str | Path, relpaths: Sequence[str] | None = None, *,
                count: int = 1, seed: int = 0) -> list[WalkupPerson]:
    """Photos with landmarks as ``WalkupPerson``: the given ``relpaths``, or ``count`` of distinct identities.

    Args:
        raw_root: folder of photos (e.g. LFW ``raw_sample``).
        landmarks_tsv: ``relpath<TAB>x1 y1 ... x5 y5`` for the photos (``edgefiq data align``'s format).
        relpaths: which photos; ``None`` picks ``count`` photos of different identities at random.
        count: how many people to pick when ``relpaths`` is not given.
        seed: random seed of the pick.

    Raises:
        DataError: a photo has no landmarks, or fewer identities than ``count`` have them.

    Example:
        >>> people = load_people("../shared/data/lfw-dev/raw_sample",
        ...                      "../shared/data/lfw-dev/landmarks.tsv", count=2)   # doctest: +SKIP
    """
    root, marks = Path(raw_root), read_landmarks_tsv(landmarks_tsv)
    if relpaths is None:
        by_id: dict[str, list[str]] = {}
        for rel in rel_of(list_images(root), root):
            if rel in marks:
                by_id.setdefault(identity_of(rel), []).append(rel)
        if len(by_id) < count:
            raise DataError(f"{root}: {len(by_id)} identities have landmarks, {count} people asked for")
        rng = np.random.default_rng(seed)
        names = rng.choice(sorted(by_id), size=count, replace=False)
        relpaths = [str(rng.choice(by_id[n])) for n in names]
    missing = [r for r in relpaths if r not in marks]
    if missing:
        raise DataError(f"{landmarks_tsv}: no landmarks for {missing[0]}")
    return [WalkupPerson(r, load_image(root / r), marks[r]) for r in relpaths]
