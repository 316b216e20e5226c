"""Benchmarks: one timing routine for every backend, report writers, SSH devices.

Torch-free for exported artifacts (a device with the base ``pip install edgefiq`` runs it).

Example:
    >>> from edgefiq.bench import benchmark
    >>> rows = benchmark(["student.onnx"], threads=(1, 2), batches=(1, 8))   # doctest: +SKIP
"""

from edgefiq.bench.core import benchmark, benchmark_isolated, check_floors, environment, merge_rounds
from edgefiq.timing import peak_rss_mb, time_callable

__all__ = ["benchmark", "benchmark_isolated", "check_floors", "environment", "merge_rounds", "time_callable",
           "peak_rss_mb"]
