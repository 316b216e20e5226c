"""Writers for the ``edgefiq eval`` report: report.json, report.md and edc.png.

How to read it: for each target FMR and threshold convention, the table lists every
quality source's pAUC x1e3 (area under FNMR vs. discarded fraction up to the limit; lower
is better: discarding that source's lowest scores removes more recognition errors), the
normalised pAUC (0 = oracle, 1 = no better than random discarding) and the FNMR at 0 and at
the limit. The correlation table compares the sources' rankings (SRCC/KRCC) and values
(PLCC); rows involving the reference source are marked.

Example:
    >>> write_report(report, "report/")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.metrics.bootstrap import INTERVAL_NOTE, interval_text
from edgefiq.utils import atomic_write_text, save_figure, write_json


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def format_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown (tables per FMR and convention, correlations)."""
    lines = ["# edgefiq eval report", "",
             f"- images: {report['n_images']} under `{report['images_root']}`"
             + (f" ({report['n_images_left_out']} left out: not in every source)" if report["n_images_left_out"] else ""),
             f"- comparisons: {report['n_genuine']} genuine, {report['n_impostor']} impostor; protocol: {report['protocol']}",
             f"- FR model: {report['fr_model']}",
             f"- pAUC up to discard fraction {report['limit']}, x1e3 (lower is better); "
             "pAUC norm: 0 = oracle, 1 = no better than random discarding",
             "- conventions: `fixed` = threshold set once on all impostors, genuine comparisons discarded "
             "(ISO/IEC 29794-1, Schlett et al.); `reestimate` = all comparisons discarded, threshold "
             "re-estimated after each step (CR-FIQA style)", ""]
    for fmr in report["fmrs"]:
        for conv in report["conventions"]:
            rows = [r for r in report["pauc"] if r["fmr"] == fmr and r["convention"] == conv]
            if not rows:
                continue
            best = min(r["pauc_x1e3"] for r in rows)
            lines += [f"## FMR {fmr:g}, {conv} threshold", "",
                      "| source | pAUC x1e3 | pAUC norm | FNMR@0 | FNMR@limit | threshold@0 |",
                      "|---|---:|---:|---:|---:|---:|"]
            for r in sorted(rows, key=lambda r: r["pauc_x1e3"]):
                mark = " **(best)**" if r["pauc_x1e3"] == best else ""
                lines.append(f"| {r['source']}{mark} | {_fmt(r['pauc_x1e3'])} | {_fmt(r['pauc_norm'], 3)} | "
                             f"{_fmt(r['fnmr_at_0'], 4)} | {_fmt(r['fnmr_at_limit'], 4)} | {_fmt(r['threshold'], 4)} |")
            if not all(r["fmr_resolvable"] for r in rows):
                lines.append(f"\nNote: fewer than 1/FMR = {1 / fmr:.0f} impostor comparisons: this FMR is not "
                             "resolvable, the threshold is the highest impostor score.")
            lines.append("")
    lines += threshold_markdown(report) + family_markdown(report.get("by_degradation"))
    if report["correlations"]:
        lines += [f"## Correlations between sources (reference: {report['reference']})", "",
                  "| a | b | SRCC | PLCC | KRCC |", "|---|---|---:|---:|---:|"]
        for c in sorted(report["correlations"], key=lambda c: not c["vs_reference"]):
            a = f"**{c['a']}**" if c["a"] == report["reference"] else c["a"]
            b = f"**{c['b']}**" if c["b"] == report["reference"] else c["b"]
            lines.append(f"| {a} | {b} | {_fmt(c['srcc'], 4)} | {_fmt(c['plcc'], 4)} | {_fmt(c['krcc'], 4)} |")
        lines.append("")
    lines += ["## Sources", ""] + [f"- `{s['name']}`: {s['origin']}" for s in report["sources"]] + [""]
    lines.append("EDC curves: `edc.png`; all numbers and curves: `report.json`.")
    return "\n".join(lines) + "\n"


def family_markdown(rows: list[dict[str, Any]] | None) -> list[str]:
    """Lines of the per-family pAUC table (``edgefiq.eval.core.by_family``): one row per family, one column per
    source and FMR; the best source of a row in bold.

    Example:
        >>> family_markdown([{"family": "clean", "n_images": 9, "pauc": {"a": {"0.001": 1.5}}}])[2]
        '| family | images | a @0.001 |'
    """
    if not rows:
        return []
    cols = [(src, fmr) for src, per in rows[0]["pauc"].items() for fmr in per]
    lines = ["## pAUC x1e3 by degradation family (fixed threshold)", "",
             "| family | images | " + " | ".join(f"{s} @{f}" for s, f in cols) + " |",
             "|---|---:|" + "---:|" * len(cols)]
    for r in rows:
        vals = [r["pauc"].get(s, {}).get(f) for s, f in cols]
        best = {f: min((v for (s2, f2), v in zip(cols, vals) if f2 == f and v is not None), default=None)
                for _, f in cols}
        cells = [f"**{_fmt(v)}**" if v is not None and v == best[f] else _fmt(v) for (_, f), v in zip(cols, vals)]
        lines.append(f"| {r['family']} | {r['n_images']} | " + " | ".join(cells) + " |")
    lines += ["", "Each family row: that family's degraded copies together with the clean images.", ""]
    return lines + ratio_markdown(rows)


