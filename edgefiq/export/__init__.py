"""Export: convert students to edge formats and verify them against torch.

Importing this package registers every backend in ``edgefiq.registry.BACKENDS`` (one
module per backend; heavy libraries are imported inside methods, so this import is
cheap and torch-free). Public API: :func:`export_checkpoint`, :func:`export_model`,
:class:`ExportResult`, :func:`load_runner`.

Example:
    >>> from edgefiq.registry import BACKENDS
    >>> "onnx" in BACKENDS.names()
    True
"""

from edgefiq.export import onnx as _onnx  # noqa: F401  (registers "onnx")
from edgefiq.export import openvino as _openvino  # noqa: F401  (registers "openvino")
from edgefiq.export import tflite as _tflite  # noqa: F401  (registers "tflite")
from edgefiq.export import torch as _torch  # noqa: F401  (registers "torch")
from edgefiq.export.api import ExportResult, explain_conversion_error, export_checkpoint, export_model
from edgefiq.export.base import AdvancedExportOptions, ArtifactMeta, ExportOptions, load_runner, read_meta

__all__ = ["AdvancedExportOptions", "ArtifactMeta", "ExportOptions", "ExportResult", "explain_conversion_error", "export_checkpoint",
           "export_model", "load_runner", "read_meta"]
