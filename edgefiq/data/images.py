"""Decode any image a user may hand us into an RGB uint8 array, or fail with one clear line.

Handles grayscale, palette, RGBA/LA (composited on black), CMYK, 16-bit, EXIF
orientation; rejects zero-byte, truncated, corrupt and non-image files with
``BadImageError`` naming the file. Torch-free (numpy + pillow).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgefiq.errors import BadImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


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

    p = Path(path)
    if not p.is_file():
        raise BadImageError(p, "file not found")
    if p.stat().st_size == 0:
        raise BadImageError(p, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                im.load()  # forces a full decode: truncated files fail here
                im = ImageOps.exif_transpose(im)
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


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:120]
