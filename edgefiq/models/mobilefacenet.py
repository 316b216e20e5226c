"""MobileFaceNet (MobileNetV2-style, 128-d embedding) matching the shared ``mobilefacenet.pt`` layout.

The layout (``conv1``, ``dw_conv``, ``features.0..14`` inverted residuals, ``conv2``,
``gdconv``, ``conv3``, ``bn``) and the activations (ReLU6 everywhere except ReLU in
``dw_conv``) were read off the reference ONNX export, against which the module is tested
(max abs embedding difference < 1e-4).

Example:
    >>> import torch
    >>> m = MobileFaceNet().eval()
    >>> m(torch.zeros(2, 3, 112, 112)).shape
    torch.Size([2, 128])
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s) as in the MobileFaceNet paper.
BOTTLENECK_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
)


def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU (keys: depthwise, pointwise, bn1, bn2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.depthwise(x)))
        return self.relu(self.bn2(self.pointwise(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expand, 3x3 depthwise, 1x1 linear projection (+ identity if shapes allow)."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            _conv_bn_relu6(cin, hidden, 1, 1),
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y


class GlobalDepthwise(nn.Module):
    """7x7 global depthwise convolution + BN (keys: depthwise, bn)."""

    def __init__(self, channels: int, kernel: int = 7) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.depthwise(x))


class MobileFaceNet(nn.Module):
    """MobileFaceNet for 112x112 aligned faces; ``forward`` returns the raw (un-normalised) embedding.

    ``features_pre_head(x)`` returns the 512-d pooled feature before the embedding layers
    (``conv3`` + ``bn``) and ``head(f)`` maps it to the embedding: SER-FIQ applies dropout between the two.
    """

    embedding_size: int

    def __init__(self, embedding_size: int = 128) -> None:
        super().__init__()
        self.embedding_size = embedding_size
        self.conv1 = _conv_bn_relu6(3, 64, 3, 2)
        self.dw_conv = DepthwiseSeparable(64)
        layers: list[nn.Module] = []
        cin = 64
        for t, c, n, s in BOTTLENECK_SETTING:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = nn.Sequential(*layers)
        self.conv2 = _conv_bn_relu6(cin, 512, 1, 1)
        self.gdconv = GlobalDepthwise(512)
        self.conv3 = nn.Conv2d(512, embedding_size, 1, bias=True)
        self.bn = nn.BatchNorm2d(embedding_size)

    def features_pre_head(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch -> ``[N, 512, 1, 1]`` globally pooled feature (input of the embedding head)."""
        x = self.dw_conv(self.conv1(x))
        x = self.features(x)
        return self.gdconv(self.conv2(x))

    def head(self, f: torch.Tensor) -> torch.Tensor:
        """Pooled feature -> ``[N, embedding_size]`` raw embedding."""
        return self.bn(self.conv3(f)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features_pre_head(x))
