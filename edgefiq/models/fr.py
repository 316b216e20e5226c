"""Face recognition backbones for the teachers: loading (``.pt`` state dicts or ``.onnx``) and embedding.

Architectures are registered in ``FR_MODELS`` (``mobilefacenet``, ``iresnet18/34/50/100``).
``load_fr_model`` infers the architecture from the state-dict keys, verifies the load is
strict, and attaches ``.preprocess`` (how the model wants its pixels), ``.arch`` and
``.weights_sha256`` (used to key embedding caches). ONNX files are wrapped in a module
that runs onnxruntime, so teachers treat both the same way.

Example:
    >>> fr = load_fr_model("../shared/data/models/mobilefacenet/mobilefacenet.pt")  # doctest: +SKIP
    >>> emb = embed_paths(fr, ["a.jpg", "b.jpg"], flip=True)                         # doctest: +SKIP
    >>> emb.shape                                                                    # doctest: +SKIP
    (2, 128)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgefiq.data.dataset import iter_image_batches
from edgefiq.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from edgefiq.errors import BackendUnavailableError, DataError, UsageError
from edgefiq.models import iresnet as _iresnet
from edgefiq.models.mobilefacenet import MobileFaceNet
from edgefiq.registry import FR_MODELS
from edgefiq.runtime.sidecar import read_preprocess
from edgefiq.utils import sha256_file


FR_MODELS.register("mobilefacenet")(MobileFaceNet)
for _name in _iresnet.IRESNET_LAYERS:
    FR_MODELS.register(_name)(getattr(_iresnet, _name))

# Pixel conventions of the published weights: MobileFaceNet (shared file) uses ImageNet
# statistics; arcface_torch IResNets use (x/255 - 0.5) / 0.5 on RGB.
DEFAULT_PREPROCESS: dict[str, Preprocess] = {
    "mobilefacenet": Preprocess(size=(112, 112), mean=IMAGENET_MEAN, std=IMAGENET_STD),
    **{n: Preprocess(size=(112, 112), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) for n in _iresnet.IRESNET_LAYERS},
}


def infer_arch(state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Guess ``(arch, kwargs)`` from state-dict keys and shapes.

    Example:
        >>> infer_arch(MobileFaceNet().state_dict())[0]
        'mobilefacenet'
    """
    keys = set(state)
    if "dw_conv.depthwise.weight" in keys and "conv3.weight" in keys:
        return "mobilefacenet", {"embedding_size": int(state["conv3.weight"].shape[0])}
    if "layer1.0.conv1.weight" in keys and "fc.weight" in keys:
        counts = tuple(len({k.split(".")[1] for k in keys if k.startswith(f"layer{i}.")}) for i in range(1, 5))
        for name, layers in _iresnet.IRESNET_LAYERS.items():
            if counts == layers:
                return name, {"num_features": int(state["fc.weight"].shape[0])}
        raise DataError(f"IResNet with blocks per stage {counts} is not one of {sorted(_iresnet.IRESNET_LAYERS)}")
    raise DataError("cannot infer the face recognition architecture from the state-dict keys; pass arch= "
                    f"(one of {', '.join(FR_MODELS.names())})")


