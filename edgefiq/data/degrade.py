"""Seeded, composable image degradations with a severity in [0, 1], and degraded-set writer.

Every degradation maps an ``HxWx3`` RGB ``uint8`` image to one of the same shape.
Severity 0 is the identity; strength grows monotonically with severity (for a
fixed ``rng`` state the random parts -- noise pattern, motion angle, patch
position -- stay the same, so a severity ladder of one image is a clean ranking
chain). Scales are set for 112x112 aligned face crops and scale with image size:

==============  ================================================================
kind            severity 1 means
==============  ================================================================
gaussian_blur   Gaussian sigma 4 px (at 112 px width)
motion_blur     linear kernel 15 px long, random direction
noise           additive Gaussian noise sigma 50/255
jpeg            JPEG quality 5 (geometric from 95: 45, 22, 10, 5 at 0.25 ... 1)
downscale       down to 14 px wide (area), back up bilinearly
occlusion       a random-colour patch covering 40% of the image, anywhere on the face
exposure_under  gain 0.25, gamma 2.0 (dark, crushed shadows)
exposure_over   gain 1.9, gamma 0.6 (bright, clipped highlights)
==============  ================================================================

``KINDS`` adds the capture defects of ``edgefiq.data.capture`` (misalignment, pose, lens,
shaped occluders, lighting, background); ``FAMILY`` maps every kind to its family and
``expand_kinds`` takes kinds, families or the groups ``classic``, ``capture`` and ``all``.

Torch-free (numpy + pillow).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = np.full((112, 112, 3), 128, np.uint8)
    >>> degrade(img, "noise", 0.5, rng).shape
    (112, 112, 3)
    >>> out = compose(img, [("gaussian_blur", 0.5), ("jpeg", 0.8)], rng)
"""

from __future__ import annotations

import csv
import io
import shutil
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from edgefiq.data.capture import CAPTURE_DEFECTS, CAPTURE_FUNCS
from edgefiq.data.capture import FAMILY as CAPTURE_FAMILY
from edgefiq.data.capture import ISO_COMPONENT as CAPTURE_ISO
from edgefiq.data.images import SkipLog, check_on_bad_image, load_image
from edgefiq.data.readers import list_images
from edgefiq.errors import BadImageError, UsageError
from edgefiq.registry import suggest
from edgefiq.utils import atomic_path, atomic_write_text, progress

DegradeFn = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
_FUNCS: dict[str, DegradeFn] = {}

REF_WIDTH = 112.0  # severity scales are defined for 112-px crops and scale with width


def _register(name: str) -> Callable[[DegradeFn], DegradeFn]:
    def deco(fn: DegradeFn) -> DegradeFn:
        _FUNCS[name] = fn
        return fn

    return deco


def _scale(img: np.ndarray) -> float:
    return img.shape[1] / REF_WIDTH


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _correlate_taps(x: np.ndarray, taps: list[tuple[int, int, float]], pad: int) -> np.ndarray:
    """Sum of shifted copies of ``x`` (HxWxC float32): a small 2-D filter with reflect borders, numpy only."""
    h, w = x.shape[:2]
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.zeros_like(x)
    for dy, dx, wt in taps:
        out += np.float32(wt) * xp[pad + dy: pad + dy + h, pad + dx: pad + dx + w]
    return out


@_register("gaussian_blur")
def gaussian_blur(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur, sigma = 4 px x severity (at 112 px); separable, reflect borders."""
    sigma = 4.0 * severity * _scale(img)
    radius = max(1, min(int(np.ceil(3 * sigma)), min(img.shape[:2]) - 1))
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / max(sigma, 1e-6)) ** 2)
    k /= k.sum()
    x = _correlate_taps(img.astype(np.float32), [(0, int(d), float(v)) for d, v in zip(t, k)], radius)
    x = _correlate_taps(x, [(int(d), 0, float(v)) for d, v in zip(t, k)], radius)
    return _to_uint8(x)


@_register("motion_blur")
def motion_blur(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Linear motion blur in a random direction, length 1 + 14 px x severity (at 112 px)."""
    angle = rng.uniform(0.0, np.pi)
    length = 1.0 + 14.0 * severity * _scale(img)
    size = int(np.ceil(length)) | 1  # odd kernel
    c = size // 2
    # anti-aliased line: sample many points along the segment and splat them bilinearly
    kernel = np.zeros((size + 1, size + 1), np.float64)
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, max(2, int(length * 8)))
    xs, ys = c + t * np.cos(angle), c + t * np.sin(angle)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w)
    kernel = kernel[:size, :size]
    kernel /= kernel.sum()
    pad = min(c, min(img.shape[:2]) - 1)
    taps = [(int(y) - c, int(x) - c, float(kernel[y, x])) for y, x in zip(*np.nonzero(kernel > 1e-6))
            if abs(int(y) - c) <= pad and abs(int(x) - c) <= pad]
    return _to_uint8(_correlate_taps(img.astype(np.float32), taps, max(pad, 1)))


