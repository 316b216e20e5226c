"""The one timing routine every backend goes through.

``time_callable(fn, ...)``: one untimed-for-statistics first call (reported as
first-inference time), ``warmup`` further calls, then timed calls until BOTH ``min_runs``
calls and ``min_time_s`` seconds are reached (capped by ``max_runs``). Each call is timed
with ``time.perf_counter_ns``. Latency percentiles use numpy's linear interpolation.

Example:
    >>> t = time_callable(lambda: sum(range(100)), min_runs=5, min_time_s=0.0, warmup=1)
    >>> t["runs"] >= 5 and t["p50_ms"] >= 0
    True
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np


def time_callable(fn: Callable[[], Any], *, warmup: int = 5, min_runs: int = 30, min_time_s: float = 1.0,
                  max_runs: int = 100_000, batch: int = 1) -> dict[str, float | int]:
    """Time ``fn()`` and summarise.

    Args:
        fn: the call to time (e.g. ``lambda: runner(x)``).
        warmup: calls after the first one that are not timed.
        min_runs, min_time_s: keep timing until both are reached.
        max_runs: hard cap on timed calls.
        batch: images per call (for throughput).

    Returns:
        ``first_ms, mean_ms, p50_ms, p90_ms, p99_ms, min_ms, runs, throughput`` (images/s from
        the median latency).

    Example:
        >>> time_callable(lambda: None, min_runs=3, min_time_s=0)["runs"]
        3
    """
    t0 = time.perf_counter_ns()
    fn()
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    for _ in range(warmup):
        fn()
    times: list[int] = []
    start = time.perf_counter_ns()
    min_ns = int(min_time_s * 1e9)
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter_ns() - start < min_ns):
        t = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t)
    ms = np.asarray(times, dtype=np.float64) / 1e6
    p50 = float(np.percentile(ms, 50))
    return {"first_ms": first_ms, "mean_ms": float(ms.mean()), "p50_ms": p50,
            "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
            "min_ms": float(ms.min()), "runs": int(ms.size),
            "throughput": float(batch * 1000.0 / p50) if p50 > 0 else float("inf")}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux: ``VmHWM`` from ``/proc/self/status`` (the high-water mark of this process's own
    memory map). ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the fallback elsewhere; on
    Linux it is not used because it survives ``execve``: a benchmark started from a large
    parent process (e.g. a python that had torch loaded) would report the parent's peak.
    """
    import resource
    import sys

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024
