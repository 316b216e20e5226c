"""How the export stage splits its work over worker processes (``edgefiq run``'s ``export.options.workers``).

Units of work are ``(target, [(model, precision), ...])`` jobs (``export_jobs``) started slowest first on
one worker per core (``export_workers``); ``edgefiq.pipeline.stages`` runs them.
"""

from __future__ import annotations

import os
from typing import Sequence, TypeVar

from edgefiq.registry import BACKENDS

M = TypeVar("M")


def export_jobs(targets: Sequence[str], precisions: Sequence[str],
                models: Sequence[M]) -> list[tuple[str, list[tuple[M, str]]]]:
    """The export stage's units of work, ``(target, [(model, precision), ...])``, in the order a worker pool
    should start them. A job runs in order, and its int8 exports pass accuracy-control hints from model
    to model (``edgefiq.pipeline.stages._export_chain``), so a target's int8 exports are one job. Every
    target gets one job, slowest target first; a history-free target's other precisions are split off into
    one job per export, queued last to fill in (a backend's ``history_free``: its files do not depend on what
    the process exported before). On 2 cores the quickstart's TFLite int8 chain then has a core to itself.

    Example:
        >>> export_jobs(["openvino", "tflite"], ["fp32", "int8"], ["a", "b"])    # doctest: +NORMALIZE_WHITESPACE
        [('tflite', [('a', 'int8'), ('b', 'int8')]),
         ('openvino', [('a', 'fp32'), ('a', 'int8'), ('b', 'fp32'), ('b', 'int8')]),
         ('tflite', [('a', 'fp32')]), ('tflite', [('b', 'fp32')])]
    """
    jobs: list[tuple[str, list[tuple[M, str]]]] = []
    fill: list[tuple[str, list[tuple[M, str]]]] = []
    for t in slowest_first(targets):
        todo = [(m, p) for m in models for p in precisions]
        if t in BACKENDS and BACKENDS.get(t).history_free:
            fill += [(t, [one]) for one in todo if one[1] != "int8"]
            todo = [one for one in todo if one[1] == "int8"]
        if todo:
            jobs.append((t, todo))
    return jobs + fill


def slowest_first(targets: Sequence[str]) -> list[str]:
    """``targets`` with the longest export chains first (a backend's ``export_cost``), so that a pool of workers
    starts them at once and the short ones fill in after (longest-processing-time scheduling); ties and
    unknown targets keep their order, unknown ones last.

    Example:
        >>> slowest_first(["onnx", "openvino", "tflite", "torch"])
        ['tflite', 'openvino', 'onnx', 'torch']
    """
    return sorted(targets, key=lambda t: -BACKENDS.get(t).export_cost if t in BACKENDS else 1)


def export_workers(requested: int, n_targets: int) -> int:
    """Processes for the export stage: ``requested``, or 0 = one per core, at most one per target.

    With the slowest work started first (``export_jobs``), 2 workers on 2 cores beat 3: the TFLite int8 chain
    has a core to itself while the rest shares the other. Quickstart export stage on 2 cores, Intel Xeon:
    141.8 s with one worker per target, 128.5 s with 2 and the slowest target first, 121-133 s with 2 and
    ``export_jobs`` (results/quickstart/reproducibility.md).

    Example:
        >>> export_workers(1, 3), export_workers(5, 3)
        (1, 3)
    """
    return max(1, min(requested or (os.cpu_count() or 1), n_targets))
