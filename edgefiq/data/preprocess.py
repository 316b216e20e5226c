"""The preprocessing spec every model carries, and its numpy implementation.

A ``Preprocess`` travels with checkpoints and exported artifacts (in their metadata
sidecars), so nobody passes mean/std or layouts by hand. Torch-free.

Example:
    >>> import numpy as np
    >>> pp = Preprocess(size=(112, 112))
    >>> x = pp.batch([np.zeros((112, 112, 3), np.uint8)])
    >>> x.shape, x.dtype
    ((1, 3, 112, 112), dtype('float32'))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its pixels.

    Attributes:
        size: (height, width) the image is resized to (bilinear) if it differs.
        mean, std: per-channel normalisation applied to ``x / 255``.
        channel_order: ``RGB`` or ``BGR``.
        layout: ``NCHW`` (torch) or ``NHWC`` (channel-last TFLite I/O).
    """

    size: tuple[int, int] = (112, 112)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        """Inverse of ``to_dict`` (unknown keys are ignored for forward compatibility)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**kw)

    def nchw(self) -> "Preprocess":
        """This spec with the ``NCHW`` layout (the runner contract: runners convert to their native layout).

        Example:
            >>> Preprocess(layout="NHWC").nchw().layout
            'NCHW'
        """
        return self if self.layout == "NCHW" else dataclasses.replace(self, layout="NCHW")

    def resize(self, img: np.ndarray) -> np.ndarray:
        """Resize an HxWx3 uint8 image to ``size`` (bilinear) if needed."""
        h, w = self.size
        if img.shape[:2] == (h, w):
            return img

        return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))

    def array(self, img: np.ndarray) -> np.ndarray:
        """One HxWx3 uint8 RGB image -> normalised float32 CHW (or HWC) array."""
        img = self.resize(img)
        if self.channel_order == "BGR":
            img = img[..., ::-1]
        x = img.astype(np.float32) / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x if self.layout == "NHWC" else x.transpose(2, 0, 1))

    def batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Stack preprocessed images into a float32 batch in this spec's layout."""
        return np.stack([self.array(im) for im in images]).astype(np.float32, copy=False)
