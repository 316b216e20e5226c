"""What ``QualityModel.score`` accepts, turned into the runner contract (NCHW float32, preprocessed).

One function, :func:`to_model_batch`, reads every documented input form and rejects the
rest with a one-line ``UsageError`` that names the accepted layouts. The accepted forms:

=====================================  ==============================================
input                                  meaning
=====================================  ==============================================
``str`` / ``Path``                     one image file (decoded to RGB, EXIF-rotated)
``PIL.Image.Image``                    one image (converted to RGB)
``ndarray`` ``(H, W, 3)`` ``uint8``    one RGB image
``ndarray`` ``(N, H, W, 3)`` ``uint8`` a batch of RGB images (NHWC)
``ndarray`` ``(N, 3, h, w)`` float32   an already preprocessed batch (NCHW, the model's
                                       mean/std and input size ``h x w``)
list / tuple of the first four         one score per element
=====================================  ==============================================

Images of another size are resized to the model input; they should be aligned face crops.
Torch-free: numpy and pillow only.

Example:
    >>> from edgefiq.data.preprocess import Preprocess
    >>> to_model_batch(np.zeros((2, 112, 112, 3), np.uint8), Preprocess(size=(112, 112))).shape
    (2, 3, 112, 112)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import UsageError

LAYOUTS = ("an image path, a PIL image, an (H, W, 3) uint8 RGB array, an (N, H, W, 3) uint8 batch, "
           "an (N, 3, {h}, {w}) float32 preprocessed batch, or a list of the first three")


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


def _reject(x: Any, pp: Preprocess, why: str = "") -> UsageError:
    h, w = pp.size
    return UsageError(f"cannot score {_describe(x)}{why}; pass {LAYOUTS.format(h=h, w=w)}")


def _one_image(x: Any, pp: Preprocess) -> np.ndarray:
    """One image (path, PIL image or HWC uint8 array) -> a CHW float32 array."""
    from edgefiq.data.images import load_image, to_rgb_array

    if isinstance(x, (str, Path)):
        img = load_image(x)
    elif type(x).__module__.startswith("PIL.") and hasattr(x, "convert"):
        img = to_rgb_array(x)
    elif isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[-1] == 3 and x.dtype == np.uint8:
        img = x
    elif isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[0] == 3:
        raise _reject(x, pp, " (channels first?)")
    elif isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[-1] == 3:
        raise _reject(x, pp, " (images are uint8 0-255)")
    else:
        raise _reject(x, pp)
    if min(img.shape[:2]) < 1:
        raise _reject(x, pp, " (empty image)")
    return pp.nchw().array(img)


def to_model_batch(images: Any, preprocess: Preprocess) -> np.ndarray:
    """Any accepted input (see the module docstring) -> a preprocessed NCHW float32 batch.

    Args:
        images: one image, a batch array, or a list of images.
        preprocess: the model's pixel convention (``QualityModel.preprocess``).

    Returns:
        ``(N, 3, h, w)`` float32, ready for ``QualityModel.score_batch``.

    Raises:
        UsageError: an unsupported type, shape or dtype (names what is accepted).
        BadImageError: an image file that cannot be read.

    Example:
        >>> to_model_batch(np.zeros((112, 112, 3), np.uint8), Preprocess(size=(112, 112))).shape
        (1, 3, 112, 112)
    """
    pp = preprocess
    if isinstance(images, np.ndarray) and images.ndim == 4:
        if images.dtype == np.uint8 and images.shape[-1] == 3:
            return np.stack([_one_image(im, pp) for im in images]) if len(images) else _empty(pp)
        check_model_batch(images, pp)
        return np.ascontiguousarray(images, dtype=np.float32)
    if isinstance(images, (list, tuple)):
        return np.stack([_one_image(im, pp) for im in images]) if images else _empty(pp)
    return _one_image(images, pp)[None]


def check_model_batch(batch: Any, preprocess: Preprocess) -> None:
    """Raise ``UsageError`` unless ``batch`` is a preprocessed ``(N, 3, h, w)`` float32 array.

    Example:
        >>> check_model_batch(np.zeros((1, 112, 112, 3), np.uint8), Preprocess(size=(112, 112)))
        Traceback (most recent call last):
        ...
        edgefiq.errors.UsageError: cannot score an array of shape (1, 112, 112, 3) and dtype uint8 as a \
preprocessed batch; score_batch takes (N, 3, 112, 112) float32 (use QualityModel.score for images)
    """
    h, w = preprocess.size
    ok = (isinstance(batch, np.ndarray) and batch.ndim == 4 and batch.dtype in (np.float32, np.float64)
          and tuple(batch.shape[1:]) == (3, h, w))
    if not ok:
        raise UsageError(f"cannot score {_describe(batch)} as a preprocessed batch; score_batch takes "
                         f"(N, 3, {h}, {w}) float32 (use QualityModel.score for images)")


def _empty(pp: Preprocess) -> np.ndarray:
    h, w = pp.size
    return np.zeros((0, 3, h, w), np.float32)

