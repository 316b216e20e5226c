"""Quality students: compact networks mapping a face crop to one quality score.

Every entry of ``STUDENTS`` is a factory ``(**kwargs) -> nn.Module`` whose forward maps a
float32 NCHW batch to a 1-D tensor of ``N`` scores. ``tiny_cnn`` is the test model (like
timm's ``test_*`` models): a few thousand parameters, for fast unit tests only.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefiq.registry import STUDENTS


class TinyCNN(nn.Module):
    """A 3-layer CNN for tests: conv-bn-relu x3, global pool, linear head."""

    def __init__(self, width: int = 8, head: str = "linear") -> None:
        super().__init__()
        c = width
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
            nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 4 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(4 * c), nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4 * c, 1)
        self.sigmoid = head == "sigmoid"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(torch.flatten(self.pool(self.features(x)), 1)).squeeze(1)
        return torch.sigmoid(y) if self.sigmoid else y


@STUDENTS.register("tiny_cnn")
def tiny_cnn(width: int = 8, head: str = "linear", **_: object) -> nn.Module:
    """Test-only student (~6k parameters)."""
    return TinyCNN(width=width, head=head)
