"""Decode any image a user may hand us into an RGB uint8 array, or fail with one clear line.

Handles grayscale, palette, RGBA/LA (composited on black), CMYK, 16-bit, EXIF
orientation; rejects zero-byte, truncated, corrupt and non-image files with
``BadImageError`` naming the file. Torch-free (numpy + pillow).

Bad-image policy (use it in every verb that reads images)::

    from edgefiq.data.images import SkipLog, load_or_skip, read_images, check_on_bad_image

    check_on_bad_image(on_bad_image)          # "error" | "skip", else UsageError
    skips = SkipLog()
    for i, path, img in read_images(paths, on_bad_image, skips):
        ...                                   # img: HxWx3 RGB uint8; bad files are skipped
    skips.write(out_dir)                      # writes out_dir/skipped.txt if anything was skipped

- ``on_bad_image="error"`` (default): the first bad file raises ``BadImageError``
  (a ``DataError``: the CLI prints ``Error: <path>: <reason>`` and exits 1).
- ``on_bad_image="skip"``: bad files are recorded in the ``SkipLog`` (path + reason)
  and left out; ``SkipLog.write(dir)`` writes ``dir/skipped.txt`` (``path<TAB>reason``
  lines) and returns its path, or ``None`` when nothing was skipped.
- ``load_or_skip(path, on_bad_image, skips)`` is the one-image form (returns ``None``
  when skipped); ``SkipLog.handle(err, on_bad_image)`` applies the policy to a
  ``BadImageError`` you caught yourself.
- ``image_info(path, verify=False)`` reads only the header (size, mode, format) for
  fast inspection; ``verify=True`` decodes fully.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from edgefiq.errors import BadImageError, UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ON_BAD_IMAGE = ("error", "skip")
SKIPPED_FILE = "skipped.txt"


def is_image_name(path: str | Path) -> bool:
    """True if ``path`` has an image file extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def load_image(path: str | Path) -> np.ndarray:
    """Read ``path`` as an ``HxWx3`` RGB ``uint8`` array with EXIF orientation applied.

    Raises:
        BadImageError: the file is missing, empty, truncated, corrupt or not an image.

    Example:
        >>> img = load_image("face.jpg")   # doctest: +SKIP
        >>> img.shape, img.dtype           # doctest: +SKIP
        ((112, 112, 3), dtype('uint8'))
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = _existing_nonempty(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                im.load()  # forces a full decode: truncated files fail here
                try:
                    im = ImageOps.exif_transpose(im)
                except Exception:  # noqa: BLE001 - malformed EXIF: keep the stored orientation
                    pass
                return to_rgb_array(im)
    except UnidentifiedImageError:
        raise BadImageError(p, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise BadImageError(p, f"cannot decode image ({_short(e)})") from None


def to_rgb_array(im: "object") -> np.ndarray:
    """Convert an opened PIL image of any mode to an ``HxWx3`` RGB uint8 array."""
    from PIL import Image

    assert isinstance(im, Image.Image)
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr8[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr8 = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr8[..., None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        im = Image.alpha_composite(background, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return np.asarray(im, dtype=np.uint8).copy()


def _existing_nonempty(path: str | Path) -> Path:
    """``path`` as a Path, or ``BadImageError`` if it is missing or has zero bytes."""
    p = Path(path)
    if not p.is_file():
        raise BadImageError(p, "file not found")
    if p.stat().st_size == 0:
        raise BadImageError(p, "empty file (0 bytes)")
    return p


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:120]


# ----------------------------------------------------------------------------- bad-image policy


def check_on_bad_image(value: str) -> str:
    """Validate an ``on_bad_image`` policy value (``error`` or ``skip``)."""
    if value not in ON_BAD_IMAGE:
        raise UsageError(f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}, got {value!r}")
    return value


@dataclass
class SkipLog:
    """Records images skipped under ``on_bad_image="skip"``; writes them to ``skipped.txt``.

    Example:
        >>> log = SkipLog()
        >>> log.add("a/b.jpg", "empty file (0 bytes)")
        >>> len(log)
        1
    """

    entries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str | Path, reason: str) -> None:
        """Record one skipped file and why."""
        self.entries.append((str(path), reason))

    def handle(self, err: BadImageError, on_bad_image: str) -> None:
        """Apply the policy to a caught ``BadImageError``: re-raise (``error``) or record (``skip``)."""
        if check_on_bad_image(on_bad_image) == "error":
            raise err
        self.add(err.path, err.reason)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def paths(self) -> list[str]:
        """The skipped paths, in the order they were met."""
        return [p for p, _ in self.entries]

    def write(self, out_dir: str | Path) -> Path | None:
        """Write ``out_dir/skipped.txt`` (``path<TAB>reason`` per line) if anything was skipped."""
        if not self.entries:
            return None
        from edgefiq.utils import atomic_write_text

        return atomic_write_text(Path(out_dir) / SKIPPED_FILE, "".join(f"{p}\t{r}\n" for p, r in self.entries))


def load_or_skip(path: str | Path, on_bad_image: str = "error", skips: SkipLog | None = None) -> np.ndarray | None:
    """``load_image`` under a bad-image policy: returns ``None`` (and records it) when skipped.

    Example:
        >>> img = load_or_skip("maybe_broken.jpg", "skip", SkipLog())   # doctest: +SKIP
    """
    try:
        return load_image(path)
    except BadImageError as e:
        (skips if skips is not None else SkipLog()).handle(e, on_bad_image)
        return None


def read_images(paths: Iterable[str | Path], on_bad_image: str = "error",
                skips: SkipLog | None = None) -> Iterator[tuple[int, Path, np.ndarray]]:
    """Yield ``(index, path, image)`` for each readable image; bad ones raise or are skipped.

    ``index`` is the position in ``paths``, so callers can keep labels aligned.

    Example:
        >>> skips = SkipLog()
        >>> for i, p, img in read_images(["a.jpg", "b.png"], "skip", skips):   # doctest: +SKIP
        ...     pass
    """
    check_on_bad_image(on_bad_image)
    for i, p in enumerate(paths):
        img = load_or_skip(p, on_bad_image, skips)
        if img is not None:
            yield i, Path(p), img


@dataclass(frozen=True)
class ImageInfo:
    """Header facts about one image file."""

    width: int
    height: int
    mode: str
    format: str


def image_info(path: str | Path, verify: bool = False) -> ImageInfo:
    """Read an image's size, mode and format from its header (fast); ``verify=True`` decodes fully.

    Raises:
        BadImageError: missing, empty, unrecognised, or (with ``verify``) undecodable.

    Example:
        >>> image_info("face.jpg")   # doctest: +SKIP
        ImageInfo(width=112, height=112, mode='RGB', format='JPEG')
    """
    from PIL import Image, UnidentifiedImageError

    p = _existing_nonempty(path)
    try:
        with Image.open(p) as im:
            info = ImageInfo(im.width, im.height, im.mode, im.format or "?")
    except UnidentifiedImageError:
        raise BadImageError(p, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImageError(p, f"cannot read image header ({_short(e)})") from None
    if verify:
        load_image(p)
    return info
