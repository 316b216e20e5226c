"""The model card of a built-in model: ``card.json`` (for programs) and ``card.md`` (for people).

``make_card`` gathers the facts from a finished run (report.json, recipe.yaml, eval/eval.json)
and from the shipped artifacts (``edgefiq.pipeline.ship``); ``write_card`` writes both files
and copies the run's EDC plots next to them. The prose fields (intended use, limits,
licences, score scale) default to ``CARD_DEFAULTS`` and can be overridden per build.

Example:
    >>> card = make_card("edgefiq-lfw", model, report, run_dir, shipped, {"n": 8, "seed": 0}, {})   # doctest: +SKIP
    >>> write_card(out_dir, card, run_dir)                                                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from edgefiq import __version__
from edgefiq.metrics.bootstrap import INTERVAL_NOTE, interval_text
from edgefiq.runtime.sidecar import read_meta

CARD_DEFAULTS: dict[str, str] = {
    "intended_use": (
        "Rank or gate aligned face crops by their expected usefulness for face recognition, on CPUs and edge "
        "devices: e.g. keep the best frame of a track, or ask for a new capture before enrolment or matching."),
    "limits": (
        "Input must be a 112x112 crop aligned on the ArcFace 5-point template; unaligned or resized photos get "
        "scores that mean little. Trained on LFW (web photos of mostly adult public figures, mostly frontal and "
        "well lit) plus synthetic degradations: other populations, near-infrared, masks, children and strong pose "
        "are not validated. The scores imitate one teacher on one face recognition model and inherit its biases. "
        "Not a presentation-attack (liveness) detector; not for decisions about people without human review."),
    "score_scale": (
        "Unitless, higher = better. The student is trained to rank and correlate with the teacher (PLCC + rank "
        "losses), so only the order of scores is meaningful, not their absolute values or differences. Read a "
        "score through its position in the validation distributions below (e.g. a score below the clean photos' "
        "10 % quantile is worse than nine in ten ordinary photos). Each artifact's sidecar stores its own "
        "distributions (extra.score_distribution_clean, which `edgefiq score --reject-fraction F` uses, and "
        "extra.score_distribution of all validation images, for `--distribution all` and `--scale 0-100`)."),
    "licence_data": "LFW: no formal licence, distributed for research; check before commercial use.",
    "licence_teacher": "MobileFaceNet weights used by the PreFIQs teacher and the evaluation: Apache-2.0.",
    "licence_weights": ("These weights: derived from LFW images through the teacher; use them on the terms LFW "
                        "allows (research). edgefiq's code: Apache-2.0."),
}
INPUT_SPEC = ("aligned 112x112 RGB face crops on the ArcFace 5-point template (`edgefiq data align`, or "
              "`edgefiq score --landmarks`){resized}")


def build_machine() -> dict[str, Any]:
    """CPU model, core count and whether it has VNNI (fast int8 dot products): where the latencies were taken.

    Example:
        >>> sorted(build_machine())
        ['cpu', 'cpus', 'machine', 'vnni']
    """
    import os
    import platform

    cpu, flags = platform.processor() or platform.machine(), ""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        text = info.read_text(errors="replace")
        cpu = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), cpu)
        flags = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    return {"cpu": cpu, "machine": platform.machine(), "cpus": os.cpu_count(),
            "vnni": any(f in flags.split() for f in ("avx512_vnni", "avx_vnni", "asimddp"))}


def _sha256(path: Path) -> str:
    from edgefiq.utils import sha256_file

    return sha256_file(path)


def _files_of(artifact: Path, backend: str) -> list[Path]:
    from edgefiq.export.base import artifact_files
    from edgefiq.registry import BACKENDS

    return artifact_files(BACKENDS.get(backend)(), artifact)


def _artifact_entry(key: str, s: dict[str, Any], fmrs: list[str]) -> dict[str, Any]:
    row, path = s["row"], s["path"]
    files = _files_of(path, row["target"])
    return {"key": key, "file": path.name, "files": [f.name for f in files], "backend": row["target"],
            "precision": row["precision"], "size_bytes": sum(f.stat().st_size for f in files),
            "sha256": _sha256(path), "p50_ms": row.get("p50_ms"), "teacher_p50_ms": row.get("teacher_p50_ms"),
            "speedup": row.get("speedup"), "srcc_vs_teacher": s["srcc"],
            **{f"pauc@{f}": row.get(f"pauc@{f}") for f in fmrs}}


def _thresholds(run_dir: Path, model: str, key: str) -> list[dict[str, Any]]:
    ev = run_dir / "eval" / "eval.json"
    if not ev.is_file():
        return []
    rows = json.loads(ev.read_text()).get("rows", [])
    return next((r.get("thresholds", []) for r in rows if r.get("source") == f"{model}/{key}"), [])


def with_clean_rejection(rows: list[dict[str, Any]], clean: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Threshold rows with ``clean_rejected``: the share of clean validation photos below each threshold.

    Example:
        >>> with_clean_rejection([{"threshold": 0.5}], {"levels": [0, 1], "quantiles": [0.0, 2.0]})
        [{'threshold': 0.5, 'clean_rejected': 0.25}]
    """
    if not clean:
        return rows
    import numpy as np

    q = np.maximum.accumulate(np.asarray(clean["quantiles"], dtype=np.float64))
    return [{**r, "clean_rejected": round(float(np.interp(r["threshold"], q, clean["levels"])), 6)} for r in rows]


