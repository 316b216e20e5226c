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
__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:
    """``edgefiq.load_model`` (= ``edgefiq.runtime.load_model``), imported on first use to keep this import light.

    Example:
        >>> import edgefiq
        >>> qm = edgefiq.load_model()   # the default built-in quality model   # doctest: +SKIP
    """
    if name == "load_model":
        from edgefiq.runtime.model import load_model

        return load_model
    raise AttributeError(f"module 'edgefiq' has no attribute {name!r}")
