"""A SYNTHETIC face sample: procedural cartoon faces in an identity tree, plus degraded copies.

Used by the quickstart and the fast tests so that everything runs without real
data. These are NOT real faces: every output folder carries a ``SYNTHETIC.txt``
marker saying so, and ``index.csv`` has a ``synthetic`` column.

Each identity has its own geometry and colours (face shape, skin tone, eye
spacing/size/colour, brows, nose, mouth, hair colour/style, beard, ears); each
image of it adds a small pose (rotation, scale, shift), lighting (gain and a
directional gradient), gaze/expression and sensor-noise jitter. Faces are laid
out on the ArcFace 112x112 template (eyes, nose tip and mouth corners near their
template points), so the images look like aligned crops. Quality then varies
through degraded copies made with ``edgefiq.data.degrade``.

Torch-free (numpy + pillow).

Example:
    >>> root = make_synthetic_sample("/tmp/synth", n_identities=4, per_identity=3)   # doctest: +SKIP
    >>> sorted(p.name for p in root.iterdir())[:3]                                   # doctest: +SKIP
    ['SYNTHETIC.txt', 'index.csv', 'landmarks.tsv']
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from edgefiq.data.align import ARCFACE_TEMPLATE_112
from edgefiq.data.degrade import DEGRADATIONS, degrade, degraded_name
from edgefiq.errors import UsageError
from edgefiq.utils import atomic_write_text

SUPERSAMPLE = 3
_SKIN_LIGHT = np.array([238, 205, 180], np.float64)
_SKIN_DARK = np.array([92, 58, 40], np.float64)
_HAIR = [(25, 20, 18), (70, 45, 30), (120, 80, 45), (200, 165, 100), (150, 60, 30), (150, 150, 150), (230, 225, 215)]
_IRIS = [(60, 40, 25), (95, 65, 35), (70, 110, 150), (80, 120, 80), (30, 25, 20)]

SYNTHETIC_NOTE = """SYNTHETIC DATA - NOT REAL FACES

Every image in this folder was drawn procedurally by edgefiq.data.synthetic
(make_synthetic_sample). Identities are random parameter sets (face shape, skin
tone, eyes, brows, nose, mouth, hair); images add small pose and lighting
jitter; files named <stem>__<kind>_<severity>.jpg are degraded copies made with
edgefiq.data.degrade. Use it to try the pipeline and in fast tests only: numbers
measured on it say nothing about real face images.