def _recipe_data(run_dir: Path) -> dict[str, Any]:
    import yaml

    p = run_dir / "recipe.yaml"
    rec = yaml.safe_load(p.read_text()) if p.is_file() else {}
    d = rec.get("data") or {}
    return {"images": d.get("images"), "degradations": (d.get("degrade") or {}).get("kinds"),
            "split": d.get("split"), "recipe": rec.get("name")}


def make_card(name: str, model: str, report: dict[str, Any], run_dir: Path, shipped: dict[str, dict[str, Any]],
              reference_images: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
    """The ``card.json`` contents (see the module docstring of ``edgefiq.pipeline.ship``)."""
    fmrs = [f"{f:g}" for f in report.get("fmr", [])]
    arts = [_artifact_entry(k, s, fmrs) for k, s in shipped.items()]
    preferred = [a["key"] for a in sorted(arts, key=lambda a: (a["p50_ms"] is None, a["p50_ms"] or 0.0))]
    first = shipped[preferred[0]]
    teacher_rows = [r for r in report["rows"] if r.get("kind") == "teacher"]
    teacher = next((r for r in teacher_rows if r["model"] == "teacher" and r.get("srcc") is not None), {})
    text = {**CARD_DEFAULTS, **options}
    fastest = arts[[a["key"] for a in arts].index(preferred[0])]
    pre = read_meta(first["path"]).preprocess.to_dict()
    h, w = (pre.get("size") or [112, 112])[:2]
    return {
        "name": name, "model": model, "edgefiq_version": __version__,
        "summary": (f"{model}: SRCC {first['srcc']:.3f} vs {report.get('teacher', {}).get('name')} teacher; "
                    f"{fastest['key']} p50 {fastest['p50_ms'] or float('nan'):.3g} ms at 1 thread"),
        "artifacts": arts, "preferred": preferred, "size_bytes": sum(a["size_bytes"] for a in arts),
        "input": {"spec": INPUT_SPEC.format(resized="" if (h, w) == (112, 112) else
                                            f", resized to the model's {h}x{w} input as in training"),
                  "preprocess": pre},
        "score": {"scale": text["score_scale"], "distribution": first["distribution"],
                  "distribution_clean": first.get("distribution_clean"), "distribution_of": preferred[0]},
        "validation": {**(report.get("eval") or {}), "fr_model": report.get("fr_model"),
                       "teacher_pauc": {f: teacher.get(f"pauc@{f}") for f in fmrs}},
        "by_degradation": card_families(report.get("by_degradation"), model, list(shipped)),
        "thresholds": with_clean_rejection(_thresholds(run_dir, model, preferred[0]), first.get("distribution_clean")),
        "training": {**(report.get("data") or {}), **_recipe_data(run_dir), "synthetic": bool(report.get("synthetic"))},
        "teacher": report.get("teacher"), "latency_machine": build_machine(),
        "teacher_latency": [{k: r.get(k) for k in ("target", "precision", "p50_ms", "note")}
                            for r in teacher_rows if r.get("p50_ms") is not None],
        "intended_use": text["intended_use"], "limits": text["limits"],
        "licences": {"data": text["licence_data"], "teacher": text["licence_teacher"],
                     "weights": text["licence_weights"]},
        "reference": {"images": {**reference_images, "generator": "edgefiq.runtime.builtin_models.reference_images"},
                      "scores": {k: s["reference"] for k, s in shipped.items()}},
    }


def card_families(families: list[dict[str, Any]] | None, model: str, keys: list[str]) -> list[dict[str, Any]]:
    """The run's per-family pAUC rows (``report["by_degradation"]``) for the teacher, random and the shipped
    artifacts of ``model`` (keyed ``<target>-<precision>``); empty when the run had no degradation index.

    Example:
        >>> card_families([{"family": "clean", "n_images": 3, "pauc": {"teacher": {"0.001": 1.0},
        ...                "m/onnx-int8": {"0.001": 1.1}, "x/onnx-int8": {"0.001": 9.0}}}], "m", ["onnx-int8"])
        [{'family': 'clean', 'n_images': 3, 'pauc': {'teacher': {'0.001': 1.0}, 'onnx-int8': {'0.001': 1.1}}}]
    """
    names = {"teacher": "teacher", "random": "random", **{f"{model}/{k}": k for k in keys}}
    return [{"family": f["family"], "n_images": f["n_images"],
             "pauc": {names[n]: v for n, v in f["pauc"].items() if n in names},
             **{k: {names[n]: v for n, v in f[k].items() if n in names} for k in ("srcc", "ratio_ci") if f.get(k)}}
            for f in families or []]


def _family_lines(rows: list[dict[str, Any]], preferred: str) -> list[str]:
    """The per-family pAUC table of the card: a row per family, a column per source, and the preferred
    artifact's pAUC relative to the teacher's."""
    if not rows:
        return []
    fmr = next(iter(rows[0]["pauc"].get("teacher") or {"0.001": None}))
    cols = [c for c in ("teacher", *sorted(k for k in rows[0]["pauc"] if k not in ("teacher", "random")), "random")
            if c in rows[0]["pauc"]]
    out = ["", "## Quality by degradation family", "",
           f"pAUC@FMR{fmr} x1e3 on the validation identities (lower is better): clean, the clean photos alone; a "
           "family, its degraded copies with the clean photos. Then the fastest artifact's pAUC / the teacher's, "
           "and its SRCC with the teacher on the same images (on clean photos alone: how well it ranks ordinary "
           "captures).", "",
           "| family | images | " + " | ".join(cols) + f" | {preferred} / teacher | SRCC vs teacher |",
           "|---|---:|" + "---:|" * (len(cols) + 2)]
    for r in rows:
        vals = {c: r["pauc"].get(c, {}).get(fmr) for c in cols}
        t, m = vals.get("teacher"), vals.get(preferred)
        out.append(f"| {r['family']} | {r['n_images']} | " + " | ".join(_fmt(vals[c], ".2f") for c in cols)
                   + f" | {_fmt(m / t if m is not None and t else None, '.3f')}{interval_text(r, preferred, fmr)}"
                   + f" | {_fmt((r.get('srcc') or {}).get(preferred), '.3f')} |")
    if any(r.get("ratio_ci") for r in rows):
        out += ["", INTERVAL_NOTE]
    return out


def _fmt(v: Any, spec: str = ".3g") -> str:
    return "—" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)


