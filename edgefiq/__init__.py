"""edgefiq: distil big face-image-quality (FIQA) teachers into tiny, verified edge models.

The package is import-light on purpose: ``import edgefiq`` pulls in neither torch nor
any runtime, so the CLI starts fast and the torch-free ``runtime`` works on devices.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
