"""Quantisation-aware training: the forward pass sees the 8-bit activations an int8 export will have.

``QuantAware(model)`` hooks every conv, norm, activation and pooling layer (where backends
quantise a tensor; the input of the final linear score head stays float, as it does in every
edgefiq int8 export). Once ``activate(ranges)`` is called, each hooked output is fake-quantised
in training mode, uint8 affine over a *fixed* range per layer, with a straight-through gradient
(``torch.fake_quantize_per_tensor_affine``):

* **Ranges are observed, not per batch.** ``observe(x)`` runs the float model in eval mode on a
  fixed set of training images and records each layer's min/max, as post-training calibration
  will on the calibration images. The loop re-observes at the start of every QAT epoch and keeps
  the ranges in ``last.pt``, so a resumed run is the same run.
* **Batch norm is frozen** (``freeze_norms``): its running statistics are what the export folds
  into the convolutions, so QAT trains against them instead of per-batch statistics.

In eval mode the hooks do nothing: validation, ``best.pt`` and every export see the float model,
which has learnt not to depend on differences smaller than an 8-bit step of those ranges.

Why: a student that reads quality from small activations (fine noise, slight blur) loses its
ranking under post-training int8. Measured on the quickstart's pruned synthetic student
(onnxruntime int8, SRCC vs fp32 on 64 held-out images): 0.83 after plain recovery; 0.999 after
8 recovery epochs with this QAT (``results/quickstart/report.md``). A first version that rounded over each batch's own min/max and
left batch norm training reached only 0.96 on the unpruned student: the model learnt ranges the
export never uses.

Example:
    >>> qat = QuantAware(model)                    # doctest: +SKIP
    >>> qat.activate(qat.observe(range_images)); qat.freeze_norms(); ...train...; qat.remove()
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

QUANTISED = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Sigmoid, nn.BatchNorm2d,
             nn.LayerNorm, nn.GroupNorm, nn.AdaptiveAvgPool2d)
PASS_THROUGH = (nn.Flatten, nn.Identity, nn.Dropout)
# QAT also rounds convolution outputs (a conv without a following norm, such as MobileNetV3's
# conv_head, is quantised on its own by every backend; before a norm it is a harmless extra rounding)
QAT_LAYERS = QUANTISED + (nn.Conv2d,)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)


def head_input_module(model: nn.Module) -> str | None:
    """The last quantisable layer before the final ``nn.Linear`` in definition order (its output feeds the head)."""
    names = [n for n, m in model.named_modules() if not list(m.children())]
    mods = dict(model.named_modules())
    linears = [i for i, n in enumerate(names) if isinstance(mods[n], nn.Linear)]
    if not linears:
        return None
    before = [n for n in names[:linears[-1]] if not isinstance(mods[n], PASS_THROUGH)]
    return before[-1] if before and isinstance(mods[before[-1]], QUANTISED) else None


def fake_quant_uint8(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``x`` rounded to 256 levels between min(lo, 0) and max(hi, 0), straight-through gradient inside."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi <= lo:
        return x
    scale = (hi - lo) / 255.0
    return torch.fake_quantize_per_tensor_affine(x, scale, int(round(-lo / scale)), 0, 255)


class QuantAware:
    """Fixed-range 8-bit fake quantisation of ``model``'s activations while it trains.

    Args:
        model: the student (hooks are added now, inactive until ``activate``; ``remove`` takes them off).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        skip = head_input_module(model)
        self.layers = {n: m for n, m in model.named_modules()
                       if isinstance(m, QAT_LAYERS) and not list(m.children()) and n != skip}
        self.ranges: dict[str, tuple[float, float]] = {}
        self._seen: dict[str, tuple[float, float]] | None = None
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.layers.items()]

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, _inputs: Any, out: Any) -> Any:
            if not isinstance(out, torch.Tensor) or not out.is_floating_point():
                return None
            if self._seen is not None:   # observing
                lo, hi = float(out.detach().min()), float(out.detach().max())
                old = self._seen.get(name, (lo, hi))
                self._seen[name] = (min(old[0], lo), max(old[1], hi))
                return None
            if module.training and name in self.ranges:
                return fake_quant_uint8(out, *self.ranges[name])
            return None
        return hook

    @torch.no_grad()
    def observe(self, x: torch.Tensor, batch_size: int = 64) -> dict[str, tuple[float, float]]:
        """Each hooked layer's (min, max) over images ``x``, float model in eval mode (training mode restored)."""
        was = self.model.training
        self.model.eval()
        self._seen = {}
        try:
            for s in range(0, len(x), batch_size):
                self.model(x[s:s + batch_size])
            return dict(self._seen)
        finally:
            self._seen = None
            self.model.train(was)

    def activate(self, ranges: dict[str, Any]) -> None:
        """Round each layer's training-mode output over ``ranges`` (from ``observe`` or a checkpoint)."""
        self.ranges = {n: (float(r[0]), float(r[1])) for n, r in ranges.items()}

    def freeze_norms(self) -> None:
        """Put batch-norm layers in eval mode (running statistics, as folded by the export); call after ``train()``."""
        for m in self.model.modules():
            if isinstance(m, NORMS):
                m.eval()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