def ratio_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """Lines of the table of each source's pAUC over the reference's (the rows' first source), with the 90%
    identity-bootstrap interval of ``by_family(..., bootstrap=N)``; nothing without intervals.

    Example:
        >>> ratio_markdown([{"family": "blur", "n_images": 9, "pauc": {"t": {"0.001": 2.0}, "s": {"0.001": 3.0}},
        ...                  "ratio_ci": {"s": {"0.001": [1.2, 1.9]}}}])[4]
        '| blur | 1.50 [1.20, 1.90] |'
    """
    if not rows or not rows[0].get("ratio_ci"):
        return []
    ref = next(iter(rows[0]["pauc"]))
    cols = [(src, fmr) for src, per in rows[0]["ratio_ci"].items() for fmr in per]

    def cell(r: dict[str, Any], src: str, fmr: str) -> str:
        v, t = r["pauc"].get(src, {}).get(fmr), r["pauc"].get(ref, {}).get(fmr)
        return (_fmt(v / t) if v is not None and t else "—") + interval_text(r, src, fmr)

    lines = [f"## pAUC relative to {ref} by family, with a 90% interval (identities resampled)", "",
             "| family | " + " | ".join(f"{s} @{f}" for s, f in cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {r['family']} | " + " | ".join(cell(r, s, f) for s, f in cols) + " |" for r in rows]
    return lines + ["", INTERVAL_NOTE, ""]


def threshold_markdown(report: dict[str, Any]) -> list[str]:
    """Lines of the threshold tables: per FMR and source, the quality threshold that rejects a fraction of the
    images and the FNMR it leaves (``edgefiq.metrics.thresholds``; pick a gate from here).

    Example:
        >>> threshold_markdown({"thresholds": []})
        []
    """
    rows = report.get("thresholds") or []
    lines: list[str] = []
    for fmr in dict.fromkeys(r["fmr"] for r in rows):
        lines += [f"## Quality thresholds at FMR {fmr:g}", "",
                  "Reject images scoring below the threshold; FNMR over the genuine comparisons left, comparison "
                  "threshold fixed on all impostors.", "",
                  "| source | reject fraction | quality threshold | images rejected | genuine discarded | FNMR |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in (r for r in rows if r["fmr"] == fmr):
            lines.append(f"| {r['source']} | {r['fraction']:g} | {_fmt(r['threshold'], 4)} | "
                         f"{_fmt(r['images_rejected'], 3)} | {_fmt(r['genuine_discarded'], 3)} | {_fmt(r['fnmr'], 4)} |")
        lines.append("")
    return lines


def plot_edc(report: dict[str, Any], out_png: str | Path) -> Path:
    """One panel per (FMR, convention): FNMR vs discarded fraction, one line per source, pAUC shaded."""
    # heavy optional ([train]): matplotlib only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fmrs, convs = report["fmrs"], report["conventions"]
    limit = report["limit"]
    fig, axes = plt.subplots(len(fmrs), len(convs), figsize=(5.5 * len(convs), 4 * len(fmrs)), squeeze=False)
    names = [s["name"] for s in report["sources"]]
    colors = {n: plt.get_cmap("tab10")(k % 10) for k, n in enumerate(names)}
    paucs = {(r["source"], r["fmr"], r["convention"]): r["pauc_x1e3"] for r in report["pauc"]}
    for a, fmr in enumerate(fmrs):
        for b, conv in enumerate(convs):
            ax = axes[a][b]
            for c in report["curves"]:
                if c["fmr"] != fmr or c["convention"] != conv:
                    continue
                x, y = np.asarray(c["discard"]), np.asarray(c["fnmr"])
                label = f"{c['source']} (pAUC {paucs[(c['source'], fmr, conv)]:.1f})"
                ax.plot(x, y, color=colors[c["source"]], label=label, lw=1.6,
                        ls="--" if c["source"] == "random" else "-")
                m = x < limit
                xf = np.r_[x[m], limit]
                yf = np.r_[y[m], np.interp(limit, x, y) if x[-1] >= limit else y[-1]]
                ax.fill_between(xf, yf, color=colors[c["source"]], alpha=0.08)
            ax.axvline(limit, color="gray", lw=0.8, ls=":")
            ax.set_xlim(0, limit * 1.02)
            what = "genuine comparisons" if conv == "fixed" else "comparisons"
            ax.set_xlabel(f"fraction of {what} discarded (lowest pair quality first)")
            ax.set_ylabel(f"FNMR @ FMR {fmr:g}")
            ax.set_title(f"EDC, FMR {fmr:g}, {conv} threshold")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return save_figure(fig, out_png)


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``edc.png`` into ``out_dir``.

    Example:
        >>> write_report(evaluate(...), "report/")["md"]   # doctest: +SKIP
        PosixPath('report/report.md')
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"json": write_json(out / "report.json", report),
            "md": atomic_write_text(out / "report.md", format_markdown(report)),
            "png": plot_edc(report, out / "edc.png")}
