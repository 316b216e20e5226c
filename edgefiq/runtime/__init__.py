"""Torch-free inference for devices: load an artifact + its metadata, preprocess, score.

Imports only numpy, pillow and the artifact's one backend runtime (onnxruntime,
openvino or ai-edge-litert): the base ``pip install edgefiq`` (no ``[train]`` extra) gives
``edgefiq score`` and ``edgefiq bench`` without torch.

Example:
    >>> from edgefiq.runtime import load_model, score_folder
    >>> qm = load_model("student_int8.onnx", threads=1)        # doctest: +SKIP
    >>> score_folder("student_int8.onnx", "faces/", "q.csv")   # doctest: +SKIP
"""

from edgefiq.runtime.model import QualityModel, load_model
from edgefiq.runtime.score import score_folder, score_paths, write_scores_csv

__all__ = ["QualityModel", "load_model", "score_folder", "score_paths", "write_scores_csv"]
