"""One checkpoint format for every edgefiq model: architecture + weights + preprocessing.

A checkpoint is a ``torch.save`` dict of plain types and tensors, so it loads with
``weights_only=True`` (untrusted files cannot run code):

    {"format": "edgefiq-checkpoint/1", "arch": "mobilenetv3_small_100",
     "arch_kwargs": {...}, "state_dict": {...}, "preprocess": {...},
     "pruning": None | {"method": ..., "rho": ..., "structure": {...}},
     "meta": {...}}

Structured pruning changes layer shapes; the pruning package records what it needs in
``pruning["structure"]`` and ``restore_structure`` (``edgefiq.models.structure``) reshapes
the freshly built model before the weights are loaded, so nothing is guessed from shapes.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import DataError
from edgefiq.registry import CHECKPOINT_RUNNERS, STUDENTS
from edgefiq.utils import atomic_path

FORMAT = "edgefiq-checkpoint/1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the ready model plus what describes it."""

    model: Any  # torch.nn.Module, in eval mode
    arch: str
    arch_kwargs: dict[str, Any]
    preprocess: Preprocess
    pruning: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | Path, model: Any, *, arch: str, arch_kwargs: dict[str, Any] | None = None,
                    preprocess: Preprocess, pruning: dict[str, Any] | None = None,
                    meta: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` atomically as an edgefiq checkpoint.

    Args:
        extra: more top-level entries (e.g. optimizer state for ``last.pt``); tensors and plain types only.

    Example:
        >>> save_checkpoint("best.pt", model, arch="mobilenetv3_small_100",   # doctest: +SKIP
        ...                 preprocess=Preprocess(size=(112, 112)))
    """
    # heavy: torch stays lazy so importing edgefiq.models.checkpoint (e.g. from export.api, the CLI) does not load it
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "arch": arch, "arch_kwargs": dict(arch_kwargs or {}), "state_dict": state,
               "preprocess": preprocess.to_dict(), "pruning": pruning, "meta": dict(meta or {}), **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


# files that edgefiq writes beside checkpoints and users pass by mistake (the checkpoint layer
# names them without importing the export backends)
_ARTIFACT_KINDS = {".onnx": "an exported ONNX model", ".xml": "an exported OpenVINO model",
                   ".bin": "OpenVINO weights", ".tflite": "an exported TFLite model",
                   ".torchscript": "an exported TorchScript model", ".json": "a JSON file (sidecar or report)"}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load the raw checkpoint dict safely (``weights_only=True``).

    Raises:
        DataError: missing file, not a checkpoint, or contains disallowed (code-carrying) objects.
    """
    import torch  # heavy: lazy, see save_checkpoint

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: checkpoint not found")
    kind = _ARTIFACT_KINDS.get(p.suffix.lower())
    if kind:   # torch would only say that its weights-only unpickler failed
        raise DataError(f"{p}: {kind}, not an edgefiq checkpoint; this verb takes the .pt that `edgefiq distill` "
                        "or `edgefiq prune` wrote (score and bench take exported artifacts)")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise DataError(f"{p}: refused to load (not a plain weights file: {str(e).splitlines()[0][:160]})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise DataError(f"{p}: not a readable torch checkpoint ({str(e).splitlines()[0][:160]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{p}: not an edgefiq checkpoint (train one with `edgefiq distill`)")
    return payload


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the model of a checkpoint (pruned structure included) in eval mode.

    Example:
        >>> ck = load_checkpoint("runs/quickstart/distill/best.pt")   # doctest: +SKIP
        >>> ck.model(torch.zeros(1, 3, *ck.preprocess.size))         # doctest: +SKIP
    """
    payload = read_checkpoint(path)
    model = STUDENTS.get(payload["arch"])(**payload["arch_kwargs"])
    pruning = payload.get("pruning")
    if pruning and pruning.get("structure"):
        from edgefiq.models.structure import restore_structure  # imports torch (see save_checkpoint)

        model = restore_structure(model, pruning["structure"])
    model.load_state_dict(payload["state_dict"], strict=True)
    model.eval()
    return Checkpoint(model=model, arch=payload["arch"], arch_kwargs=payload["arch_kwargs"],
                      preprocess=Preprocess.from_dict(payload["preprocess"]), pruning=pruning,
                      meta=payload.get("meta", {}))


@CHECKPOINT_RUNNERS.register("edgefiq")
def checkpoint_runner(path: str | Path, threads: int | None = None) -> tuple[Any, Preprocess, dict[str, Any]]:
    """Score an edgefiq checkpoint with torch: ``(runner, preprocess, meta)`` for ``edgefiq.runtime.load_model``.

    ``runner(batch_nchw_float32) -> scores`` like an exported artifact's runner.

    Example:
        >>> run, pp, meta = checkpoint_runner("best.pt", threads=1)   # doctest: +SKIP
    """
    import torch  # heavy: lazy, see save_checkpoint

    if threads:
        torch.set_num_threads(int(threads))
    ck = load_checkpoint(path)
    model = ck.model.eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(batch))).float().reshape(len(batch), -1)[:, 0].numpy()

    return run, ck.preprocess, {"arch": ck.arch, "pruning": ck.pruning}
