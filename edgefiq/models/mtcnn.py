"""MTCNN's P-, R- and O-Net in torch, loading facenet-pytorch 2.6.0's weights (MIT) with ``strict=True``.

The weight files are located inside the installed ``facenet-pytorch`` wheel and sha256-verified
(``edgefiq.packaged.packaged_file`` with ``edgefiq.data.detect.MTCNN_WEIGHTS``); facenet-pytorch itself
is never imported. The layer names and the channel-last flatten before the dense layers match its
state dicts. ``torch_mtcnn_nets`` wraps the modules as numpy callables for the cascade in
``edgefiq.data.detect``; ``export_mtcnn_onnx`` writes the ONNX files the torch-free runtime ships.

Example:
    >>> from edgefiq.data.detect import FaceDetector
    >>> det = FaceDetector(torch_mtcnn_nets(threads=1))   # doctest: +SKIP
    >>> det.detect(img).landmarks.shape                    # doctest: +SKIP
    (1, 5, 2)
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from edgefiq.data.detect import MTCNN_WEIGHTS, MtcnnNets
from edgefiq.packaged import packaged_file
from edgefiq.runtime.detect import onnx_mtcnn_nets
from edgefiq.utils import atomic_path


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12x12 window, stride 2; returns (box offsets, face probability).

    Example:
        >>> [o.shape for o in PNet()(torch.zeros(1, 3, 12, 12))]
        [torch.Size([1, 4, 1, 1]), torch.Size([1, 2, 1, 1])]
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement net on 24x24 crops; returns (box offsets, face probability).

    Example:
        >>> [o.shape for o in RNet()(torch.zeros(1, 3, 24, 24))]
        [torch.Size([1, 4]), torch.Size([1, 2])]
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # the Caffe-converted dense weights expect (W, H, C) flattening order
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48x48 crops; returns (box offsets, 10 landmark coordinates, face probability).

    Example:
        >>> [o.shape for o in ONet()(torch.zeros(1, 3, 48, 48))]
        [torch.Size([1, 4]), torch.Size([1, 10]), torch.Size([1, 2])]
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def load_mtcnn_modules() -> dict[str, nn.Module]:
    """The three nets in eval mode with their verified weights, keyed ``pnet``, ``rnet``, ``onet``.

    Raises:
        DataError: facenet-pytorch is not installed or a weight file fails its sha256 (one line naming
            the pip command).

    Example:
        >>> sorted(load_mtcnn_modules())   # doctest: +SKIP
        ['onet', 'pnet', 'rnet']
    """
    modules: dict[str, nn.Module] = {"pnet": PNet(), "rnet": RNet(), "onet": ONet()}
    for name, module in modules.items():
        state = torch.load(packaged_file(MTCNN_WEIGHTS[name]), map_location="cpu", weights_only=True)
        module.load_state_dict(state, strict=True)
        module.eval()
    return modules


def torch_mtcnn_nets(threads: int | None = None) -> MtcnnNets:
    """The verified nets as numpy callables for ``edgefiq.data.detect.FaceDetector``.

    Args:
        threads: torch intra-op threads (``torch.set_num_threads``; process-wide), or None to keep.

    Example:
        >>> nets = torch_mtcnn_nets(threads=1)   # doctest: +SKIP
    """
    if threads:
        torch.set_num_threads(int(threads))
    modules = load_mtcnn_modules()

    def wrap(module: nn.Module) -> Callable[[np.ndarray], list[np.ndarray]]:
        def run(x: np.ndarray) -> list[np.ndarray]:
            with torch.inference_mode():
                return [o.numpy() for o in module(torch.from_numpy(np.ascontiguousarray(x, np.float32)))]
        return run

    return MtcnnNets(wrap(modules["pnet"]), wrap(modules["rnet"]), wrap(modules["onet"]), name="torch")


#: ONNX graph I/O: input name, output names, example input shape, dynamic axes of the input.
ONNX_SPECS: dict[str, tuple[list[str], tuple[int, ...], dict[int, str]]] = {
    "pnet": (["reg", "prob"], (1, 3, 48, 64), {0: "batch", 2: "height", 3: "width"}),
    "rnet": (["reg", "prob"], (2, 3, 24, 24), {0: "batch"}),
    "onet": (["reg", "landmarks", "prob"], (2, 3, 48, 48), {0: "batch"}),
}


def export_mtcnn_onnx(out_dir: str | Path, opset: int = 17) -> dict[str, Path]:
    """Write ``pnet.onnx``, ``rnet.onnx``, ``onet.onnx`` (opset 17, dynamic batch; P-Net also H and W).

    Uses the TorchScript-based exporter (``dynamo=False``) for single-file, opset-17 graphs, as
    ``edgefiq.export.onnx`` does. Input ``input``; outputs as in ``ONNX_SPECS``.

    Example:
        >>> export_mtcnn_onnx("edgefiq/runtime/assets/mtcnn")   # doctest: +SKIP
    """
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for name, module in load_mtcnn_modules().items():
        outputs, shape, axes = ONNX_SPECS[name]
        example = torch.zeros(shape)
        dyn = {"input": axes, **{o: {0: "batch"} for o in outputs}}
        with atomic_path(out / f"{name}.onnx") as tmp, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=outputs, dynamic_axes=dyn,
                              do_constant_folding=True)
        written[name] = out / f"{name}.onnx"
    return written


def mtcnn_onnx_parity(folder: str | Path | None = None, seed: int = 0) -> dict[str, float]:
    """Max absolute output difference between the ONNX nets (onnxruntime) and the torch nets.

    Inputs are seeded random batches in the nets' [-1, 1] pixel range (P-Net at 2 sizes).

    Example:
        >>> max(mtcnn_onnx_parity().values()) < 1e-4   # doctest: +SKIP
        True
    """
    rng = np.random.default_rng(seed)
    ours, ref = onnx_mtcnn_nets(threads=1, folder=folder, verify=folder is None), torch_mtcnn_nets()
    inputs = {"pnet": [(1, 3, 61, 83), (2, 3, 30, 30)], "rnet": [(5, 3, 24, 24)], "onet": [(3, 3, 48, 48)]}
    diffs: dict[str, float] = {}
    for name, shapes in inputs.items():
        worst = 0.0
        for shape in shapes:
            x = rng.uniform(-1, 1, shape).astype(np.float32)
            for a, b in zip(getattr(ours, name)(x), getattr(ref, name)(x)):
                worst = max(worst, float(np.abs(np.asarray(a) - np.asarray(b)).max()))
        diffs[name] = worst
    return diffs
