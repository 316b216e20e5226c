"""The names a run gives its artifacts, built in one place.

An artifact of ``edgefiq run`` is one model exported to one target at one precision. Its
``variant`` is ``<target>-<precision>`` (``onnx-int8``: the export folder and a built-in
model's artifact name); its ``key`` adds the model (``face_trunk_64/structured-0.5/onnx-int8``:
the eval, bench and report rows, score files and the per-family table).

Example:
    >>> artifact_key("face_trunk_64/structured-0.5", "onnx", "int8")
    'face_trunk_64/structured-0.5/onnx-int8'
"""

from __future__ import annotations

from typing import Any


def variant(target: str, precision: str) -> str:
    """``<target>-<precision>``, e.g. ``onnx-int8``."""
    return f"{target}-{precision}"


def artifact_key(model: str, target: str, precision: str) -> str:
    """``<model>/<target>-<precision>``: the artifact's name in every stage and report of a run."""
    return f"{model}/{variant(target, precision)}"


def row_key(row: dict[str, Any]) -> str:
    """:func:`artifact_key` of an export or report row (``name`` or ``model``, ``target``, ``precision``)."""
    return artifact_key(row.get("model") or row["name"], row["target"], row["precision"])


def score_file(key: str) -> str:
    """The file name of an artifact's validation scores in the eval stage folder (``scores/<name>``)."""
    return key.replace("/", "__") + ".csv"
