"""edgefiq: distil big face-image-quality (FIQA) teachers into tiny, verified edge models.

The package is import-light on purpose: ``import edgefiq`` pulls in neither torch nor
any runtime, so the CLI starts fast and the torch-free ``runtime`` works on devices.
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
