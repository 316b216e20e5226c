"""``face_trunk``: a quality student built from a face-recognition network's own layers.

The face-recognition model that the PreFIQs teacher perturbs has already learnt face features
from far more identities than a quality dataset holds. This student keeps MobileFaceNet's stem
and its first ``depth`` inverted-residual blocks (of 15), then a 1x1 expansion (MobileFaceNet's
own ``conv2`` at full depth), global average pooling and a one-output linear head. ``depth`` and
the input size set the compute: global pooling makes the head independent of the input size, so a
96x96 or 80x80 input works with the same weights. ``weights: face`` in a recipe loads the trunk
from the FR state dict (``edgefiq.models.weights``); the head starts random.

Example:
    >>> import torch
    >>> m = FaceTrunk(depth=8).eval()
    >>> m(torch.zeros(2, 3, 112, 112)).shape
    torch.Size([2])
"""

from __future__ import annotations

import torch
from torch import nn

from edgefiq.errors import UsageError
from edgefiq.models.mobilefacenet import MobileFaceNet
from edgefiq.registry import STUDENTS


class FaceTrunk(nn.Module):
    """MobileFaceNet stem + ``depth`` blocks (+ its ``conv2`` at depth 15) -> pooled feature -> score.

    Args:
        depth: inverted-residual blocks kept (1..15).
        head: ``linear`` or ``sigmoid`` output.
        drop_rate: dropout before the head.
    """

    def __init__(self, depth: int = 15, head: str = "linear", drop_rate: float = 0.0) -> None:
        super().__init__()
        if not 1 <= depth <= 15:
            raise UsageError(f"face_trunk depth must be 1..15 (MobileFaceNet's blocks), got {depth}")
        if head not in ("linear", "sigmoid"):
            raise UsageError(f"head must be 'linear' or 'sigmoid', got {head!r}")
        full = MobileFaceNet()
        self.trunk = nn.Module()
        self.trunk.conv1, self.trunk.dw_conv = full.conv1, full.dw_conv
        self.trunk.features = nn.Sequential(*list(full.features)[:depth])
        channels = self.trunk.features[-1].conv[2].out_channels
        if depth == 15:
            self.trunk.conv2 = full.conv2
            channels = 512
        self.depth = depth
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = nn.Linear(channels, 1)
        self.sigmoid = head == "sigmoid"

    def head_keys(self) -> list[str]:
        """State-dict keys that pretrained face weights do not provide."""
        return ["head.weight", "head.bias"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        x = t.features(t.dw_conv(t.conv1(x)))
        if self.depth == 15:
            x = t.conv2(x)
        y = self.head(self.drop(torch.flatten(self.pool(x), 1))).squeeze(1)
        return torch.sigmoid(y) if self.sigmoid else y


@STUDENTS.register("face_trunk")
def face_trunk(depth: int = 15, head: str = "linear", drop_rate: float = 0.0, **_: object) -> nn.Module:
    """MobileFaceNet trunk (``depth`` of 15 blocks) with a scalar quality head; ``weights: face``."""
    return FaceTrunk(depth=depth, head=head, drop_rate=drop_rate)
