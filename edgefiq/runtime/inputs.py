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

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.data.images import load_image, to_rgb_array
from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import UsageError

log = logging.getLogger("edgefiq.score")

LAYOUTS = ("an image path, a PIL image, an (H, W, 3) uint8 RGB array, an (N, H, W, 3) uint8 batch, "
           "an (N, 3, {h}, {w}) float32 preprocessed batch, or a list of the first three")


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


def _reject(x: Any, pp: Preprocess, why: str = "") -> UsageError:
    h, w = pp.size
    return UsageError(f"cannot score {_describe(x)}{why}; pass {LAYOUTS.format(h=h, w=w)}")


def _one_image(x: Any, pp: Preprocess, sizes: "SizeCheck | None" = None, k: int = 0) -> np.ndarray:
    """One image (path, PIL image or HWC uint8 array) -> a CHW float32 array (its size noted in ``sizes``)."""
    if isinstance(x, (str, Path)) and Path(x).is_dir():
        raise UsageError(f"{x} is a folder; score the images in it with edgefiq.runtime.score_folder(None, "
                         f"{str(x)!r}, 'scores.csv') or `edgefiq score {x} -o scores.csv`")
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
    if sizes is not None:
        sizes.add(str(x) if isinstance(x, (str, Path)) else f"image {k}", img.shape[:2])
    return pp.nchw().array(img)


def to_model_batch(images: Any, preprocess: Preprocess, sizes: "SizeCheck | None" = None) -> np.ndarray:
    """Any accepted input (see the module docstring) -> a preprocessed NCHW float32 batch.

    Args:
        images: one image, a batch array, or a list of images.
        preprocess: the model's pixel convention (``QualityModel.preprocess``).
        sizes: records the size of every decoded image (not of preprocessed batches), to warn about
            inputs that are not aligned crops.

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
            return np.stack([_one_image(im, pp, sizes, k) for k, im in enumerate(images)]) if len(images) else _empty(pp)
        check_model_batch(images, pp)
        return np.ascontiguousarray(images, dtype=np.float32)
    if isinstance(images, (list, tuple)):
        return np.stack([_one_image(im, pp, sizes, k) for k, im in enumerate(images)]) if images else _empty(pp)
    return _one_image(images, pp, sizes)[None]


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


class SizeCheck:
    """Counts images whose size differs from the model input and warns once, after scoring.

    A student trained on aligned HxW face crops scores a resized 250x250 photo, a 1x1 pixel
    or an 8000x8000 picture without complaint, and the numbers mean little. This says so.
    Aligned 112x112 crops (the ArcFace template, what ``edgefiq data align`` writes) count as
    aligned for any input size: a model with a smaller input was trained on them, resized.

    Example:
        >>> sc = SizeCheck((64, 64))
        >>> sc.add("a.jpg", (250, 250)); sc.add("b.jpg", (112, 112))
        >>> sc.n_other
        1
    """

    ALIGNED = (112, 112)  # edgefiq.data.align's crop size (ARCFACE_TEMPLATE_112)

    def __init__(self, size: tuple[int, ...]) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.n_other = 0
        self.n_extreme = 0
        self.example: tuple[str, tuple[int, int]] | None = None

    def add(self, name: str, hw: tuple[int, ...]) -> None:
        """Record the (height, width) of one unaligned image."""
        h, w = int(hw[0]), int(hw[1])
        if (h, w) in (self.size, self.ALIGNED):
            return
        self.n_other += 1
        extreme = min(h, w) < self.size[0] // 4 or max(h, w) > 8 * max(self.size)
        self.n_extreme += int(extreme)
        if self.example is None or extreme:
            self.example = (name, (h, w))

    def expected(self) -> str:
        """The sizes this check accepts, as messages name them (``64x64 or 112x112``)."""
        size = f"{self.size[0]}x{self.size[1]}"
        return size if self.size == self.ALIGNED else f"{size} or 112x112"

    def message(self) -> str | None:
        """The one warning about the images that were not of the model's input size (None if all were)."""
        if not self.n_other or self.example is None:
            return None
        name, (h, w) = self.example
        extreme = f", {self.n_extreme} of them tiny or huge" if self.n_extreme else ""
        return (f"{self.n_other} image(s) are not {self.expected()} aligned face crops{extreme} (e.g. {name} is "
                f"{h}x{w}); they were resized, so their scores mean little: align them first (--detect, --landmarks "
                "or `edgefiq data align`; --strict refuses such inputs)")

    def warn(self) -> None:
        """Log one warning when any image was not of the model's input size."""
        text = self.message()
        if text:
            log.warning("warning: %s", text)
