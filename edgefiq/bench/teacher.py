"""The teacher's own latency, on the students' runtimes and thread counts, for speed-up columns.

A face-recognition teacher costs what its network passes per image cost. ``Teacher.networks()``
lists them: the FR model once (twice with ``flip``), plus, for a teacher with a pruned copy
(PreFIQs: ``pruned``), the pruned network once more (twice with ``flip``). Unstructured
pruning (``l1``, ``random``) zeroes weights but keeps the dense graph, so that pass is timed
on the FR model's own export: PreFIQs = the FR model exported once and counted twice.
Structured pruning removes channels: that copy is exported and timed itself. An ensemble makes
each distinct pass of its members once (PreFIQs + SER-FIQ + norm on one FR model: 2 passes).
SER-FIQ's dropout passes of the embedding head are not counted, so a SER-FIQ teacher's latency
is a lower bound and speed-ups against it are conservative.

``benchmark_teacher`` exports each distinct network to every target in fp32 (no parity gate:
the numbers are latencies, not scores), times it with ``edgefiq.bench.benchmark`` and sums
the passes per (threads, batch). A teacher without a network (e.g. ``severity``) has no row.

Example:
    >>> rows = benchmark_teacher("prefiqs", {"fr_model": "mfn.pt"}, ["onnx"], "bench/teacher")  # doctest: +SKIP
    >>> rows[0]["p50_ms"], rows[0]["passes"]                                                      # doctest: +SKIP
    (26.1, 2)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from edgefiq.bench.core import benchmark
from edgefiq.errors import EdgefiqError
from edgefiq.export import export_model

log = logging.getLogger("edgefiq.bench")


def benchmark_teacher(name: str, options: dict[str, Any], targets: Sequence[str], out_dir: str | Path, *,
                      threads: Sequence[int] = (1,), batches: Sequence[int] = (1,), cache_dir: str | Path | None = None,
                      **bench_options: Any) -> list[dict[str, Any]]:
    """Latency rows of the teacher per target x threads x batch (``kind="teacher"``, fp32).

    Args:
        name, options: the teacher as in a recipe (``edgefiq.teachers.make_teacher``).
        targets: backends to time on (the students' export targets).
        out_dir: where the teacher's networks are exported.
        threads, batches, bench_options: as ``edgefiq.bench.benchmark``.
        cache_dir: the teacher's cache (its pruned copy is reused from there).

    Returns:
        Rows with ``target, precision, threads, batch, p50_ms`` (sum over the passes), ``passes``,
        ``networks``, ``status`` (``ok`` or ``failed``) and ``reason``; empty for a teacher without network.

    Example:
        >>> benchmark_teacher("severity", {}, ["onnx"], "out/")
        []
    """
    from edgefiq.teachers import make_teacher  # imports torch: the teacher is only built here; bench imports torch-free

    teacher = make_teacher(name, dict(options), cache_dir=cache_dir)
    nets = teacher.networks()
    if not nets:
        return []
    distinct = list({id(m): m for _, m in nets}.values())
    rows: list[dict[str, Any]] = []
    for target in targets:
        base = {"kind": "teacher", "teacher": name, "target": target, "precision": "fp32", "passes": len(nets),
                "networks": [label for label, _ in nets]}
        try:
            timed: dict[int, dict[tuple[int, int], dict[str, Any]]] = {}
            for k, m in enumerate(distinct):
                res = export_model(m, m.preprocess, target, Path(out_dir) / target / f"net{k}", precision="fp32",
                                   no_verify=True, arch=getattr(m, "arch", "fr"), name=f"teacher_net{k}",
                                   overwrite=True)
                got = benchmark([res.path], threads=threads, batches=batches, **bench_options)
                bad = [r for r in got if r["status"] == "failed"]
                if bad:
                    raise EdgefiqError(f"timing failed: {bad[0].get('reason')}")
                timed[id(m)] = {(r["threads"], r["batch"]): r for r in got}
            for th in threads:
                for bs in batches:
                    p50 = sum(timed[id(m)][(th, bs)]["p50_ms"] for _, m in nets)
                    rows.append({**base, "threads": th, "batch": bs, "p50_ms": p50, "status": "ok", "reason": ""})
        except EdgefiqError as e:
            log.warning("[bench] teacher on %s: %s", target, e)
            rows += [{**base, "threads": th, "batch": bs, "p50_ms": None, "status": "failed",
                      "reason": str(e).splitlines()[0][:200]} for th in threads for bs in batches]
    return rows
