"""Capture defects of aligned face crops: misalignment, pose, lens, shaped occluders, lighting, background.

The classic degradations (``edgefiq.data.degrade``: blur, noise, JPEG, resolution, exposure,
rectangles) spoil the pixels of a well-framed face. A door camera also gets the framing wrong
(an off-centre detection, a face far away or too close, a turned head) and sees what covers a
face (sunglasses, masks, hands, hair, hats) and how it is lit. Each defect here has a severity
in [0, 1] with the same contract as the classic ones (0 = identity, monotone in severity for a
fixed ``rng`` state: the random parts are drawn before severity is used), the ISO/IEC 29794-5
quality component it targets (``ISO_COMPONENT``) and a family (``FAMILY``) for leave-one-family-
out evaluation. Positions follow the ArcFace 112x112 template (eyes at y = 51, mouth at y = 92)
and scale with the crop size.

==============  ================================================================
kind            severity 1 means
==============  ================================================================
shift_x         face moved 30% of the width sideways (the border filled)
shift_y         face moved 25% of the height up or down
roll            in-plane rotation by 40 degrees
zoom_in         face 1.9x too large: cut at the crop's borders
zoom_out        face 0.4x its size: too small in the crop
border_crop     45% of the crop on one side outside the image (black)
yaw             perspective warp of a head turned about 45 degrees
pitch           perspective warp of a head tilted about 35 degrees up or down
barrel          barrel (fish-eye) distortion, k = 0.5 at the crop's corners
sunglasses      dark, slightly see-through lenses over both eyes
mask            a surgical mask from the chin up over the nose
hand            a skin-toned hand over the mouth, a cheek or an eye
hair            dark strands over the forehead and the eyes
hat             a hat whose brim reaches the eyebrows
uneven_light    one side of the face at 20% of the other's light
colour_cast     a strong tint (per-channel gains up to 1.6 / 0.6)
clutter         the background around the face replaced by textured clutter
==============  ================================================================

Torch-free (numpy + pillow).

Example:
    >>> import numpy as np
    >>> img = np.full((112, 112, 3), 128, np.uint8)
    >>> CAPTURE_FUNCS["mask"](img, 0.5, np.random.default_rng(0)).shape
    (112, 112, 3)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

DefectFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
CAPTURE_FUNCS: dict[str, DefectFn] = {}
ISO_COMPONENT: dict[str, str] = {}
FAMILY: dict[str, str] = {}

_EYES_Y, _MOUTH_Y, _LEFT_EYE_X, _RIGHT_EYE_X = 51.6 / 112, 92.2 / 112, 38.3 / 112, 73.5 / 112


def _defect(name: str, family: str, component: str) -> Callable[[DefectFn], DefectFn]:
    def deco(fn: DefectFn) -> DefectFn:
        CAPTURE_FUNCS[name], FAMILY[name], ISO_COMPONENT[name] = fn, family, component
        return fn

    return deco


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _fill_mode(rng: np.random.Generator) -> str:
    """How the area a warp uncovers is filled: black (an aligner's border) or the image's edge pixels."""
    return str(rng.choice(["constant", "edge"]))


def _affine(img: np.ndarray, matrix: np.ndarray, fill: str) -> np.ndarray:
    """``img`` warped by the 2x3 ``matrix`` (output -> input pixel coordinates), bilinear."""
    h, w = img.shape[:2]
    pad = max(h, w)
    big = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode=fill)
    shift = np.array([[1, 0, pad], [0, 1, pad]], np.float64)
    m = shift @ np.vstack([matrix, [0, 0, 1]])   # output pixel -> padded input pixel
    out = Image.fromarray(big).transform((w, h), Image.Transform.AFFINE, data=tuple(m.reshape(-1)),
                                         resample=Image.Resampling.BILINEAR)
    return np.asarray(out, np.uint8).copy()


def _about_centre(img: np.ndarray, scale: float = 1.0, angle: float = 0.0, dx: float = 0.0,
                  dy: float = 0.0) -> np.ndarray:
    """Output -> input matrix of a similarity about the crop's centre: the face scaled by ``scale``,
    rotated by ``angle`` degrees and moved by (dx, dy) pixels in the output."""
    h, w = img.shape[:2]
    c = np.array([w / 2, h / 2])
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) / scale
    return np.hstack([rot, (c - rot @ (c + np.array([dx, dy])))[:, None]])


@_defect("shift_x", "misalignment", "crop of the face image (leftward / rightward)")
def shift_x(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """The face moved sideways by 30% of the width x severity; the uncovered side filled."""
    sign, fill = rng.choice([-1.0, 1.0]), _fill_mode(rng)
    return _affine(img, _about_centre(img, dx=sign * 0.30 * severity * img.shape[1]), fill)


@_defect("shift_y", "misalignment", "crop of the face image (margin above / below)")
def shift_y(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """The face moved up or down by 25% of the height x severity."""
    sign, fill = rng.choice([-1.0, 1.0]), _fill_mode(rng)
    return _affine(img, _about_centre(img, dy=sign * 0.25 * severity * img.shape[0]), fill)


@_defect("roll", "misalignment", "head pose (roll)")
def roll(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """In-plane rotation by 40 degrees x severity, either way."""
    sign, fill = rng.choice([-1.0, 1.0]), _fill_mode(rng)
    return _affine(img, _about_centre(img, angle=sign * 40.0 * severity), fill)


@_defect("zoom_in", "misalignment", "head size / inter-eye distance (too large)")
def zoom_in(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """The face 1 + 0.9 x severity times too large, about a point near the centre: cut at the borders."""
    h, w = img.shape[:2]
    ox, oy = rng.uniform(-0.08, 0.08) * w, rng.uniform(-0.08, 0.08) * h
    s = 1.0 + 0.9 * severity
    return _affine(img, _about_centre(img, scale=s, dx=ox * (s - 1), dy=oy * (s - 1)), "edge")


@_defect("zoom_out", "misalignment", "head size / inter-eye distance (too small)")
def zoom_out(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """The face 1 / (1 + 1.5 x severity) of its size (0.4x at 1), the crop filled around it."""
    fill = _fill_mode(rng)
    return _affine(img, _about_centre(img, scale=1.0 / (1.0 + 1.5 * severity)), fill)


@_defect("border_crop", "misalignment", "crop of the face image (face partly outside the image)")
def border_crop(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A face at the photo's edge: 45% x severity of the crop on one side is black."""
    side = int(rng.integers(4))
    h, w = img.shape[:2]
    out = img.copy()
    k = int(round(0.45 * severity * (w if side < 2 else h)))
    if k:
        region = [np.s_[:, :k], np.s_[:, w - k:], np.s_[:k, :], np.s_[h - k:, :]][side]
        out[region] = 0
    return out


def _perspective(img: np.ndarray, corners: np.ndarray, fill: str) -> np.ndarray:
    """``img`` warped so that its corners (TL, TR, BR, BL) land on ``corners`` (output pixels)."""
    h, w = img.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    # PIL wants the output -> input map: solve the homography from output corners to input corners
    a, b = [], []
    for (x, y), (u, v) in zip(corners, src):
        a += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        b += [u, v]
    coeffs = np.linalg.solve(np.array(a), np.array(b))
    pad = max(h, w)
    big = Image.fromarray(np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode=fill))
    t = np.array([[1, 0, pad], [0, 1, pad], [0, 0, 1]]) @ np.append(coeffs, 1).reshape(3, 3)
    t = t / t[2, 2]
    out = big.transform((w, h), Image.Transform.PERSPECTIVE, data=tuple(t.reshape(-1)[:8]),
                        resample=Image.Resampling.BILINEAR)
    return np.asarray(out, np.uint8).copy()