def render_card(card: dict[str, Any], plots: list[str]) -> str:
    """``card.md``: what the model is, how good and fast it is, what it expects, where it must not be used."""
    t, v, tr, d = card.get("teacher") or {}, card["validation"], card["training"], card["score"]["distribution"]
    fmrs = [k.split("@")[1] for k in card["artifacts"][0] if k.startswith("pauc@")]
    lines = [f"# {card['name']}: built-in face image quality model", "", card["summary"], "",
             "## Use", "", "```", "edgefiq score FACES/ -o q.csv   # when this is the default built-in model",
             f"edgefiq score FACES/ -o q.csv --model builtin:{card['name']} --reject-fraction 0.1",
             f"python -c \"import edgefiq; print(edgefiq.load_model('builtin:{card['name']}').score('face.jpg'))\""
             "   # an aligned crop", "```", "",
             "## Input", "", f"- {card['input']['spec']}", f"- preprocessing: `{json.dumps(card['input']['preprocess'])}`",
             "", "## Training", "",
             f"- data: {'SYNTHETIC sample' if tr.get('synthetic') else tr.get('images')} "
             f"({tr.get('n_images')} images of {tr.get('n_identities')} identities, "
             f"{tr.get('n_train')} training / {tr.get('n_val')} validation images, identity-disjoint split "
             f"`{json.dumps(tr.get('split'))}`); degradations: {', '.join(tr.get('degradations') or []) or 'none'}",
             f"- teacher: `{t.get('name')}` {json.dumps(t.get('options', {}))}",
             f"- student: `{card['model']}` (recipe `{tr.get('recipe')}`, edgefiq {card['edgefiq_version']})",
             "", "## Validation (identities never trained on)", "",
             f"- {v.get('n_images')} images of {v.get('n_identities')} identities; {v.get('n_genuine')} genuine / "
             f"{v.get('n_impostor')} impostor comparisons; FR model: {v.get('fr_model')}", "",
             "| artifact | size | p50 ms (1 thr) | teacher p50 ms | speed-up | SRCC vs teacher | "
             + " | ".join(f"pAUC@FMR{f} (teacher {_fmt(v['teacher_pauc'].get(f), '.2f')})" for f in fmrs) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(fmrs)]
    for a in card["artifacts"]:
        lines.append(f"| {a['key']}{' (fastest here)' if a['key'] == card['preferred'][0] else ''} | "
                     f"{a['size_bytes'] / 1e6:.2f} MB | {_fmt(a['p50_ms'])} | {_fmt(a['teacher_p50_ms'])} | "
                     f"{_fmt(a['speedup'], '.1f')} | {a['srcc_vs_teacher']:.4f} | "
                     + " | ".join(_fmt(a.get(f'pauc@{f}'), '.2f') for f in fmrs) + " |")
    mach = card.get("latency_machine") or {}
    lines += ["", f"Latency: p50 of batch-1 calls at 1 thread (the run's bench stage) on {mach.get('cpu')} "
              f"({mach.get('cpus')} cores, {'with' if mach.get('vnni') else 'without'} VNNI int8 dot products); "
              f"fastest there: `{card['preferred'][0]}`. The int8 artifacts are for ARM and other int8-fast CPUs "
              "(VNNI, dot-product NEON), where they usually beat fp32; on x86 without VNNI fp32 can be faster.",
              "", *[f"![{Path(p).stem}]({p})" for p in plots], "", "## Scores", "", card["score"]["scale"], "",
              *_distribution_lines(card["score"], d)]
    lines += _family_lines(card.get("by_degradation") or [], card["preferred"][0])
    lines += _threshold_lines(card.get("thresholds") or [])
    lines += ["", "## Intended use", "", card["intended_use"], "", "## Limits", "", card["limits"], "",
              "## Licences", "", *[f"- {k}: {x}" for k, x in card["licences"].items()], ""]
    return "\n".join(lines)