index.csv: path,source,kind,severity,identity,synthetic
landmarks.tsv: relpath and the 5 landmark points (x,y) of each clean image
Generator settings: {settings}
"""


@dataclass(frozen=True)
class _Identity:
    skin: np.ndarray
    hair: tuple[int, int, int]
    iris: tuple[int, int, int]
    face_rx: float
    face_ry: float
    face_cy: float
    eye_dx: float
    eye_dy: float
    eye_rx: float
    eye_ry: float
    brow_gap: float
    brow_w: float
    brow_tilt: float
    nose_dy: float
    nose_w: float
    mouth_dx: float
    mouth_dy: float
    lip: tuple[int, int, int]
    lip_h: float
    hairline: float
    side_hair: float
    beard: bool
    cloth: tuple[int, int, int]
    texture_seed: int


def _identity(rng: np.random.Generator) -> _Identity:
    t = rng.uniform(0, 1)
    skin = (1 - t) * _SKIN_LIGHT + t * _SKIN_DARK + rng.normal(0, 6, 3)
    lip = np.clip(skin * np.array([0.85, 0.55, 0.55]) + rng.normal(0, 8, 3), 0, 255)
    return _Identity(
        skin=np.clip(skin, 0, 255), hair=_HAIR[rng.integers(len(_HAIR))], iris=_IRIS[rng.integers(len(_IRIS))],
        face_rx=rng.uniform(35, 43), face_ry=rng.uniform(46, 54), face_cy=rng.uniform(64, 70),
        eye_dx=rng.uniform(-2.5, 2.5), eye_dy=rng.uniform(-2, 2), eye_rx=rng.uniform(6, 8.5), eye_ry=rng.uniform(2.6, 4),
        brow_gap=rng.uniform(7, 11), brow_w=rng.uniform(1.5, 3.5), brow_tilt=rng.uniform(-3, 3),
        nose_dy=rng.uniform(-2, 2), nose_w=rng.uniform(7, 12), mouth_dx=rng.uniform(-2.5, 2.5),
        mouth_dy=rng.uniform(-2, 2), lip=tuple(int(v) for v in lip), lip_h=rng.uniform(2, 4.5),
        hairline=rng.uniform(16, 30), side_hair=rng.uniform(0, 1), beard=bool(rng.random() < 0.2),
        cloth=tuple(int(v) for v in rng.integers(20, 235, 3)), texture_seed=int(rng.integers(2**31)))


def _draw_face(ident: _Identity, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one image (HxWx3 uint8 at ``size``) and its 5 landmarks in pixel coordinates."""
    big = size * SUPERSAMPLE
    k = big / 112.0  # canonical 112-unit coordinates -> supersampled pixels

    def P(x: float, y: float) -> tuple[float, float]:  # noqa: N802
        return (x * k, y * k)

    def box(cx: float, cy: float, rx: float, ry: float) -> list[float]:
        return [(cx - rx) * k, (cy - ry) * k, (cx + rx) * k, (cy + ry) * k]

    def col(c: np.ndarray | tuple, f: float = 1.0) -> tuple[int, int, int]:
        return tuple(int(np.clip(v * f, 0, 255)) for v in c)  # type: ignore[return-value]

    bg = rng.integers(30, 225, 3)
    im = Image.new("RGB", (big, big), col(bg))
    d = ImageDraw.Draw(im)
    tpl = ARCFACE_TEMPLATE_112
    le = tpl[0] + (-ident.eye_dx, ident.eye_dy)
    re = tpl[1] + (ident.eye_dx, ident.eye_dy)
    nose = tpl[2] + (0, ident.nose_dy)
    lm = tpl[3] + (-ident.mouth_dx, ident.mouth_dy)
    rm = tpl[4] + (ident.mouth_dx, ident.mouth_dy)
    skin = ident.skin
    cx, cy, rx, ry = 56.0, ident.face_cy, ident.face_rx, ident.face_ry
    # shoulders, neck, hair behind the head, ears, face
    d.ellipse(box(56, 150, 60, 35), fill=ident.cloth)
    d.rectangle([P(56 - rx * 0.45, cy + ry * 0.5), P(56 + rx * 0.45, 125)], fill=col(skin, 0.85))
    if ident.side_hair > 0.4:
        d.ellipse(box(cx, cy - 4, rx + 6, ry * (0.8 + 0.4 * ident.side_hair)), fill=ident.hair)
    for sx in (-1, 1):
        d.ellipse(box(cx + sx * (rx - 1), le[1] + 12, 5, 9), fill=col(skin, 0.9))
    d.ellipse(box(cx, cy, rx, ry), fill=col(skin))
    if ident.beard:
        d.chord(box(cx, cy + 4, rx - 1, ry - 3), 20, 160, fill=col(ident.hair, 1.1))
        d.ellipse(box(56, (lm[1] + rm[1]) / 2, (rm[0] - lm[0]) / 2 + 2, 6), fill=col(skin))
    # hair cap down to the hairline
    d.chord(box(cx, cy - ry + ident.hairline, rx + 2, ident.hairline + 8), 180, 360, fill=ident.hair)
    # eyes: white, iris (gaze jitter), pupil, lid line
    gaze = rng.uniform(-1.2, 1.2, 2)
    for e in (le, re):
        d.ellipse(box(e[0], e[1], ident.eye_rx, ident.eye_ry), fill=(240, 240, 235))
        ir = min(ident.eye_ry * 1.05, 3.6)
        d.ellipse(box(e[0] + gaze[0], e[1] + gaze[1] * 0.3, ir, ir), fill=ident.iris)
        d.ellipse(box(e[0] + gaze[0], e[1] + gaze[1] * 0.3, ir * 0.45, ir * 0.45), fill=(10, 10, 10))
        d.arc(box(e[0], e[1], ident.eye_rx, ident.eye_ry), 180, 360, fill=col(skin, 0.45), width=max(1, int(k)))
    # brows
    for e, s in ((le, -1), (re, 1)):
        y = e[1] - ident.brow_gap
        d.line([P(e[0] - 8, y + s * ident.brow_tilt * 0.3 + 1), P(e[0] + 8, y - s * ident.brow_tilt * 0.3 - 1)],
               fill=col(ident.hair, 0.8), width=max(1, int(ident.brow_w * k)))
    # nose: bridge shading and nostrils around the tip
    w = ident.nose_w / 2
    d.polygon([P(nose[0] - 2, (le[1] + nose[1]) / 2), P(nose[0] - w, nose[1] + 2), P(nose[0] + w, nose[1] + 2),
               P(nose[0] + 2, (le[1] + nose[1]) / 2)], fill=col(skin, 0.9))
    for sx in (-1, 1):
        d.ellipse(box(nose[0] + sx * w * 0.45, nose[1] + 2, 1.6, 1.1), fill=col(skin, 0.45))
    # mouth: lips between the corners, slight per-image opening
    opening = rng.uniform(0, 2.5)
    my = (lm[1] + rm[1]) / 2
    d.polygon([P(*lm), P(56, my - ident.lip_h), P(*rm), P(56, my + ident.lip_h + opening)], fill=ident.lip)
    d.line([P(*lm), P(56, my + opening * 0.5), P(*rm)], fill=col(ident.lip, 0.5), width=max(1, int(k * 0.8)))
    return _pose_and_light(im, rng, ident, size, col(bg), np.array([le, re, nose, lm, rm], np.float64))