@_defect("yaw", "pose", "head pose (yaw)")
def yaw(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A head turned sideways: the far side squeezed to 55% of its height and the face narrowed."""
    sign, fill = rng.choice([-1.0, 1.0]), _fill_mode(rng)
    h, w = img.shape[:2]
    far = 0.45 * severity * h / 2          # how much the far edge shrinks, top and bottom
    narrow = 0.25 * severity * w           # the face gets narrower as it turns
    left, right = (far, 0.0) if sign > 0 else (0.0, far)
    x0, x1 = (narrow, w) if sign > 0 else (0.0, w - narrow)
    corners = np.array([[x0, left], [x1, right], [x1, h - right], [x0, h - left]])
    return _perspective(img, corners, fill)


@_defect("pitch", "pose", "head pose (pitch)")
def pitch(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A head tilted up or down: the far edge squeezed to 60% of its width and the face shortened."""
    sign, fill = rng.choice([-1.0, 1.0]), _fill_mode(rng)
    h, w = img.shape[:2]
    far = 0.40 * severity * w / 2
    short = 0.20 * severity * h
    top, bottom = (far, 0.0) if sign > 0 else (0.0, far)
    y0, y1 = (short, h) if sign > 0 else (0.0, h - short)
    corners = np.array([[top, y0], [w - top, y0], [w - bottom, y1], [bottom, y1]])
    return _perspective(img, corners, fill)


@_defect("barrel", "lens", "radial distortion")
def barrel(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Barrel distortion: a pixel at normalised radius r samples r (1 + k r^2) / (1 + k), k = 0.5 x severity."""
    h, w = img.shape[:2]
    k = 0.5 * severity
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy, norm = (w - 1) / 2, (h - 1) / 2, np.hypot(w / 2, h / 2)
    dx, dy = (xs - cx) / norm, (ys - cy) / norm
    f = (1 + k * (dx * dx + dy * dy)) / (1 + k)   # the corners stay where they are
    sx, sy = np.clip(cx + dx * f * norm, 0, w - 1), np.clip(cy + dy * f * norm, 0, h - 1)
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    ax, ay = (sx - x0)[..., None], (sy - y0)[..., None]
    src = img.astype(np.float32)
    top = src[y0, x0] * (1 - ax) + src[y0, x1] * ax
    bottom = src[y1, x0] * (1 - ax) + src[y1, x1] * ax
    return _u8(top * (1 - ay) + bottom * ay)


def _overlay(img: np.ndarray, draw: Callable[[ImageDraw.ImageDraw], None], colour: np.ndarray, opacity: float,
             texture: np.ndarray | None = None) -> np.ndarray:
    """``img`` with the shape ``draw`` paints (on a mask) in ``colour`` at ``opacity``, plus ``texture``."""
    h, w = img.shape[:2]
    mask = Image.new("L", (w, h), 0)
    draw(ImageDraw.Draw(mask))
    a = (np.asarray(mask, np.float32) / 255.0 * opacity)[..., None]
    layer = np.broadcast_to(colour.astype(np.float32), img.shape) + (0.0 if texture is None else texture)
    return _u8(img.astype(np.float32) * (1 - a) + layer * a)


@_defect("sunglasses", "occluder", "eyes visible")
def sunglasses(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Two dark lenses over the eyes; lens size and darkness grow with severity."""
    h, w = img.shape[:2]
    colour = rng.uniform(5, 60, size=3)
    tilt = rng.uniform(-0.03, 0.03) * h
    rx, ry = (0.09 + 0.07 * severity) * w, (0.06 + 0.05 * severity) * h

    def draw(d: ImageDraw.ImageDraw) -> None:
        for k, ex in enumerate((_LEFT_EYE_X, _RIGHT_EYE_X)):
            cx, cy = ex * w, _EYES_Y * h + (tilt if k else -tilt)
            d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        d.line([(_LEFT_EYE_X * w + rx, _EYES_Y * h), (_RIGHT_EYE_X * w - rx, _EYES_Y * h)], fill=255,
               width=max(1, int(0.02 * w)))

    return _overlay(img, draw, colour, 0.55 + 0.43 * severity)


@_defect("mask", "occluder", "mouth occlusion prevention")
def mask(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A face mask from below the chin up to the mouth (0.3) and over the nose (1)."""
    h, w = img.shape[:2]
    colour = np.array([[200, 225, 240], [245, 245, 245], [30, 30, 35], [90, 130, 200]][int(rng.integers(4))],
                      np.float32) + rng.uniform(-15, 15, size=3)
    texture = rng.standard_normal((h, w, 1)).astype(np.float32) * 6.0
    top = (_MOUTH_Y + 0.08 - (0.08 + 0.30) * severity) * h   # from under the mouth to the nose bridge
    side = 0.16 * w

    def draw(d: ImageDraw.ImageDraw) -> None:
        d.polygon([(side, top + 0.06 * h), (w / 2, top), (w - side, top + 0.06 * h), (w - side * 0.7, 1.15 * h),
                   (side * 0.7, 1.15 * h)], fill=255)

    return _overlay(img, draw, colour, 1.0, texture)


@_defect("hand", "occluder", "face occlusion prevention")
def hand(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A skin-toned hand (palm and four fingers) over the mouth, a cheek or an eye, its size growing."""
    h, w = img.shape[:2]
    colour = np.array([225, 180, 150], np.float32) * rng.uniform(0.55, 1.05) + rng.uniform(-10, 10, size=3)
    target = [(0.5, _MOUTH_Y), (0.25, 0.72), (0.75, 0.72), (_LEFT_EYE_X, _EYES_Y), (_RIGHT_EYE_X, _EYES_Y)][
        int(rng.integers(5))]
    angle = rng.uniform(-0.6, 0.6)
    texture = rng.standard_normal((h, w, 1)).astype(np.float32) * 5.0
    size = (0.12 + 0.22 * severity) * w

    def draw(d: ImageDraw.ImageDraw) -> None:
        cx, cy = target[0] * w, target[1] * h
        d.ellipse([cx - size, cy - 0.8 * size, cx + size, cy + 0.8 * size], fill=255)
        ux, uy = np.sin(angle), -np.cos(angle)   # the fingers point this way
        for k in range(4):
            off = (k - 1.5) * 0.45 * size
            bx, by = cx + off * -uy, cy + off * ux
            d.line([(bx, by), (bx + ux * 1.7 * size, by + uy * 1.7 * size)], fill=255, width=max(2, int(0.38 * size)))

    return _overlay(img, draw, colour, 1.0, texture)


@_defect("hair", "occluder", "eyes visible / face occlusion prevention")
def hair(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Dark strands from the top over the forehead, down past the eyes at severity 1."""
    h, w = img.shape[:2]
    colour = rng.uniform(10, 70, size=3) * np.array([1.0, 0.85, 0.7])
    n = 40
    xs, sway = rng.uniform(-0.1, 1.1, n) * w, rng.uniform(-0.15, 0.15, n) * w
    lengths, widths = rng.uniform(0.6, 1.0, n), rng.uniform(0.01, 0.03, n) * w

    def draw(d: ImageDraw.ImageDraw) -> None:
        reach = (0.25 + 0.45 * severity) * h   # to the eyebrows at ~0.3, past the eyes at 1
        for x, s, ln, wd in zip(xs, sway, lengths, widths):
            end = reach * ln
            d.line([(x, -2), (x + s * 0.5, end * 0.5), (x + s, end)], fill=255, width=max(1, int(wd)), joint="curve")

    return _overlay(img, draw, colour, 0.95)


@_defect("hat", "occluder", "no head coverings")
def hat(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A hat: crown and brim from the top down to the eyebrows at severity 1."""
    h, w = img.shape[:2]
    colour = rng.uniform(20, 230, size=3)
    texture = rng.standard_normal((h, w, 1)).astype(np.float32) * 8.0
    tilt = rng.uniform(-0.04, 0.04) * h
    brim = (0.12 + 0.27 * severity) * h   # the brim's lower edge; eyebrows at about 0.40

    def draw(d: ImageDraw.ImageDraw) -> None:
        d.polygon([(-1, -1), (w + 1, -1), (w + 1, brim - tilt), (-1, brim + tilt)], fill=255)
        d.ellipse([-0.1 * w, brim - 0.05 * h, 1.1 * w, brim + 0.04 * h], fill=255)

    return _overlay(img, draw, colour, 1.0, texture)


@_defect("uneven_light", "illumination", "illumination uniformity")
def uneven_light(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Light from one side: the gain falls across the face from 1 to 1 - 0.8 x severity."""
    h, w = img.shape[:2]
    a = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xs / w - 0.5) * np.cos(a) + (ys / h - 0.5) * np.sin(a)) / 0.7 + 0.5   # 0 lit .. 1 dark
    gain = 1.0 - 0.8 * severity * np.clip(ramp, 0.0, 1.0)
    return _u8(img.astype(np.float32) * gain[..., None])


@_defect("colour_cast", "illumination", "natural colour")
def colour_cast(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A tint: each channel's gain moves towards a random direction, up to 1.6 / 0.6 at severity 1."""
    d = rng.standard_normal(3)
    d = d / max(np.abs(d).max(), 1e-6)
    gains = 1.0 + np.where(d > 0, 0.6, 0.4) * d * severity
    return _u8(img.astype(np.float32) * gains[None, None, :].astype(np.float32))


@_defect("clutter", "background", "background uniformity")
def clutter(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """The background outside the face oval replaced by random coloured shapes, blended by severity."""
    h, w = img.shape[:2]
    layer = Image.fromarray(_u8(rng.uniform(0, 255, size=(1, 1, 3)) * np.ones((h, w, 3))))
    d = ImageDraw.Draw(layer)
    for _ in range(24):
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * w, y0 + rng.uniform(0.05, 0.5) * h
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (d.rectangle if rng.random() < 0.5 else d.ellipse)([x0, y0, x1, y1], fill=fill)
    oval = Image.new("L", (w, h), 0)
    ImageDraw.Draw(oval).ellipse([0.17 * w, 0.12 * h, 0.83 * w, 1.02 * h], fill=255)
    keep = np.asarray(oval, np.float32)[..., None] / 255.0
    bg = np.asarray(layer, np.float32)
    a = severity * (1.0 - keep)
    return _u8(img.astype(np.float32) * (1 - a) + bg * a)


CAPTURE_DEFECTS: tuple[str, ...] = tuple(CAPTURE_FUNCS)
