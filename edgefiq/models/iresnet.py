"""IResNet-18/34/50/100 in the insightface ``arcface_torch`` state-dict layout.

Users bring ArcFace / AdaFace / MagFace / ElasticFace / CurricularFace weights saved from
``arcface_torch.backbones.iresnet``: the module names here (``conv1``, ``bn1``, ``prelu``,
``layer1..4`` of ``IBasicBlock`` with ``bn1, conv1, bn2, prelu, conv2, bn3, downsample``,
``bn2``, ``dropout``, ``fc``, ``features``) match that layout key for key, so
``load_state_dict(strict=True)`` works on such files.

Example:
    >>> import torch
    >>> m = iresnet18().eval()
    >>> m(torch.zeros(1, 3, 112, 112)).shape
    torch.Size([1, 512])
"""

from __future__ import annotations

import torch
from torch import nn

IRESNET_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
}


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: BN, 3x3 conv, BN, PReLU, 3x3 conv (stride), BN, + shortcut."""

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """IResNet backbone; ``forward`` returns the raw ``num_features``-d embedding (``features`` BN output).

    ``features_pre_head(x)`` returns the flattened ``bn2`` output (the input of ``dropout`` + ``fc``)
    and ``head(f)`` applies ``fc`` and ``features``: SER-FIQ applies its dropout between the two.
    """

    fc_scale = 7 * 7

    def __init__(self, layers: tuple[int, int, int, int], dropout: float = 0.0, num_features: int = 512) -> None:
        super().__init__()
        self.embedding_size = num_features
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
            blocks: list[nn.Module] = [IBasicBlock(cin, planes, 2, downsample)]
            blocks += [IBasicBlock(planes, planes) for _ in range(1, n)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.fc = nn.Linear(512 * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def features_pre_head(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch -> ``[N, 512*7*7]`` flattened feature (input of the embedding head)."""
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # type: ignore[operator]
        return torch.flatten(self.bn2(x), 1)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        """Flattened feature -> raw embedding (``dropout`` is identity in eval mode)."""
        return self.features(self.fc(self.dropout(f)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features_pre_head(x))


def _factory(name: str):  # noqa: ANN202 - small closure factory
    def build(dropout: float = 0.0, num_features: int = 512) -> IResNet:
        return IResNet(IRESNET_LAYERS[name], dropout=dropout, num_features=num_features)

    build.__name__ = name
    build.__doc__ = f"{name} (arcface_torch layout), blocks per stage {IRESNET_LAYERS[name]}."
    return build


iresnet18 = _factory("iresnet18")
iresnet34 = _factory("iresnet34")
iresnet50 = _factory("iresnet50")
iresnet100 = _factory("iresnet100")