def _pose_and_light(im: Any, rng: np.random.Generator, ident: _Identity, size: int, fill: tuple[int, int, int],
                    landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image pose, lighting and noise on the supersampled drawing; the image at ``size`` and its landmarks."""
    big = size * SUPERSAMPLE
    k = big / 112.0
    # per-image pose: similarity about the image centre, applied to pixels and landmarks
    angle = math.radians(rng.uniform(-7, 7))
    scale = rng.uniform(0.95, 1.05)
    shift = rng.uniform(-2.5, 2.5, 2)
    c = big / 2.0
    a, b = scale * math.cos(angle), scale * math.sin(angle)
    fwd = np.array([[a, -b, c - a * c + b * c + shift[0] * k], [b, a, c - b * c - a * c + shift[1] * k]])
    inv = np.linalg.inv(np.vstack([fwd, [0, 0, 1]]))[:2]
    im = im.transform((big, big), Image.AFFINE, tuple(inv.ravel()), resample=Image.BILINEAR, fillcolor=fill)
    img = np.asarray(im.resize((size, size), Image.BOX), dtype=np.float32)

    # skin texture (identity-fixed), lighting gain + directional gradient, sensor noise
    tex = np.random.default_rng(ident.texture_seed).standard_normal((size, size, 1), np.float32) * 4.0
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5)
    light = rng.uniform(0.85, 1.12) * (1 + rng.uniform(-0.25, 0.25) * (np.cos(theta) * xx + np.sin(theta) * yy) * 2)
    img = img * light[..., None] + tex + rng.standard_normal(img.shape, np.float32) * 2.0
    pts = landmarks * (size / 112.0)
    pts_big = pts * SUPERSAMPLE
    pts = (pts_big @ fwd[:, :2].T + fwd[:, 2]) / SUPERSAMPLE
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), pts


def make_synthetic_sample(out_root: str | Path, n_identities: int = 20, per_identity: int = 6, seed: int = 0,
                          size: int = 112, degraded: bool = True,
                          severities: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)) -> Path:
    """Write a synthetic identity tree ``out_root/<Identity>/<Identity>_NNNN.jpg`` with degraded copies.

    Args:
        out_root: output folder (created; existing files with the same names are overwritten).
        n_identities: number of identities (``Synth_000``, ``Synth_001``, ...).
        per_identity: clean images per identity.
        seed: random seed; the output is deterministic given all arguments.
        size: square image side in pixels (the layout follows the ArcFace template scaled to it).
        degraded: also write, per clean image, one degraded copy with a random kind and severity.
        severities: severities to draw from for the degraded copies.

    Returns:
        ``out_root`` (containing ``index.csv``, ``landmarks.tsv`` and ``SYNTHETIC.txt``).

    Example:
        >>> make_synthetic_sample("/tmp/synth", n_identities=20, per_identity=6)   # doctest: +SKIP
        PosixPath('/tmp/synth')
    """
    if n_identities < 1 or per_identity < 1 or size < 16:
        raise UsageError("make_synthetic_sample needs n_identities >= 1, per_identity >= 1 and size >= 16")
    out = Path(out_root)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    marks: list[str] = []
    for i in range(n_identities):
        name = f"Synth_{i:03d}"
        ident = _identity(np.random.default_rng([seed, i]))
        (out / name).mkdir(exist_ok=True)
        for j in range(per_identity):
            rng = np.random.default_rng([seed, i, j + 1])
            img, pts = _draw_face(ident, rng, size)
            rel = f"{name}/{name}_{j + 1:04d}.jpg"
            # plain writes: the sample is regenerated whole; index.csv (written last, atomically) marks completion
            Image.fromarray(img).save(out / rel, format="JPEG", quality=95)
            rows.append([rel, rel, "clean", "0", name, "1"])
            marks.append(rel + "\t" + "\t".join(f"{v:.2f}" for v in pts.ravel()))
            if degraded:
                kind = DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))]
                sev = float(severities[int(rng.integers(len(severities)))])
                drel = f"{name}/{degraded_name(Path(rel).stem, kind, sev)}"
                Image.fromarray(degrade(img, kind, sev, rng)).save(out / drel, format="JPEG", quality=95)
                rows.append([drel, rel, kind, f"{sev:g}", name, "1"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "source", "kind", "severity", "identity", "synthetic"])
    w.writerows(rows)
    atomic_write_text(out / "index.csv", buf.getvalue())
    atomic_write_text(out / "landmarks.tsv", "\n".join(marks) + "\n")
    settings = dict(n_identities=n_identities, per_identity=per_identity, seed=seed, size=size, degraded=degraded)
    atomic_write_text(out / "SYNTHETIC.txt", SYNTHETIC_NOTE.format(settings=settings))
    return out
