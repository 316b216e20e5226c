"""The final report of a run: ``report.md``, ``report.json`` and plots in the run folder.

One row per exported artifact (student, pruning method and rho, target, precision, size,
p50 latency at 1 thread, SRCC vs the teacher, pAUC at each FMR, parity, status) plus the
teacher's row and a random-score baseline on the same comparisons. A run on the synthetic
sample says so in the title, in a banner and in ``report.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from edgefiq.metrics.bootstrap import INTERVAL_NOTE, interval_text
from edgefiq.pipeline.recipe import EvalSection
from edgefiq.pipeline.records import (ArtifactRecord, BenchOutput, BenchRecord, EvalOutput, EvalRow, ExportOutput,
                                      ModelsOutput, ReportOutput, row_key)
from edgefiq.pipeline.runner import StageContext
from edgefiq.utils import atomic_write_text, save_figure, write_json

log = logging.getLogger("edgefiq.pipeline")

SYNTHETIC_BANNER = ("**SYNTHETIC DATA.** This run used the built-in procedural sample: the numbers show that every "
                    "stage works end to end, not how good a quality model is on real faces.")


def write_report(ctx: StageContext, name: str, ev_section: EvalSection) -> ReportOutput:
    """Assemble rows from the records of the export, eval and bench stages and write the report files
    of run ``name`` (the eval section gives the FMRs, discard limit and convention).

    Returns:
        the stage's record: run-relative paths of report.md, report.json and the plots, and
        ``n_failed``, the artifact rows whose status is not ok.

    Example:
        >>> write_report(ctx, recipe.name, recipe.eval).all_ok   # doctest: +SKIP
        True
    """
    rows = build_rows(ctx.outputs, ctx.run_dir)
    fmrs = [f"{f:g}" for f in ev_section.fmr] if ev_section.edc else []
    data, ev = ctx.outputs.get("data"), ctx.outputs.get("eval") or EvalOutput()
    label, distill = ctx.outputs.get("label"), ctx.outputs.get("distill") or ModelsOutput()
    summary = {
        "recipe": name,
        "synthetic": bool(data and data.synthetic),
        "teacher": label.teacher.to_json() if label else None,
        "fr_model": ev.fr_model,
        "data": {k: getattr(data, k, None) for k in ("n_images", "n_identities", "n_train", "n_val")},
        "eval": {k: getattr(ev, k) for k in ("n_images", "n_identities", "n_genuine", "n_impostor", "protocol")},
        "fmr": list(ev_section.fmr),
        "discard_limit": ev_section.discard_limit,
        "convention": ev_section.convention,
        "stage_seconds": ctx.seconds,
        "distill": {k: m.metrics for k, m in distill.models.items()},
        "rows": rows,
        "by_degradation": [f.to_json() for f in ev.by_degradation] if ev.by_degradation else None,
        "all_ok": all(r["status"] == "ok" for r in rows if r["kind"] == "artifact"),
        "slower_than_parent": [f"{row_key(r)} ({r['vs_parent']:.2f}x its parent)"
                               for r in rows if r.get("slower_than_parent")],
    }
    write_json(ctx.run_dir / "report.json", summary)
    plots = make_plots(ctx, rows, fmrs)
    atomic_write_text(ctx.run_dir / "report.md", render_markdown(summary, fmrs, [ctx.rel(p) for p in plots]))
    return ReportOutput("report.md", "report.json", [ctx.rel(p) for p in plots], summary["all_ok"],
                        sum(r["status"] != "ok" for r in rows if r["kind"] == "artifact"))


def build_rows(outputs: Mapping[str, Any], run_dir: Path | None = None) -> list[dict[str, Any]]:
    """Merge the records of export (what, parity), eval (SRCC, pAUC) and bench (latency) into report rows,
    joined by artifact key."""
    ev, bench_out = outputs.get("eval") or EvalOutput(), outputs.get("bench") or BenchOutput()
    eval_rows = {r.source: r for r in ev.rows}
    bench = {b.key: b for b in bench_out.rows if b.threads == 1 and b.batch == 1}
    rows: list[dict[str, Any]] = []
    for src in ("teacher", "random"):
        if src in eval_rows:
            e = eval_rows[src]
            rows.append({"model": src, "kind": e.kind, **e.metrics(), "status": "ok"})
    teacher_p50 = {}
    for t in bench_out.teacher:
        if t.threads == 1 and t.batch == 1:
            rows.append({"model": "teacher", "kind": "teacher", "target": t.target, "precision": t.precision,
                         "p50_ms": t.p50_ms, "note": f"{t.passes} network passes: " + ", ".join(t.networks),
                         "status": "ok" if t.status == "ok" else f"failed: {t.reason}"})
            teacher_p50[t.target] = t.p50_ms
    for art in (outputs.get("export") or ExportOutput()).artifacts:
        e, b = eval_rows.get(art.key), bench.get(art.key)
        row = {"model": art.name, "kind": "artifact", "student": art.student, "method": art.method,
               "rho": art.rho, "target": art.target, "precision": art.precision,
               "precision_detail": _precision(art),
               "mixed_precision": art.mixed_precision.to_json() if art.mixed_precision else None,
               "path": art.path, "size_bytes": (b and b.size_bytes) or _size(art.path, run_dir),
               "p50_ms": b.p50_ms if b else None, "bench_status": b.status if b else None,
               **(e.metrics() if e else {}), "parity": parity_summary(art.parity), "parity_detail": art.parity}
        row["status"] = _status(art, e, b)
        tp = teacher_p50.get(art.target)
        row["teacher_p50_ms"] = tp
        row["speedup"] = tp / row["p50_ms"] if tp and row.get("p50_ms") else None
        rows.append(row)
    flag_slower_than_parent(rows)
    return rows


def flag_slower_than_parent(rows: list[dict[str, Any]]) -> None:
    """Set ``vs_parent`` (p50 / the unpruned parent's p50 on the same target and precision) and
    ``slower_than_parent`` on every pruned artifact row.

    Example:
        >>> rows = [{"kind": "artifact", "model": "s", "student": "s", "method": "none", "target": "onnx",
        ...          "precision": "fp32", "p50_ms": 1.0},
        ...         {"kind": "artifact", "model": "s/structured-0.3", "student": "s", "method": "structured",
        ...          "target": "onnx", "precision": "fp32", "p50_ms": 2.5}]
        >>> flag_slower_than_parent(rows); rows[1]["vs_parent"], rows[1]["slower_than_parent"]
        (2.5, True)
    """
    parents = {(r["student"], r["target"], r["precision"]): r.get("p50_ms") for r in rows
               if r.get("kind") == "artifact" and r.get("method") == "none"}
    for r in rows:
        if r.get("kind") != "artifact" or r.get("method") in (None, "none"):
            continue
        parent = parents.get((r.get("student"), r["target"], r["precision"]))
        if parent and r.get("p50_ms"):
            r["vs_parent"] = r["p50_ms"] / parent
            r["slower_than_parent"] = r["vs_parent"] > 1.0


def _precision(art: ArtifactRecord) -> str:
    """``int8``, or ``int8 mixed (2/17 blocks int8)`` when accuracy control kept blocks in float."""
    mixed = art.mixed_precision
    if not mixed or not mixed.float_units:
        return art.precision
    return f"{art.precision} mixed ({mixed.int8_units}/{mixed.units} blocks int8)"


def _status(art: ArtifactRecord, e: EvalRow | None, b: BenchRecord | None) -> str:
    if art.status != "ok":
        return art.status
    if e is None or e.srcc is None:
        return "failed: not evaluated"
    if b is None:
        return "failed: not benchmarked"
    if b.status != "ok":
        return f"failed: bench {b.status}"
    return "ok"


def _size(path: str | None, run_dir: Path | None) -> int | None:
    """Bytes of every file of an artifact (``bench.core.artifact_size_bytes``) when the bench did not report it."""
    if not path or run_dir is None or not (run_dir / path).is_file():
        return None
    from edgefiq.bench.core import artifact_size_bytes
    from edgefiq.runtime.sidecar import backend_for_path

    return artifact_size_bytes(run_dir / path, backend_for_path(run_dir / path))


def parity_summary(parity: dict[str, Any]) -> str:
    """One short cell from the export's parity record.

    ``ok (max|d|=3e-06)``, ``ok (max|d|=0.011, srcc=0.9988, 95% LB 0.9975)`` (int8: the gate's one-sided
    lower confidence bound of the SRCC vs fp32), ``FAILED ...``.
    """
    if not parity:
        return "n/a"
    passed = parity.get("passed", parity.get("ok"))
    bits = []
    for k, label in (("max_abs_diff", "max|d|"), ("srcc", "srcc"), ("srcc_vs_fp32", "srcc")):
        v = parity.get(k)
        if isinstance(v, (int, float)):
            bits.append(f"{label}={v:.2g}" if "d|" in label else f"{label}={v:.4f}")
    lb, conf = parity.get("srcc_lower_bound"), (parity.get("tolerance") or {}).get("confidence")
    if isinstance(lb, (int, float)) and isinstance(conf, (int, float)):
        bits.append(f"{conf:.0%} LB {lb:.4f}")
    word = "ok" if passed else ("not verified" if passed is None else "FAILED")
    return f"{word} ({', '.join(bits)})" if bits else word


def _speed(r: dict[str, Any]) -> str:
    if r["kind"] == "teacher" and r.get("note"):
        return r["note"]
    return f"{r['speedup']:.1f}x" if isinstance(r.get("speedup"), (int, float)) else "—"


def _vs_parent(r: dict[str, Any]) -> str:
    if not isinstance(r.get("vs_parent"), (int, float)):
        return "—"
    return f"**{r['vs_parent']:.2f}x SLOWER**" if r.get("slower_than_parent") else f"{r['vs_parent']:.2f}x"


def _fmt(v: Any, spec: str = ".3f") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def _size_str(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "—"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def render_markdown(summary: dict[str, Any], fmrs: list[str], plots: list[str]) -> str:
    """The Markdown report (title, provenance, the table, plots)."""
    syn = summary["synthetic"]
    lines = [f"# edgefiq run: {summary['recipe']}{' (SYNTHETIC DATA)' if syn else ''}", ""]
    if syn:
        lines += [SYNTHETIC_BANNER, ""]
    t = summary.get("teacher") or {}
    d, e = summary["data"], summary["eval"]
    lines += [
        f"- Teacher: `{t.get('name')}` {json.dumps(t.get('options', {}))}",
        f"- Data: {d.get('n_images')} images of {d.get('n_identities')} identities "
        f"({d.get('n_train')} train / {d.get('n_val')} validation images, identity-disjoint)",
        (f"- Evaluation: {e.get('n_images')} validation images of {e.get('n_identities')} identities, "
         f"{e.get('n_genuine')} genuine / {e.get('n_impostor')} impostor comparisons "
         f"({e.get('protocol') or 'identities-from-folders'}; a photo and its own degraded copy are not a genuine "
         f"attempt), FR model: {summary.get('fr_model')}"
         if fmrs else f"- Evaluation: {e.get('n_images')} validation images; no EDC (eval.edc is false)"),
        *([f"- pAUC: area under the EDC (FNMR at the given FMR vs fraction discarded, threshold "
           f"{summary['convention']}), discard 0..{summary['discard_limit']}, x1e3; lower is better."] if fmrs else []),
        "- SRCC: Spearman correlation with the teacher's scores on the validation images. Parity: the export's "
        "check of the artifact against the torch model (fp32: max abs diff; int8: SRCC vs fp32).",
        f"- Status: {'every artifact ok' if summary['all_ok'] else 'SOME ARTIFACTS FAILED (see status column)'}",
        "- Latency: p50 of batch-1 calls at 1 thread. Teacher rows: the teacher's own network passes per image "
        "exported to that runtime in fp32 and timed the same way (see their note); speed-up = teacher p50 / "
        "artifact p50 on the same runtime. vs parent: a pruned artifact's p50 / its unpruned parent's on the same "
        "runtime and precision (above 1 = pruning made it slower, flagged SLOWER).",
        *([f"- **Pruned artifacts slower than their unpruned parent:** {'; '.join(summary['slower_than_parent'])}"]
          if summary.get("slower_than_parent") else []),
        *(["- int8 mixed (k/N blocks int8): under accuracy control (`export.options.accuracy_control`) plain int8 "
           "did not rank like fp32, so the other N-k blocks stay float (the fewest that hold SRCC vs fp32 on the "
           "calibration images; the artifact's sidecar lists them and every trial). Few int8 blocks means the model "
           "is sensitive to 8-bit activations, and its int8 artifact is close to fp32 in size and speed."]
          if any(r.get("mixed_precision") and r["mixed_precision"].get("float_units") for r in summary["rows"])
          else []),
        "",
    ]
    head = ["model", "method", "rho", "target", "precision", "size", "p50 ms (1 thr)", "speed-up", "vs parent",
            "SRCC vs teacher",
            *[f"pAUC@FMR{f}" for f in fmrs], "parity", "status"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["rows"]:
        cells = [r["model"] if r["kind"] != "teacher" else f"**teacher** ({t.get('name')})",
                 r.get("method") or "—", _fmt(r.get("rho"), "g"), r.get("target") or "—",
                 r.get("precision_detail") or r.get("precision") or "—", _size_str(r.get("size_bytes")),
                 _fmt(r.get("p50_ms"), ".3g"), _speed(r), _vs_parent(r),
                 _fmt(r.get("srcc"), ".4f"), *[_fmt(r.get(f"pauc@{f}"), ".2f") for f in fmrs],
                 r.get("parity") or "—", r["status"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")  # a '|' in a cell splits it
    lines += family_table(summary.get("by_degradation"), fmrs[:1])
    if summary.get("stage_seconds"):
        lines += ["", "Stage wall times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in summary["stage_seconds"].items()
                                                           if isinstance(v, (int, float)))]
    if plots:
        lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def worst_family(families: list[dict[str, Any]], source: str, fmr: str,
                 reference: str = "teacher") -> tuple[str, float] | None:
    """The degradation family (clean images aside) where ``source``'s pAUC is highest relative to
    ``reference``'s, and that ratio; None without families.

    Example:
        >>> worst_family([{"family": "blur", "pauc": {"teacher": {"0.001": 2.0}, "s": {"0.001": 3.0}}}], "s", "0.001")
        ('blur', 1.5)
    """
    ratios = [(f["family"], f["pauc"][source][fmr] / f["pauc"][reference][fmr]) for f in families
              if f["family"] != "clean" and f["pauc"].get(source, {}).get(fmr) is not None
              and f["pauc"].get(reference, {}).get(fmr)]
    return max(ratios, key=lambda r: r[1]) if ratios else None


def _worst_cell(families: list[dict[str, Any]], source: str, fmr: str, worst: tuple[str, float] | None) -> str:
    if not worst:
        return "—"
    row = next(f for f in families if f["family"] == worst[0])
    return f"{worst[1]:.3f} ({worst[0]})" + interval_text(row, source, fmr)


def family_table(families: list[dict[str, Any]] | None, fmrs: list[str]) -> list[str]:
    """Lines of the per-family pAUC table: a row per source (teacher, random, every artifact), a column per
    family at the first FMR (the best of each column in bold), and the source's worst family against the
    teacher (:func:`worst_family`)."""
    if not families or not fmrs:
        return []
    fmr, names = fmrs[0], list(families[0]["pauc"])
    best = {f["family"]: min((v for v in (f["pauc"][n].get(fmr) for n in names) if v is not None), default=None)
            for f in families}
    lines = ["", f"pAUC@FMR{fmr} by degradation family (clean: the clean images alone; a family: its copies with "
             "the clean images; lower is better; worst: the family where the source's pAUC is highest relative "
             "to the teacher's, clean aside):", "",
             "| source | " + " | ".join(f"{f['family']} ({f['n_images']})" for f in families) + " | worst / teacher |",
             "|---|" + "---:|" * (len(families) + 1)]
    for n in names:
        cells = [f["pauc"][n].get(fmr) for f in families]
        worst = worst_family(families, n, fmr) if n != "teacher" else None
        lines.append(f"| {n} | " + " | ".join(
            f"**{_fmt(v, '.2f')}**" if v == best[f["family"]] else _fmt(v, ".2f") for v, f in zip(cells, families))
            + f" | {_worst_cell(families, n, fmr, worst)} |")
    if any(f.get("ratio_ci") for f in families):
        lines += ["", INTERVAL_NOTE]
    if not any(f.get("srcc") for f in families):
        return lines
    lines += ["", "SRCC with the teacher by degradation family (clean: on the clean images alone; a family: its "
              "copies with the clean images):", "",
              "| source | " + " | ".join(f["family"] for f in families) + " |", "|---|" + "---:|" * len(families)]
    for n in names[1:]:
        lines.append(f"| {n} | " + " | ".join(_fmt((f.get("srcc") or {}).get(n), ".3f") for f in families) + " |")
    return lines


def make_plots(ctx: StageContext, rows: list[dict[str, Any]], fmrs: list[str]) -> list[Path]:
    """EDC curves (teacher, random, fp32 artifacts of one target) and the latency/SRCC trade-off."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[Path] = []
    pdir = ctx.run_dir / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    ev, label, data = ctx.outputs.get("eval") or EvalOutput(), ctx.outputs.get("label"), ctx.outputs.get("data")
    curves_rel = ev.curves
    curves = json.loads(ctx.path(curves_rel).read_text()) if curves_rel and ctx.path(curves_rel).is_file() else {}
    arts = [r for r in rows if r["kind"] == "artifact" and r.get("srcc") is not None]
    first_target = arts[0]["target"] if arts else None
    show = {"teacher", "random"} | {row_key(r) for r in arts
                                     if r["precision"] == "fp32" and r["target"] == first_target}
    syn = " (synthetic data)" if data and data.synthetic else ""
    for fmr in fmrs:
        cs = curves.get(fmr, {})
        if not cs:
            continue
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for name, c in cs.items():
            if name in show:
                ax.plot(c["discard"], c["fnmr"], label=name, lw=2.2 if name == "teacher" else 1.2,
                        ls="--" if name == "random" else "-")
        ax.set_xlabel("fraction of comparisons discarded (lowest quality first)")
        ax.set_ylabel(f"FNMR at FMR {fmr}")
        ax.set_title(f"EDC, {label.teacher.name if label else None} teacher{syn}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        p = pdir / f"edc_fmr{fmr}.png"
        out.append(save_figure(fig, p))
    lat = [r for r in arts if isinstance(r.get("p50_ms"), (int, float)) and isinstance(r.get("srcc"), (int, float))]
    if lat:
        out.append(save_figure(_latency_figure(plt, lat, teacher_rows(rows), syn), pdir / "latency_vs_srcc.png"))
    families = [f.to_json() for f in ev.by_degradation] if ev.by_degradation else None
    if lat and families and fmrs:
        fig = _frontier_figure(plt, lat, families, fmrs[0], syn)
        if fig is not None:
            out.append(save_figure(fig, pdir / "latency_vs_worst_family.png"))
    return out


def _frontier_figure(plt: Any, lat: list[dict[str, Any]], families: list[dict[str, Any]], fmr: str, syn: str) -> Any:
    """Worst family's pAUC relative to the teacher (:func:`worst_family`) vs p50 (log scale), one point per
    artifact: the frontier to choose a model from. None when no artifact has per-family pAUC."""
    pts = [(r, worst_family(families, row_key(r), fmr)) for r in lat]
    pts = [(r, w) for r, w in pts if w is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.4))
    models = list(dict.fromkeys(r["model"] for r, _ in pts))
    markers = {"fp32": "o", "fp16": "s", "int8": "^"}
    for r, (fam, ratio) in pts:
        ax.scatter(r["p50_ms"], ratio, color=f"C{models.index(r['model']) % 10}",
                   marker=markers.get(r["precision"], "x"), s=30, alpha=0.85)
        ax.annotate(f"{r['target']} ({fam})", (r["p50_ms"], ratio), fontsize=5, color="0.35",
                    xytext=(3, 2), textcoords="offset points")
    ax.axhline(1.0, color="0.5", ls=":", lw=1)
    handles = [plt.Line2D([], [], color=f"C{k % 10}", marker="o", ls="", label=m) for k, m in enumerate(models)]
    handles += [plt.Line2D([], [], color="0.3", marker=mk, ls="", label=p) for p, mk in markers.items()
                if any(r["precision"] == p for r, _ in pts)]
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency, 1 thread, batch 1 (ms, log scale; each point one artifact)")
    ax.set_ylabel(f"worst family pAUC@FMR{fmr} / teacher's")
    ax.set_title(f"Speed vs the worst degradation family (lower left is better){syn}")
    ax.grid(alpha=0.3, which="both")
    return fig


def teacher_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's teacher latency rows (one per runtime)."""
    return [r for r in rows if r.get("kind") == "teacher" and isinstance(r.get("p50_ms"), (int, float))]


def _latency_figure(plt: Any, lat: list[dict[str, Any]], teachers: list[dict[str, Any]], syn: str) -> Any:
    """SRCC vs p50 (log scale): colour = model, marker = precision; dotted lines = the teacher's p50 per runtime."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    models = list(dict.fromkeys(r["model"] for r in lat))
    colours = {m: f"C{k % 10}" for k, m in enumerate(models)}
    markers = {"fp32": "o", "fp16": "s", "int8": "^"}
    for r in lat:
        ax.scatter(r["p50_ms"], r["srcc"], color=colours[r["model"]], marker=markers.get(r["precision"], "x"),
                   s=28, alpha=0.85)
    for t in teachers:
        ax.axvline(t["p50_ms"], color="0.5", ls=":", lw=1)
        ax.annotate(f"teacher {t['target']}", (t["p50_ms"], ax.get_ylim()[0]), rotation=90, fontsize=6,
                    color="0.4", va="bottom", ha="right")
    handles = [plt.Line2D([], [], color=colours[m], marker="o", ls="", label=m) for m in models]
    handles += [plt.Line2D([], [], color="0.3", marker=mk, ls="", label=p) for p, mk in markers.items()
                if any(r["precision"] == p for r in lat)]
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency, 1 thread, batch 1 (ms, log scale; each point one runtime)")
    ax.set_ylabel("SRCC vs teacher (validation)")
    ax.set_title(f"Speed vs agreement with the teacher{syn}")
    ax.grid(alpha=0.3, which="both")
    return fig
