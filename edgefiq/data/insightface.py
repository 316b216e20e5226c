"""insightface verification ``.bin`` files (lfw.bin, cfp_fp.bin, agedb_30.bin, ...), read safely.

Format: a pickle of ``(images, issame)`` where ``images`` is a list of encoded JPEG
(or PNG) images -- ``bytes`` in the original MXNet-era files, 1-D ``uint8`` numpy
arrays in newer ones -- and ``issame`` a list of bools; images ``2k`` and ``2k+1``
form pair ``k``.

A pickle can run arbitrary code when loaded, so these files are read only through
``SafeUnpickler``, which admits plain containers and bytes plus the few numpy
globals needed to rebuild a plain array, and rejects every other global with
``UnsafeFileError`` before anything is called. Torch-free.

Example:
    >>> images, issame = read_insightface_bin("../shared/data/insightface-bin/small_lfw.bin")  # doctest: +SKIP
    >>> len(images), len(issame)                                                             # doctest: +SKIP
    (20, 10)
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgefiq.data.images import to_rgb_array
from edgefiq.errors import BadImageError, DataError, UnsafeFileError
from edgefiq.utils import atomic_path

# (module, name) pairs the unpickler may resolve. Everything else is refused.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),   # numpy scalars (np.bool_ in issame lists): data only
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``: Python 3 protocol-2 pickles store bytes as latin-1 text."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise UnsafeFileError(f"refusing _codecs.encode with encoding {encoding!r} (only latin-1 bytes are data)")
    return text.encode("latin1")


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that only resolves ``ALLOWED_GLOBALS`` (numpy array reconstruction).

    Example:
        >>> import io, pickle
        >>> SafeUnpickler(io.BytesIO(pickle.dumps(([b"x"], [True])))).load()
        ([b'x'], [True])
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise UnsafeFileError(f"refusing to load {module}.{name}: this pickle references code, not just data "
                              "(a .bin may only hold bytes, lists, bools and numpy arrays)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError("refusing persistent ids in pickle (not an insightface .bin)")


def _safe_load(data: bytes, encoding: str) -> Any:
    return SafeUnpickler(io.BytesIO(data), encoding=encoding).load()


def load_pickle_safely(path: str | Path) -> Any:
    """Unpickle ``path`` with ``SafeUnpickler`` (retrying with ``encoding="bytes"`` for Python-2 pickles).

    Raises:
        UnsafeFileError: the pickle references any global outside ``ALLOWED_GLOBALS``.
        DataError: the file is missing or not a valid pickle.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    data = p.read_bytes()
    try:
        try:
            return _safe_load(data, "ASCII")
        except UnicodeDecodeError:  # Python-2 str objects holding JPEG bytes
            return _safe_load(data, "bytes")
    except UnsafeFileError as e:
        raise UnsafeFileError(f"{p}: {e}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError, MemoryError) as e:
        raise DataError(f"{p}: not a valid insightface .bin pickle ({type(e).__name__}: {str(e)[:100]})") from None


def _as_bytes(item: Any, where: str) -> bytes:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:  # (n,) or mxnet-style (n, 1)
        return np.ascontiguousarray(item).tobytes()
    if isinstance(item, np.ndarray) and item.dtype.kind in "iu" and item.size and \
            item.min() >= 0 and item.max() <= 255:
        return np.ascontiguousarray(item, dtype=np.uint8).tobytes()
    raise DataError(f"{where}: expected encoded image bytes or a uint8 array, got "
                    f"{type(item).__name__}{getattr(item, 'shape', '')}")


def decode_image_bytes(data: bytes, where: str) -> np.ndarray:
    """Decode encoded image bytes into an ``HxWx3`` RGB uint8 array (``BadImageError`` naming ``where``)."""
    if not data:
        raise BadImageError(where, "empty image bytes")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return to_rgb_array(ImageOps.exif_transpose(im))
    except UnidentifiedImageError:
        raise BadImageError(where, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImageError(where, f"cannot decode image ({str(e)[:100]})") from None


def read_insightface_bin(path: str | Path, decode: bool = True) -> tuple[list[Any], list[bool]]:
    """Read an insightface verification ``.bin`` safely.

    Args:
        path: the ``.bin`` file.
        decode: return decoded ``HxWx3`` RGB uint8 arrays (default) or the raw encoded bytes.

    Returns:
        ``(images, issame)``; images ``2k`` and ``2k+1`` form pair ``k``.

    Raises:
        UnsafeFileError: the pickle would call code (e.g. ``os.system``); nothing is executed.
        DataError: wrong structure (not ``(images, issame)``, counts disagree) or undecodable image.

    Example:
        >>> imgs, issame = read_insightface_bin("lfw.bin")   # doctest: +SKIP
    """
    p = Path(path)
    obj = load_pickle_safely(p)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[0], (list, tuple, np.ndarray))):
        raise DataError(f"{p}: expected a pickle of (list_of_images, list_of_issame), got {type(obj).__name__}")
    raw_images, raw_issame = obj
    try:
        issame = [bool(x) for x in (raw_issame.tolist() if isinstance(raw_issame, np.ndarray) else raw_issame)]
    except TypeError:
        raise DataError(f"{p}: issame must be a list of bools, got {type(raw_issame).__name__}") from None
    if len(raw_images) != 2 * len(issame):
        raise DataError(f"{p}: {len(raw_images)} images but {len(issame)} pairs (expected 2 images per pair)")
    blobs = [_as_bytes(item, f"{p}[image {i}]") for i, item in enumerate(raw_images)]
    if not decode:
        return blobs, issame
    return [decode_image_bytes(b, f"{p}[image {i}]") for i, b in enumerate(blobs)], issame


def write_insightface_bin(path: str | Path, images: Sequence[np.ndarray | bytes], issame: Sequence[bool],
                          *, as_numpy: bool = True, quality: int = 95) -> Path:
    """Write images (arrays are JPEG-encoded) and pair labels in the insightface ``.bin`` format.

    Example:
        >>> import numpy as np
        >>> write_insightface_bin("tiny.bin", [np.zeros((112, 112, 3), np.uint8)] * 2, [True])  # doctest: +SKIP
    """
    if len(images) != 2 * len(issame):
        raise DataError(f"write_insightface_bin: {len(images)} images for {len(issame)} pairs")
    blobs = []
    for im in images:
        if isinstance(im, np.ndarray) and im.ndim == 3:
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="JPEG", quality=quality)
            b = buf.getvalue()
        else:
            b = bytes(im)
        blobs.append(np.frombuffer(b, np.uint8).copy() if as_numpy else b)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump((blobs, [bool(x) for x in issame]), f, protocol=4)
    return Path(path)
