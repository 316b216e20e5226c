"""EMO (Efficient MOdel, Zhang et al., ICCV 2023) as a face-quality regressor, written for export.

The building block is the inverted Residual Mobile Block (iRMB): a 1x1 expansion whose
input is first mixed by windowed multi-head self-attention (in the later stages), a
depthwise conv, and a 1x1 projection, with a residual connection. This follows the
reference implementation (github.com/zhangzjn/EMO, ``model/emo.py``; "attn_pre" variant:
attention on the block input, then the value projection), with two deliberate changes so
ONNX (opset 17), OpenVINO and TFLite convert it:

* no einops; window partition is a fixed ``view``/``permute`` whose sizes come from the
  input's static spatial size (padding amounts are plain Python ints);
* the batch dimension is always ``-1`` in reshapes, so exported graphs keep a dynamic batch.

The window partition is the reference's *strided* one (``(h1 n1) -> h1``): each window gathers
pixels spaced ``n`` apart, so a window spans the whole map at low resolution.

Example:
    >>> import torch
    >>> m = emo_1m()
    >>> m(torch.zeros(2, 3, 112, 112)).shape
    torch.Size([2])
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgefiq.registry import STUDENTS


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of an NCHW tensor (permute -> LayerNorm -> permute back)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _norm(kind: str, dim: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(dim, eps=1e-6)
    if kind == "ln":
        return LayerNorm2d(dim)
    raise ValueError(f"norm must be 'bn' or 'ln', got {kind!r}")


def _act(kind: str) -> nn.Module:
    return {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU, "none": nn.Identity}[kind]()


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at inference)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class ConvAct(nn.Sequential):
    """Conv2d (+ optional BN) + activation; padding ``ceil((k - s) / 2)`` as in the reference."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, bias: bool = True,
                 bn: bool = False, act: str = "none") -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, math.ceil((k - stride) / 2), groups=groups,
                                             bias=bias and not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(cout, eps=1e-6))
        layers.append(_act(act))
        super().__init__(*layers)