def _clean_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "backbone"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"{path}: not a state dict of tensors")
    prefixes = ("module.", "backbone.", "model.")
    out = {}
    for k, v in obj.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def load_fr_model(path: str | Path, arch: str | None = None, device: str = "cpu", *,
                  preprocess: Preprocess | None = None) -> nn.Module:
    """Load a face recognition model in eval mode; ``forward`` returns raw (un-normalised) embeddings.

    Args:
        path: ``.pt``/``.pth`` state dict (architecture inferred from the keys unless ``arch``)
            or ``.onnx`` file (run with onnxruntime).
        arch: name in ``FR_MODELS`` to force the architecture.
        device: torch device for ``.pt`` models.
        preprocess: override the pixel convention (default: the architecture's published one;
            ImageNet statistics for ONNX files unless a ``<file>.json`` sidecar says otherwise).

    Returns:
        The module, with attributes ``preprocess``, ``arch``, ``weights_sha256`` and ``source``.

    Example:
        >>> fr = load_fr_model("mobilefacenet.pt")   # doctest: +SKIP
        >>> fr.arch, fr.preprocess.size              # doctest: +SKIP
        ('mobilefacenet', (112, 112))
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"face recognition model not found: {p}")
    if p.suffix.lower() == ".onnx":
        model: nn.Module = OnnxFR(p, preprocess=preprocess)
        model.arch = arch or "onnx"  # type: ignore[assignment]
    else:
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a data problem
            raise DataError(f"{p}: cannot read as a PyTorch state dict ({str(e).splitlines()[0][:120]})") from None
        state = _clean_state(obj, p)
        inferred, kwargs = infer_arch(state) if arch is None else (arch, {})
        if arch is not None and arch in ("mobilefacenet", *_iresnet.IRESNET_LAYERS):
            try:
                inferred, kwargs = arch, infer_arch(state)[1]
            except DataError:
                kwargs = {}
        model = FR_MODELS.get(inferred)(**kwargs)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise DataError(f"{p}: weights do not fit {inferred} ({str(e).splitlines()[0][:160]})") from None
        model.arch = inferred  # type: ignore[assignment]
        model.preprocess = preprocess or DEFAULT_PREPROCESS.get(inferred, Preprocess())  # type: ignore[assignment]
        model = model.to(device)
    model.eval()
    model.weights_sha256 = sha256_file(p)  # type: ignore[assignment]
    model.source = str(p)  # type: ignore[assignment]
    return model


class OnnxFR(nn.Module):
    """An ONNX face recognition model behind a torch ``forward`` (raw embeddings, CPU numpy round trip).

    Models exported with a fixed batch of 1 (like the shared MobileFaceNet ONNX) are fed
    one image per call.
    """

    def __init__(self, path: Path, preprocess: Preprocess | None = None, threads: int | None = None) -> None:
        super().__init__()
        try:
            import onnxruntime as ort  # heavy: onnxruntime only for ONNX FR models
        except ImportError:  # pragma: no cover - onnxruntime is a dependency
            raise BackendUnavailableError("onnxruntime is not installed: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:160]})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        if preprocess is None:
            preprocess = read_preprocess(path)
        if preprocess is None:
            h, w = (inp.shape[2], inp.shape[3]) if all(isinstance(d, int) for d in inp.shape[2:4]) else (112, 112)
            preprocess = Preprocess(size=(h, w))
        self.preprocess = preprocess

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().float().numpy()
        if self.fixed_batch is not None and self.fixed_batch != arr.shape[0]:
            b = self.fixed_batch
            if arr.shape[0] % b:
                pad = b - arr.shape[0] % b
                arr_p = np.concatenate([arr, np.repeat(arr[-1:], pad, axis=0)])
            else:
                arr_p = arr
            outs = [self.session.run(None, {self.input_name: arr_p[i:i + b]})[0] for i in range(0, len(arr_p), b)]
            out = np.concatenate(outs)[: arr.shape[0]]
        else:
            out = self.session.run(None, {self.input_name: arr})[0]
        return torch.from_numpy(np.asarray(out, np.float32).reshape(arr.shape[0], -1))


def flip_sum(fr: nn.Module, x: torch.Tensor, forward: Any = None) -> torch.Tensor:
    """Raw embedding of ``x`` plus that of its horizontal mirror (flip-sum test-time augmentation)."""
    f = forward or fr
    return f(x) + f(torch.flip(x, dims=[3]))


def l2_normalise(e: np.ndarray | torch.Tensor, eps: float = 1e-12) -> Any:
    """Row-wise L2 normalisation for numpy arrays or tensors."""
    if isinstance(e, torch.Tensor):
        return torch.nn.functional.normalize(e, dim=1, eps=eps)
    return (e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), eps)).astype(np.float32)


@torch.no_grad()
def raw_embeddings(fr: nn.Module, paths: Sequence[str | Path], *, batch_size: int = 64, flip: bool = False,
                   workers: int = 0, skip_bad: bool = False) -> np.ndarray:
    """Un-normalised embeddings ``[N, D]`` (rows of NaN for skipped bad images).

    Example:
        >>> raw = raw_embeddings(fr, paths)          # doctest: +SKIP
        >>> np.linalg.norm(raw, axis=1)              # feature norms  # doctest: +SKIP
    """
    device = _device_of(fr)
    out: np.ndarray | None = None
    for x, ok, idx in iter_image_batches(paths, fr.preprocess, batch_size=batch_size, workers=workers,
                                         skip_bad=skip_bad):
        x = x.to(device)
        e = (flip_sum(fr, x) if flip else fr(x)).float().cpu().numpy()
        if out is None:
            out = np.full((len(paths), e.shape[1]), np.nan, np.float32)
        e[~ok] = np.nan
        out[idx] = e
    if out is None:
        raise UsageError("no images to embed")
    return out


def embed_paths(fr: nn.Module, paths: Sequence[str | Path], *, batch_size: int = 64, flip: bool = False,
                workers: int = 0) -> np.ndarray:
    """L2-normalised float32 embeddings ``[N, D]`` of image files (optionally flip-sum).

    Example:
        >>> fr = load_fr_model("mobilefacenet.pt")               # doctest: +SKIP
        >>> e = embed_paths(fr, ["a.jpg", "b.jpg"], flip=True)   # doctest: +SKIP
        >>> float(e[0] @ e[1])                                   # cosine similarity  # doctest: +SKIP
    """
    return l2_normalise(raw_embeddings(fr, paths, batch_size=batch_size, flip=flip, workers=workers))


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")
