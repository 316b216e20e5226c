"""The one timing routine every backend goes through (and every other latency edgefiq reports).

A foundation module (numpy and the standard library only): ``edgefiq.bench`` times
backends with it, ``edgefiq.eval.detect`` face detectors and ``edgefiq.pipeline.sweep``
pruned models.

``time_callable(fn, ...)``: one untimed-for-statistics first call (reported as
first-inference time), ``warmup`` further calls, then timed calls until BOTH ``min_runs``
calls and ``min_time_s`` seconds are reached (capped by ``max_runs``). Each call is timed
with ``time.perf_counter_ns``. Latency percentiles use numpy's linear interpolation.

``other_cpu`` (Linux): CPU cores that *other* processes kept busy, on average, while the calls
were timed: all CPUs' busy time in ``/proc/stat`` (steal included) minus this process's own
(``/proc/self/stat``, every thread), over the wall time. On a 2-core machine a 2-thread
benchmark needs both cores, so anything else running lands on a benchmark thread; this says
whether a timing was taken on a quiet machine.

Example:
    >>> t = time_callable(lambda: sum(range(100)), min_runs=5, min_time_s=0.0, warmup=1)
    >>> t["runs"] >= 5 and t["p50_ms"] >= 0
    True
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

import numpy as np


def cpu_ticks() -> tuple[int, int] | None:
    """``(busy ticks of all CPUs, ticks of this process)`` from ``/proc``; None where unavailable."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        with open("/proc/self/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    # user nice system [idle iowait] irq softirq steal; utime + stime are fields 14-15 of stat
    return sum(v[:3]) + sum(v[5:8]), int(st[11]) + int(st[12])


def other_cpu(before: tuple[int, int] | None, after: tuple[int, int] | None, seconds: float) -> float | None:
    """Mean number of cores busy with other processes between two :func:`cpu_ticks` readings."""
    if before is None or after is None or seconds <= 0:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / hz / seconds)


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
        the median latency) and ``other_cpu`` (None off Linux).

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
    ticks = cpu_ticks()
    start = time.perf_counter_ns()
    min_ns = int(min_time_s * 1e9)
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter_ns() - start < min_ns):
        t = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t)
    others = other_cpu(ticks, cpu_ticks(), (time.perf_counter_ns() - start) / 1e9)
    ms = np.asarray(times, dtype=np.float64) / 1e6
    p50 = float(np.percentile(ms, 50))
    return {"first_ms": first_ms, "mean_ms": float(ms.mean()), "p50_ms": p50,
            "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
            "min_ms": float(ms.min()), "runs": int(ms.size), "other_cpu": others,
            "throughput": float(batch * 1000.0 / p50) if p50 > 0 else float("inf")}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux: ``VmHWM`` from ``/proc/self/status`` (the high-water mark of this process's own
    memory map). ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the fallback elsewhere; on
    Linux it is not used because it survives ``execve``: a benchmark started from a large
    parent process (e.g. a python that had torch loaded) would report the parent's peak.
    """
    import resource  # POSIX-only (no Windows module): imported where it is used, as a fallback

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024
