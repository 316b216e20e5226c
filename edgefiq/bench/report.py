"""Benchmark report writers: rich table on stdout, JSON, Markdown and a latency PNG.

Example:
    >>> write_bench_report(rows, "bench.json", settings={"threads": [1]})   # doctest: +SKIP
    {'json': PosixPath('bench.json'), 'md': PosixPath('bench.md'), 'png': PosixPath('bench.png')}
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.utils import atomic_write_text, save_figure, write_json

COLUMNS: list[tuple[str, str, str]] = [  # (key, header, format)
    ("artifact", "artifact", "s"), ("backend", "backend", "s"), ("precision", "prec", "s"), ("device", "device", "s"),
    ("threads", "thr", "d"), ("batch", "batch", "d"), ("size_mb", "size MB", ".2f"), ("load_ms", "load ms", ".1f"),
    ("first_ms", "first ms", ".2f"), ("p50_ms", "p50 ms", ".3f"), ("p90_ms", "p90 ms", ".3f"),
    ("p99_ms", "p99 ms", ".3f"), ("p50_spread", "p50 spread", ".0%"), ("other_cpu", "other CPU", ".2f"),
    ("throughput", "img/s", ".1f"), ("peak_rss_mb", "peak RSS MB", ".0f"),
    ("srcc", "SRCC", ".4f"), ("pauc_x1e3", "pAUC x1e3", ".2f"), ("status", "status", "s"),
]


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    v = row.get(key)
    if v is None or v == "":
        return "-"
    if key == "status" and row.get("reason"):
        return f"{v}: {row['reason']}"
    if isinstance(v, float) and not np.isfinite(v):
        return "n/a"
    return format(v, fmt) if fmt != "s" else str(v)


def _columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    optional = {"srcc", "pauc_x1e3", "p50_spread", "other_cpu"}   # p50_spread: with --rounds > 1; other_cpu: Linux
    return [c for c in COLUMNS if c[0] not in optional or any(c[0] in r for r in rows)]


def format_markdown(rows: list[dict[str, Any]], env: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> str:
    """Markdown table of the rows (plus host and settings)."""
    cols = _columns(rows)
    lines = ["# edgefiq bench", ""]
    if env:
        lines.append(f"- host: {env.get('host')} ({env.get('machine')}, {env.get('cpus')} CPUs), "
                     f"python {env.get('python')}, " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()))
    if settings:
        lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    lines += ["- latency per call of `batch` images (perf_counter_ns); img/s at the median; "
              "peak RSS = benchmark process high-water mark so far (VmHWM; per artifact with --isolate); "
              "other CPU = cores other processes kept busy while it was timed (0 = quiet machine)", "",
              "| " + " | ".join(h for _, h, _ in cols) + " |",
              "|" + "|".join("---" if f == "s" else "---:" for _, _, f in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, k, f).replace("|", "/") for k, _, f in cols) + " |")
    return "\n".join(lines) + "\n"


def print_table(rows: list[dict[str, Any]]) -> None:
    """Ultralytics-style summary table on stdout (rich; plain Markdown where rich is not installed)."""
    try:
        # rich: slow to import, and optional on a minimal device install
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # minimal device install
        print(format_markdown(rows))
        return

    cols = _columns(rows)
    table = Table(title="edgefiq bench")
    for key, head, fmt in cols:
        table.add_column(head, justify="left" if fmt == "s" else "right", overflow="fold")
    for r in rows:
        st = r.get("status", "")
        style = "green" if st == "ok" else "yellow" if st.startswith(("ok", "unavail")) else "red"
        table.add_row(*(_cell(r, k, f) for k, _, f in cols), style=None if st == "ok" else style)
    Console(width=max(120, 12 * len(cols))).print(table)


def plot_latency(rows: list[dict[str, Any]], out_png: str | Path) -> Path:
    """Grouped bars: p50 latency per artifact, one bar per (threads, batch), p90 as whisker."""
    # heavy optional ([train]): matplotlib only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "p50_ms" in r]
    arts = list(dict.fromkeys(r["artifact"] for r in ok)) or ["(no successful rows)"]
    settings = list(dict.fromkeys((r["threads"], r["batch"]) for r in ok))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(arts) * max(1, len(settings)) / 2 + 3), 4.5))
    width = 0.8 / max(1, len(settings))
    for k, (th, bs) in enumerate(settings):
        xs, ys, err = [], [], []
        for a_i, a in enumerate(arts):
            r = next((r for r in ok if r["artifact"] == a and r["threads"] == th and r["batch"] == bs), None)
            if r is not None:
                xs.append(a_i + (k - (len(settings) - 1) / 2) * width)
                ys.append(r["p50_ms"])
                err.append(max(0.0, r["p90_ms"] - r["p50_ms"]))
        ax.bar(xs, ys, width=width, yerr=[np.zeros(len(err)), err], capsize=2, label=f"threads {th}, batch {bs}")
    ax.set_xticks(range(len(arts)))
    ax.set_xticklabels(arts, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("latency per call, p50 ms (whisker: p90)")
    ax.set_title("edgefiq bench")
    ax.grid(axis="y", alpha=0.3)
    if settings:
        ax.legend(fontsize=8)
    return save_figure(fig, out_png)


def write_bench_report(rows: list[dict[str, Any]], out_json: str | Path, *, env: dict[str, Any] | None = None,
                       settings: dict[str, Any] | None = None, png: bool = True) -> dict[str, Path]:
    """Write ``out_json`` plus ``.md`` and (if matplotlib is installed) ``.png`` next to it.

    ``out_json`` may be a folder (existing, ending in ``/``, or without a suffix): the report is
    then ``bench.json``/``.md``/``.png`` inside it.

    Example:
        >>> write_bench_report(rows, "results/bench.json")   # doctest: +SKIP
    """
    out = Path(out_json)
    if out.is_dir() or str(out_json).endswith(("/", "\\")) or not out.suffix:   # a folder
        out = out / "bench.json"
    paths = {"json": write_json(out, {"environment": env or {}, "settings": settings or {}, "rows": rows}),
             "md": atomic_write_text(out.with_suffix(".md"), format_markdown(rows, env, settings))}
    if png and importlib.util.find_spec("matplotlib") is not None:  # not part of the device runtime
        paths["png"] = plot_latency(rows, out.with_suffix(".png"))
    return paths
