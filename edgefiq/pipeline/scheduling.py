"""How the export stage splits its work over worker processes (``edgefiq run``'s ``export.options.workers``).

Units of work are ``(target, [(model, precision), ...])`` jobs (``export_jobs``) started slowest first on
one worker per core (``export_workers``); ``edgefiq.pipeline.stages`` runs them.
"""

from __future__ import annotations

import os
from typing import Sequence, TypeVar

M = TypeVar("M")

#: Targets by how long their export chain takes, longest first: each TFLite int8 trial is a litert-torch
#: conversion (quickstart on 2 cores: TFLite 137 s, OpenVINO 87 s, onnxruntime 72 s of worker time).
EXPORT_COST_ORDER = ("tflite", "openvino", "onnx")
#: Targets whose exports are byte-identical whatever the process exported before (tests/test_pipeline_e2e.py
#: ::test_export_workers_make_the_same_artifacts). OpenVINO names graph nodes from a process-wide counter,
#: so its exports stay in one job, in one order, for the same files with any number of workers.
HISTORY_FREE_TARGETS = ("tflite", "onnx")


def export_jobs(targets: Sequence[str], precisions: Sequence[str],
                models: Sequence[M]) -> list[tuple[str, list[tuple[M, str]]]]:
    """The export stage's units of work, ``(target, [(model, precision), ...])``, in the order a worker pool
    should start them. A job runs in order, and its int8 exports pass accuracy-control hints from model
    to model (``edgefiq.pipeline.stages._export_chain``), so a target's int8 exports are one job. Every
    target gets one job, slowest target first; a history-free target's other precisions are split off into
    one job per export, queued last to fill in. On 2 cores the quickstart's TFLite int8 chain then has a
    core to itself.

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
        if t in HISTORY_FREE_TARGETS:
            fill += [(t, [one]) for one in todo if one[1] != "int8"]
            todo = [one for one in todo if one[1] == "int8"]
        if todo:
            jobs.append((t, todo))
    return jobs + fill


def slowest_first(targets: Sequence[str]) -> list[str]:
    """``targets`` with the longest export chains first, so that a pool of workers starts them at once and
    the short ones fill in after (longest-processing-time scheduling); unknown targets go last, in order.

    Example:
        >>> slowest_first(["onnx", "openvino", "tflite", "torch"])
        ['tflite', 'openvino', 'onnx', 'torch']
    """
    rank = {t: k for k, t in enumerate(EXPORT_COST_ORDER)}
    return sorted(targets, key=lambda t: rank.get(t, len(rank)))


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