def _distribution_lines(score: dict[str, Any], d: dict[str, Any]) -> list[str]:
    """The quantile table of the stored distributions: all validation images and, when stored, clean photos."""
    c = score.get("distribution_clean")
    lines = [f"Validation distributions of `{score['distribution_of']}`: all images (n={d['n']}, clean and degraded; "
             f"mean {d['mean']:.4g}, std {d['std']:.4g}, min {d['min']:.4g}, max {d['max']:.4g})"
             + (f" and clean photos alone (n={c['n']}; mean {c['mean']:.4g}, std {c['std']:.4g}). "
                "`--reject-fraction F` reads the clean-photo one by default (reject what scores below the worst F "
                "of ordinary photos; `--distribution all` for the other); `--scale 0-100` maps a score to its "
                "percentile among all validation images." if c else "."), "",
             "| quantile | all images | clean photos |" if c else "| quantile | score |",
             "|---:|---:|---:|" if c else "|---:|---:|"]
    for q in (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99):
        cells = [d] + ([c] if c else [])
        lines.append(f"| {q:g} | " + " | ".join(f"{x['quantiles'][round(q * (len(x['levels']) - 1))]:.4g}"
                                                for x in cells) + " |")
    return lines


def _threshold_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    clean = all("clean_rejected" in r for r in rows)
    out = ["", "## Thresholds", "", "Reject images below the threshold; the share of all validation images and of "
           "clean photos it rejects; FNMR of the genuine comparisons left (comparison threshold fixed on all "
           "impostors; `edgefiq.metrics.thresholds`).", "",
           "| FMR | reject fraction | threshold | images rejected |" + (" clean photos rejected |" if clean else "")
           + " genuine discarded | FNMR |", "|---:|---:|---:|---:|" + ("---:|" if clean else "") + "---:|---:|"]
    for r in rows:
        out.append(f"| {r['fmr']:g} | {r['fraction']:g} | {r['threshold']:.4g} | {_fmt(r.get('images_rejected'), '.3f')} | "
                   + (f"{_fmt(r['clean_rejected'], '.3f')} | " if clean else "")
                   + f"{_fmt(r['genuine_discarded'], '.3f')} | {_fmt(r['fnmr'], '.4f')} |")
    return out


def write_card(folder: Path, card: dict[str, Any], run_dir: Path) -> None:
    """Write ``card.json`` and ``card.md`` into ``folder`` and copy the run's EDC plots there."""
    from edgefiq.utils import atomic_write_text, write_json

    plots = []
    for p in sorted((run_dir / "plots").glob("edc_fmr*.png")):
        shutil.copy2(p, folder / p.name)
        plots.append(p.name)
    write_json(folder / "card.json", card)
    atomic_write_text(folder / "card.md", render_card(card, plots))