class IRMB(nn.Module):
    """Inverted residual mobile block: [norm] -> [windowed MHSA] -> 1x1 expand -> dw conv (+skip) -> 1x1 project.

    Args:
        dim_in, dim_out: channels.
        exp_ratio: expansion of the middle width.
        norm, act: ``"bn"``/``"ln"`` and ``"silu"``/``"gelu"`` (EMO: BN+SiLU early, LN+GELU late).
        dw_ks, stride: depthwise kernel and stride.
        attn: use windowed self-attention on the block input.
        dim_head, window: attention head width and window side.
        drop_path: stochastic depth rate.
        norm_in, v_proj, se: stem-block switches (no input norm / no value projection / SE).
    """

    def __init__(self, dim_in: int, dim_out: int, *, exp_ratio: float = 1.0, norm: str = "bn", act: str = "silu",
                 dw_ks: int = 3, stride: int = 1, attn: bool = False, dim_head: int = 16, window: int = 7,
                 drop_path: float = 0.0, has_skip: bool = True, norm_in: bool = True, v_proj: bool = True,
                 se: bool = False) -> None:
        super().__init__()
        self.norm = _norm(norm, dim_in) if norm_in else nn.Identity()
        dim_mid = int(dim_in * exp_ratio)
        self.has_skip = dim_in == dim_out and stride == 1 and has_skip
        self.attn = attn
        if attn:
            if dim_in % dim_head:
                raise ValueError(f"dim {dim_in} not divisible by head dim {dim_head}")
            self.dim_head, self.window = dim_head, window
            self.heads = dim_in // dim_head
            self.scale = dim_head ** -0.5
            self.qk = ConvAct(dim_in, 2 * dim_in, 1, bias=True)
        self.v = ConvAct(dim_in, dim_mid, 1, bias=True, act=act) if v_proj else nn.Identity()
        self.conv_local = ConvAct(dim_mid, dim_mid, dw_ks, stride, groups=dim_mid, bias=False, bn=True, act="silu")
        self.se = SqueezeExcite(dim_mid, act) if se else nn.Identity()
        self.proj = ConvAct(dim_mid, dim_out, 1, bias=True)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _window_attention(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
        ws = self.window
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        if pad_b or pad_r:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        n1, n2 = hp // ws, wp // ws
        # strided windows: pixel (a*n1 + i, b*n2 + j) belongs to window (i, j) at position (a, b)
        xw = x.reshape(-1, c, ws, n1, ws, n2).permute(0, 3, 5, 1, 2, 4).reshape(-1, c, ws, ws)
        t = ws * ws
        qk = self.qk(xw).reshape(-1, 2, self.heads, self.dim_head, t)
        q, k = qk[:, 0], qk[:, 1]  # [B', heads, d, t]
        attn = torch.matmul(q.transpose(-2, -1), k) * self.scale  # [B', heads, t, t]
        attn = attn.softmax(dim=-1)
        v = xw.reshape(-1, self.heads, self.dim_head, t)
        out = torch.matmul(v, attn.transpose(-2, -1))  # [B', heads, d, t]
        out = out.reshape(-1, n1, n2, c, ws, ws).permute(0, 3, 4, 1, 5, 2).reshape(-1, c, hp, wp)
        if pad_b or pad_r:
            out = out[:, :, :h, :w]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm(x)
        if self.attn:
            x = self._window_attention(x)
        x = self.v(x)
        y = self.se(self.conv_local(x))
        x = x + y if self.has_skip else y
        x = self.proj(x)
        return shortcut + self.drop_path(x) if self.has_skip else x


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (mean pool -> 1x1 -> act -> 1x1 -> sigmoid gate)."""

    def __init__(self, dim: int, act: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(dim, dim, 1)
        self.act = _act(act)
        self.expand = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class EMO(nn.Module):
    """EMO backbone + global pool + scalar regression head (forward: NCHW -> 1-D scores)."""

    def __init__(self, *, depths: Sequence[int], dims: Sequence[int], exp_ratios: Sequence[float],
                 dim_heads: Sequence[int], stem_dim: int = 24, window: int = 7,
                 norms: Sequence[str] = ("bn", "bn", "ln", "ln"), acts: Sequence[str] = ("silu", "silu", "gelu", "gelu"),
                 dw_kss: Sequence[int] = (3, 3, 5, 5), attns: Sequence[bool] = (False, False, True, True),
                 drop_path: float = 0.04, head: str = "linear") -> None:
        super().__init__()
        dprs = torch.linspace(0, drop_path, sum(depths)).tolist()
        self.stem = nn.Sequential(
            ConvAct(3, stem_dim, dw_kss[0], 2, bias=True, bn=True),
            IRMB(stem_dim, stem_dim, exp_ratio=1.0, act=acts[0], dw_ks=dw_kss[0], has_skip=False, norm_in=False,
                 v_proj=False, se=True),
        )
        stages, cin, k = [], stem_dim, 0
        for i, depth in enumerate(depths):
            blocks = []
            for j in range(depth):
                first = j == 0
                blocks.append(IRMB(cin, dims[i], exp_ratio=exp_ratios[i] * (2 if first else 1), norm=norms[i],
                                   act=acts[i], dw_ks=dw_kss[i], stride=2 if first else 1, attn=attns[i] and not first,
                                   dim_head=dim_heads[i], window=window, drop_path=dprs[k], has_skip=not first))
                cin, k = dims[i], k + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = _norm(norms[-1], dims[-1])
        self.head = nn.Linear(dims[-1], 1)
        self.sigmoid = head == "sigmoid"
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled, normalised features ``[N, dims[-1]]``."""
        x = self.norm(self.stages(self.stem(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.forward_features(x)).squeeze(1)
        return torch.sigmoid(y) if self.sigmoid else y


@STUDENTS.register("emo_1m")
def emo_1m(head: str = "linear", drop_path: float = 0.04, window: int = 7, **_: object) -> nn.Module:
    """EMO-1M: depths 2,2,8,3; dims 32,48,80,180; expansion 2,2.5,3,3.5; head dims 16,16,20,20."""
    return EMO(depths=(2, 2, 8, 3), dims=(32, 48, 80, 180), exp_ratios=(2.0, 2.5, 3.0, 3.5),
               dim_heads=(16, 16, 20, 20), window=window, drop_path=drop_path, head=head)


@STUDENTS.register("emo_5m")
def emo_5m(head: str = "linear", drop_path: float = 0.05, window: int = 7, **_: object) -> nn.Module:
    """EMO-5M: depths 3,3,9,3; dims 48,72,160,288; expansion 2,3,4,4; head dims 24,24,32,32."""
    return EMO(depths=(3, 3, 9, 3), dims=(48, 72, 160, 288), exp_ratios=(2.0, 3.0, 4.0, 4.0),
               dim_heads=(24, 24, 32, 32), window=window, drop_path=drop_path, head=head)
