"""Quality students: compact networks mapping a face crop to one quality score.

Every entry of ``STUDENTS`` is a factory ``(**kwargs) -> nn.Module`` whose forward maps a
float32 NCHW batch to a 1-D tensor of ``N`` scores. ``tiny_cnn`` is the test model (like
timm's ``test_*`` models): a few thousand parameters, for fast unit tests only.

timm backbones (``mobilenetv3_small_100``, ``mobilenetv3_large_100``, ``mobilenetv4_conv_small``,
``edgenext_xx_small``) get a one-output regression head (``head="linear"`` or ``"sigmoid"``);
EMO lives in ``edgefiq.models.emo``. ``model_profile`` reports parameters and MACs.

Example:
    >>> from edgefiq.registry import STUDENTS
    >>> m = STUDENTS.get("mobilenetv3_small_100")()
    >>> model_profile(m, (112, 112))["params"] > 1e6
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgefiq.errors import DataError, UsageError
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


class TimmRegressor(nn.Module):
    """A timm backbone with ``num_classes=1``; forward returns ``[N]`` scores (sigmoid optional)."""

    def __init__(self, name: str, *, head: str = "linear", pretrained: bool = False, weights: str | None = None,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        import timm  # heavy: timm takes seconds to import; only when a timm student is built

        if head not in ("linear", "sigmoid"):
            raise UsageError(f"head must be 'linear' or 'sigmoid', got {head!r}")
        kw = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
        try:
            self.net = timm.create_model(name, pretrained=pretrained, num_classes=1, drop_rate=drop_rate, **kw)
        except Exception as e:  # noqa: BLE001 - pretrained download fails offline
            if pretrained:
                raise UsageError(f"{name}: pretrained weights unavailable ({str(e).splitlines()[0][:120]}); "
                                 "use pretrained=False or weights=<local .pth/.safetensors>") from None
            raise
        if weights:
            load_backbone_weights(self.net, weights)
        self.sigmoid = head == "sigmoid"

    def head_keys(self) -> list[str]:
        """State-dict keys of the new one-output classifier (pretrained weights do not provide them)."""
        prefix = "net." + self.net.default_cfg.get("classifier", "classifier")
        return [k for k in self.state_dict() if k.startswith(prefix + ".")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x).squeeze(1)
        return torch.sigmoid(y) if self.sigmoid else y


def load_backbone_weights(net: nn.Module, path: str) -> None:
    """Load a local (ImageNet) state dict into ``net``, skipping the classifier (shape mismatches).

    Example:
        >>> load_backbone_weights(model.net, "mobilenetv3_small_100.safetensors")  # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: weights file not found")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file  # optional (installed with timm): only for .safetensors weights

        state = load_file(str(p))
    else:
        state = torch.load(p, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    own = net.state_dict()
    kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(kept) < len(own) // 2:
        raise DataError(f"{p}: only {len(kept)}/{len(own)} tensors match {type(net).__name__}; wrong architecture?")
    net.load_state_dict(kept, strict=False)


def _timm_factory(name: str) -> Any:
    def factory(head: str = "linear", pretrained: bool = False, weights: str | None = None,
                drop_rate: float = 0.0, drop_path_rate: float = 0.0, **_: object) -> nn.Module:
        return TimmRegressor(name, head=head, pretrained=pretrained, weights=weights, drop_rate=drop_rate,
                             drop_path_rate=drop_path_rate)

    factory.__name__ = name
    factory.__doc__ = f"timm ``{name}`` with a scalar regression head."
    return factory


# mobilenetv2_100 and efficientnet_lite0 have ImageNet weights that install offline (edgefiq.models.weights).
for _name in ("mobilenetv3_small_100", "mobilenetv3_large_100", "mobilenetv4_conv_small", "edgenext_xx_small",
              "mobilenetv2_100", "efficientnet_lite0"):
    STUDENTS.register(_name)(_timm_factory(_name))


def model_profile(model: nn.Module, input_size: tuple[int, int] | int = (112, 112)) -> dict[str, int]:
    """Parameters and multiply-accumulates of one forward pass on a 1x3xHxW input.

    MACs are ``torch.utils.flop_counter`` FLOPs / 2: convolutions, linear layers and matrix
    products (attention) are counted; element-wise ops, normalisation, activations and
    pooling are not (the usual convention of fvcore / timm tables).

    Example:
        >>> model_profile(tiny_cnn(), 112)["params"]
        6121
    """
    from torch.utils.flop_counter import FlopCounterMode  # torch.utils.flop_counter adds ~0.15 s: only for profiling

    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(torch.zeros(1, 3, h, w))
    finally:
        model.train(was_training)
    return {"params": int(params), "macs": int(fc.get_total_flops() // 2)}


from edgefiq.models import emo as _emo  # noqa: E402,F401 - registers emo_1m / emo_5m
from edgefiq.models import face_trunk as _face_trunk  # noqa: E402,F401 - registers face_trunk
