"""``face_trunk``: a quality student built from a face-recognition network's own layers.

The face-recognition model that the PreFIQs teacher perturbs has already learnt face features
from far more identities than a quality dataset holds. This student keeps MobileFaceNet's stem
and its first ``depth`` inverted-residual blocks (of 15), then a 1x1 expansion (MobileFaceNet's
own ``conv2`` at full depth), global average pooling and a one-output linear head. ``depth`` and
the input size set the compute: global pooling makes the head independent of the input size, so a
96x96 or 80x80 input works with the same weights. ``weights: face`` in a recipe loads the trunk
from the FR state dict (``edgefiq.models.weights``); the head starts random.

``feature: embedding`` keeps the rest of the FR network too (its global depthwise conv and the
128-d embedding layer) and scores from the unit embedding and the log of its norm. The norm is
much of what FR-based teachers rank by on clean photos (the ``norm`` teacher agrees with the
PreFIQs + SER-FIQ + norm ensemble at SRCC 0.90 there, ``results/clean-agreement/``). It costs the
FR model's own input (112x112, the 7x7 global depthwise kernel) and depth 15: about one FR pass.
Measured on recipes/lfw-capture.yaml, it did not beat average pooling at 112x112 (clean-photo
SRCC with the teacher 0.718 against 0.733, ``results/lfw-capture-112e/``).

Example:
    >>> import torch
    >>> m = FaceTrunk(depth=8).eval()
    >>> m(torch.zeros(2, 3, 112, 112)).shape
    torch.Size([2])
    >>> FaceTrunk(feature="embedding").eval()(torch.zeros(1, 3, 112, 112)).shape
    torch.Size([1])
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
        feature: ``pooled`` (global average pooling) or ``embedding`` (the FR network's own
            embedding layers; needs depth 15 and a 112x112 input).
    """

    def __init__(self, depth: int = 15, head: str = "linear", drop_rate: float = 0.0,
                 feature: str = "pooled") -> None:
        super().__init__()
        if not 1 <= depth <= 15:
            raise UsageError(f"face_trunk depth must be 1..15 (MobileFaceNet's blocks), got {depth}")
        if head not in ("linear", "sigmoid"):
            raise UsageError(f"head must be 'linear' or 'sigmoid', got {head!r}")
        if feature not in ("pooled", "embedding"):
            raise UsageError(f"feature must be 'pooled' or 'embedding', got {feature!r}")
        if feature == "embedding" and depth != 15:
            raise UsageError(f"feature 'embedding' needs the whole trunk (depth 15), got depth {depth}")
        full = MobileFaceNet()
        self.trunk = nn.Module()
        self.trunk.conv1, self.trunk.dw_conv = full.conv1, full.dw_conv
        self.trunk.features = nn.Sequential(*list(full.features)[:depth])
        channels = self.trunk.features[-1].conv[2].out_channels
        if depth == 15:
            self.trunk.conv2 = full.conv2
            channels = 512
        self.depth = depth
        self.feature = feature
        if feature == "embedding":
            self.trunk.gdconv, self.trunk.conv3, self.trunk.bn = full.gdconv, full.conv3, full.bn
            channels = full.embedding_size + 1      # the unit embedding and log ||embedding||
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
        if self.feature == "embedding":
            if tuple(x.shape[-2:]) != (7, 7):
                raise UsageError(f"feature 'embedding' needs a 112x112 input (a 7x7 map for the global "
                                 f"depthwise conv), got a {x.shape[-2]}x{x.shape[-1]} map")
            e = t.bn(t.conv3(t.gdconv(x))).flatten(1)
            norm = torch.linalg.vector_norm(e, dim=1, keepdim=True).clamp_min(1e-6)
            f = torch.cat([e / norm, torch.log(norm)], dim=1)
        else:
            f = torch.flatten(self.pool(x), 1)
        y = self.head(self.drop(f)).squeeze(1)
        return torch.sigmoid(y) if self.sigmoid else y


@STUDENTS.register("face_trunk")
def face_trunk(depth: int = 15, head: str = "linear", drop_rate: float = 0.0, feature: str = "pooled",
               **_: object) -> nn.Module:
    """MobileFaceNet trunk (``depth`` of 15 blocks) with a scalar quality head; ``weights: face``."""
    return FaceTrunk(depth=depth, head=head, drop_rate=drop_rate, feature=feature)