@_register("noise")
def noise(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise with sigma = 50/255 x severity (per pixel and channel)."""
    sigma = 50.0 * severity
    n = rng.standard_normal(img.shape).astype(np.float32)
    return _to_uint8(img.astype(np.float32) + sigma * n)


@_register("jpeg")
def jpeg(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG re-encoding at quality 95 x (5/95)^severity: 95 -> 5, evenly spaced in perceived damage."""
    quality = max(1, int(round(95 * (5 / 95) ** severity)))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


@_register("downscale")
def downscale(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Down-then-up scaling; width shrinks geometrically to 1/8 (112 -> 14 px) at severity 1."""
    h, w = img.shape[:2]
    factor = (1.0 / 8.0) ** severity
    sw, sh = max(2, int(round(w * factor))), max(2, int(round(h * factor)))
    if (sw, sh) == (w, h):
        return img.copy()
    small = Image.fromarray(img).resize((sw, sh), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BILINEAR), dtype=np.uint8).copy()


@_register("occlusion")
def occlusion(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """A random-colour, lightly textured rectangle covering 40% x severity of the image.

    Its centre falls anywhere in the face region (eyes, nose or mouth band), so it
    hides the eyes in a good share of draws, as sunglasses, hands or masks do.
    """
    h, w = img.shape[:2]
    # random parts first, so they do not depend on severity (monotone ladders)
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))  # width / height
    cy = rng.uniform(0.30, 0.85) * h
    cx = rng.uniform(0.20, 0.80) * w
    colour = rng.uniform(0, 255, size=3)
    texture = rng.standard_normal((h, w, 1)).astype(np.float32) * 12.0
    area = 0.40 * severity * h * w
    ph = min(h, np.sqrt(area / aspect))
    pw = min(w, area / max(ph, 1e-6))
    if pw >= w:
        ph = min(h, area / w)
    y0 = int(round(np.clip(cy - ph / 2, 0, h - ph)))
    x0 = int(round(np.clip(cx - pw / 2, 0, w - pw)))
    y1, x1 = y0 + int(round(ph)), x0 + int(round(pw))
    out = img.copy()
    if y1 > y0 and x1 > x0:
        patch = colour[None, None, :] + texture[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = _to_uint8(patch)
    return out


@_register("exposure_under")
def exposure_under(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Under-exposure: gain 1 -> 0.25 and gamma 1 -> 2.0 (darker, crushed shadows)."""
    x = img.astype(np.float32) / 255.0
    gain, gamma = 1.0 - 0.75 * severity, 1.0 + 1.0 * severity
    return _to_uint8(255.0 * gain * np.power(x, gamma))


@_register("exposure_over")
def exposure_over(img: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Over-exposure: gain 1 -> 1.9 and gamma 1 -> 0.6 (brighter, clipped highlights)."""
    x = img.astype(np.float32) / 255.0
    gain, gamma = 1.0 + 0.9 * severity, 1.0 / (1.0 + 0.7 * severity)
    return _to_uint8(255.0 * np.minimum(1.0, gain * np.power(x, gamma)))


DEGRADATIONS: tuple[str, ...] = tuple(_FUNCS)  # the classic pixel degradations: the default set
_FUNCS.update(CAPTURE_FUNCS)
KINDS: tuple[str, ...] = tuple(_FUNCS)  # classic + capture defects (edgefiq.data.capture); order fixes seeds
FAMILY: dict[str, str] = {"gaussian_blur": "blur", "motion_blur": "blur", "noise": "noise", "jpeg": "compression",
                          "downscale": "resolution", "occlusion": "occlusion", "exposure_under": "exposure",
                          "exposure_over": "exposure", **CAPTURE_FAMILY}
ISO_COMPONENT: dict[str, str] = {"gaussian_blur": "sharpness", "motion_blur": "sharpness", "noise": "",
                                 "jpeg": "no compression artifacts", "downscale": "sharpness",
                                 "occlusion": "face occlusion prevention", "exposure_under": "under-exposure prevention",
                                 "exposure_over": "over-exposure prevention", **CAPTURE_ISO}  # ISO/IEC 29794-5
KIND_GROUPS: dict[str, tuple[str, ...]] = {"classic": DEGRADATIONS, "capture": CAPTURE_DEFECTS, "all": KINDS}


def family_of(kind: str) -> str:
    """The family of a degradation kind (``clean`` for clean images), e.g. ``family_of("yaw") == "pose"``."""
    return "clean" if kind == "clean" else FAMILY[check_kind(kind)]


def expand_kinds(names: Iterable[str]) -> list[str]:
    """Kinds named directly, by family (``blur``, ``occluder``) or group (``classic``, ``capture``, ``all``).

    Example:
        >>> expand_kinds(["noise", "pose"])
        ['noise', 'yaw', 'pitch']
    """
    out: list[str] = []
    for name in names:
        group = KIND_GROUPS.get(name) or tuple(k for k in KINDS if FAMILY[k] == name) or (check_kind(name),)
        out += [k for k in group if k not in out]
    return out


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a known degradation, else raise ``UsageError`` with a suggestion."""
    if kind not in _FUNCS:
        choices = (*KINDS, *sorted(set(FAMILY.values())), *KIND_GROUPS)
        raise UsageError(f"unknown degradation {kind!r}{suggest(kind, choices)}")
    return kind


def degrade(img: np.ndarray, kind: str, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Apply one degradation ``kind`` at ``severity`` in [0, 1] to an RGB uint8 image.

    Args:
        img: ``HxWx3`` uint8 RGB image (not modified).
        kind: one of ``KINDS``.
        severity: 0 = identity (a copy), 1 = strongest.
        rng: numpy Generator driving the random parts (angle, noise, patch position).

    Returns:
        The degraded ``HxWx3`` uint8 image.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((112, 112, 3), np.uint8)
        >>> degrade(img, "jpeg", 1.0, np.random.default_rng(0)).dtype
        dtype('uint8')
    """
    fn = _FUNCS[check_kind(kind)]
    severity = float(severity)
    if not 0.0 <= severity <= 1.0 or not np.isfinite(severity):
        raise UsageError(f"degradation severity must be in [0, 1], got {severity}")
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise UsageError(f"degrade expects an HxWx3 uint8 image, got shape {img.shape} dtype {img.dtype}")
    if severity == 0.0:
        return img.copy()
    return fn(img, severity, rng)


def compose(img: np.ndarray, steps: Iterable[tuple[str, float]], rng: np.random.Generator) -> np.ndarray:
    """Apply several ``(kind, severity)`` degradations in order.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((64, 64, 3), np.uint8)
        >>> compose(img, [("downscale", 0.5), ("noise", 0.3)], np.random.default_rng(1)).shape
        (64, 64, 3)
    """
    out = img
    for kind, sev in steps:
        out = degrade(out, kind, sev, rng)
    return out if out is not img else img.copy()


class RandomDegradation:
    """A training-time transform: with probability ``p`` apply 1..``max_ops`` random degradations.

    Plugs into ``FaceDataset(transform=...)`` (it maps uint8 HWC -> uint8 HWC).
    Each call draws from its own Generator; in multi-worker data loading give each
    worker a different stream with ``reseed(...)`` (``edgefiq.data.dataset.worker_init_fn`` does it).

    Example:
        >>> import numpy as np
        >>> aug = RandomDegradation(p=1.0, seed=0)
        >>> aug(np.zeros((112, 112, 3), np.uint8)).shape
        (112, 112, 3)
    """

    def __init__(self, kinds: Sequence[str] = DEGRADATIONS, p: float = 0.5,
                 severity: tuple[float, float] = (0.0, 1.0), max_ops: int = 1, seed: int = 0) -> None:
        self.kinds = tuple(expand_kinds(kinds))
        if not self.kinds:
            raise UsageError("RandomDegradation needs at least one kind")
        self.p, self.severity, self.max_ops, self.seed = float(p), severity, max(1, int(max_ops)), seed
        self.rng = np.random.default_rng(seed)

    def reseed(self, stream: int) -> None:
        """Switch to random stream ``stream`` (e.g. a data-loader worker's seed) derived from ``seed``."""
        self.rng = np.random.default_rng([self.seed, int(stream) % 2**32])

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.rng.random() >= self.p:
            return img
        n = int(self.rng.integers(1, min(self.max_ops, len(self.kinds)) + 1))
        kinds = self.rng.choice(len(self.kinds), size=n, replace=False)
        lo, hi = self.severity
        return compose(img, [(self.kinds[k], float(self.rng.uniform(lo, hi))) for k in kinds], self.rng)


# ----------------------------------------------------------------------------- degraded sets


def _image_seed(seed: int, relpath: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(relpath.encode()), *extra])


def degraded_name(stem: str, kind: str, severity: float) -> str:
    """File name of a degraded copy: ``<stem>__<kind>_<severity:.2f>.jpg``."""
    return f"{stem}__{kind}_{severity:.2f}.jpg"


def _jittered(sevs: list[float], jitter: float, rng: np.random.Generator) -> list[float]:
    """``sevs`` moved by seeded offsets in [-jitter, jitter], clipped to [0.01, 1], rounded to 0.01."""
    if not jitter:
        return sevs
    return [round(float(np.clip(s + rng.uniform(-jitter, jitter), 0.01, 1.0)), 2) for s in sevs]


def _checked_settings(kinds: Sequence[str], severities: Sequence[float], fraction: float, per_image: int,
                      jitter: float) -> tuple[list[str], list[float]]:
    """Validated degradation kinds and sorted unique severities (one-line ``UsageError`` otherwise)."""
    checked = expand_kinds(kinds)
    sevs = sorted({float(s) for s in severities})
    if not checked:
        raise UsageError("make_degraded_set: no degradation kinds given")
    if not sevs or any(not 0.0 < s <= 1.0 for s in sevs):
        raise UsageError(f"severities must be in (0, 1], got {list(severities)}")
    if not 0.0 <= fraction <= 1.0:
        raise UsageError(f"fraction must be in [0, 1], got {fraction}")
    if per_image < 0:
        raise UsageError(f"per_image must be >= 0, got {per_image}")
    if not 0.0 <= jitter < 1.0:
        raise UsageError(f"jitter must be in [0, 1), got {jitter}")
    return checked, sevs


def _planned_copies(rel: str, out_dir: Path, kinds: list[str], sevs: list[float], n_kinds: int, fraction: float,
                    jitter: float, seed: int) -> list[tuple[str, float, Path]]:
    """``(kind, severity, output path)`` of every degraded copy of the source image ``rel`` (seeded per image)."""
    stem = Path(rel).stem
    select_rng = _image_seed(seed, rel)
    chosen = select_rng.random() < fraction
    picked = [kinds[i] for i in sorted(select_rng.choice(len(kinds), size=n_kinds, replace=False))] if chosen else []
    return [(k, s, out_dir / degraded_name(stem, k, s))
            for k in picked for s in _jittered(sevs, jitter, _image_seed(seed, rel, 100 + KINDS.index(k)))]


def _write_degraded(img: np.ndarray, out: Path, kind: str, severity: float, kind_rng: np.random.Generator,
                    quality: int) -> None:
    """Degrade ``img`` (``kind_rng`` has the same state for every severity of a kind) and save it as JPEG atomically."""
    with atomic_path(out) as tmp:
        Image.fromarray(degrade(img, kind, severity, kind_rng)).save(tmp, format="JPEG", quality=quality)


def _checked_roots(src_root: str | Path, out_root: str | Path) -> tuple[Path, Path]:
    """The source and output roots; the output must not lie inside the source."""
    src, out = Path(src_root), Path(out_root)
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise UsageError(f"output {out} must not be inside the source folder {src}")
    return src, out


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` byte for byte to ``dst`` (temp file + rename)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _write_index(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """The ``path,source,kind,severity`` index of a degraded set, written atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "source", "kind", "severity"])
    w.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def make_degraded_set(src_root: str | Path, out_root: str | Path, *, kinds: Sequence[str] = DEGRADATIONS,
                      severities: Sequence[float] = (0.25, 0.5, 0.75, 1.0), per_image: int = 1,
                      fraction: float = 1.0, seed: int = 0, include_clean: bool = True,
                      on_bad_image: str = "error", quality: int = 95, jitter: float = 0.0) -> Path:
    """Write degraded copies of every image under ``src_root``, mirroring its identity tree.

    For each selected source image (a ``fraction`` of them, chosen by seed),
    ``per_image`` distinct kinds are drawn (0 = all kinds) and each is rendered at
    every severity with the same random state, giving a monotone severity ladder:
    ``out_root/<Identity>/<stem>__<kind>_<sev>.jpg``. Clean images are copied
    byte-for-byte as ``<stem><suffix>`` (kind ``clean``, severity 0). The run is
    deterministic given ``seed`` and resumable (existing outputs are kept).

    Args:
        src_root: images root (an identity tree or a flat folder).
        out_root: output root, created if needed.
        kinds: degradation kinds to draw from.
        severities: severities in (0, 1] rendered for each drawn kind.
        per_image: number of kinds per image (0 = every kind).
        fraction: share of source images that get degraded copies (all get clean copies).
        seed: random seed.
        include_clean: also copy the clean images and list them in the index.
        on_bad_image: ``error`` (stop with the file named) or ``skip`` (list it in ``skipped.txt``).
        quality: JPEG quality used to store degraded copies.
        jitter: each rendered severity moves by a seeded uniform offset in [-jitter, +jitter]
            (clipped to [0.01, 1], rounded to 0.01), per image and kind, so labels derived from
            severity are (nearly) continuous instead of a few tied levels. Keep it below half the
            spacing of ``severities`` to keep every ladder monotone.

    Returns:
        Path of ``out_root/index.csv`` with columns ``path,source,kind,severity``
        (``path`` relative to ``out_root``, ``source`` relative to ``src_root``).

    Example:
        >>> make_degraded_set("faces/", "faces-degraded/", kinds=["gaussian_blur", "jpeg"],
        ...                   severities=(0.5, 1.0), seed=0)   # doctest: +SKIP
        PosixPath('faces-degraded/index.csv')
    """
    check_on_bad_image(on_bad_image)
    kinds, sevs = _checked_settings(kinds, severities, fraction, per_image, jitter)
    n_kinds = len(kinds) if per_image == 0 else min(per_image, len(kinds))

    src_root, out_root = _checked_roots(src_root, out_root)
    paths = list_images(src_root)
    out_root.mkdir(parents=True, exist_ok=True)
    skips = SkipLog()
    rows: list[tuple[str, str, str, str]] = []
    for p in progress(paths, desc="degrade", unit="img"):
        rel = p.relative_to(src_root).as_posix()
        parent, stem = Path(rel).parent, Path(rel).stem
        planned = _planned_copies(rel, out_root / parent, kinds, sevs, n_kinds, fraction, jitter, seed)
        todo = [t for t in planned if not t[2].exists()]
        clean_out = out_root / parent / (stem + p.suffix.lower())
        need_clean = include_clean and not clean_out.exists()
        img = None
        if todo or need_clean:
            try:
                img = load_image(p)  # validates the source even when only copying it
            except BadImageError as e:
                skips.handle(e, on_bad_image)
                continue
        if need_clean:
            _copy_atomic(p, clean_out)
        if include_clean:
            rows.append(((parent / clean_out.name).as_posix(), rel, "clean", "0"))
        for k, s, out in planned:
            if not out.exists():
                assert img is not None
                _write_degraded(img, out, k, s, _image_seed(seed, rel, 1 + KINDS.index(k)), quality)
            rows.append(((parent / out.name).as_posix(), rel, k, f"{s:g}"))
    if not rows:
        raise BadImageError(src_root, "no readable images to degrade") if len(skips) else UsageError(
            "nothing to write: include_clean is off and fraction selected no images")
    index = _write_index(out_root / "index.csv", rows)
    skips.write(out_root)
    return index
