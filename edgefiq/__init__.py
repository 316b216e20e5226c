"""edgefiq: distil big face-image-quality (FIQA) teachers into tiny, verified edge models.

The package is import-light on purpose: ``import edgefiq`` pulls in neither torch nor
any runtime, so the CLI starts fast and the torch-free ``runtime`` works on devices.

Packages import downward only (``tests/test_layering.py`` declares and enforces the order,
function-level imports included; no cycles, no ``_private`` names across packages)::

    L8 cli, __main__         one library call per verb
    L7 pipeline              workflows: run stages, prune recovery/sweeps, reports
    L6 eval, bench           one evaluation (eval.sources), timing rows
    L5 export                backends (export.base.Backend), calibration, parity gate
    L4 teachers, prune, distill
    L3 models, losses        students, FR nets, checkpoint format (pruned structure included)
    L2 runtime               torch-free: sidecar, runners via the backend registry, QualityModel
    L1 data, metrics         label CSV I/O, identity split, image batches; EDC/pAUC
    L0 errors, registry, utils, recipe, timing, console, packaged
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "detect_and_score", "load_model"]


def detect_and_score(frame: Any, *, select: str | None = None, model: Any = None) -> list[Any]:
    """Every face of an RGB frame (HxWx3 uint8) with its box, landmarks and quality, torch-free:
    ``load_model(model).detect_and_score(frame, select=select)`` (the built-in model by default; the
    model and its detector are loaded once and reused).

    Example:
        >>> import edgefiq
        >>> faces = edgefiq.detect_and_score(frame)     # doctest: +SKIP
        >>> faces[0].quality, faces[0].box              # doctest: +SKIP
        (1.27, array([ 71.2,  62.9, 178.4, 194.1], dtype=float32))
    """
    key = str(model)
    if key not in _MODELS:
        # lazy: every ``import edgefiq.<anything>`` runs this file, which must stay import-light (no numpy/runtime)
        from edgefiq.runtime.model import load_model

        _MODELS[key] = load_model(model)
    return _MODELS[key].detect_and_score(frame, select=select)


_MODELS: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """``edgefiq.load_model`` (= ``edgefiq.runtime.load_model``), imported on first use to keep this import light.

    Example:
        >>> import edgefiq
        >>> qm = edgefiq.load_model()   # the default built-in quality model   # doctest: +SKIP
    """
    if name == "load_model":
        from edgefiq.runtime.model import load_model  # lazy, as in detect_and_score: keeps `import edgefiq` light

        return load_model
    raise AttributeError(f"module 'edgefiq' has no attribute {name!r}")
