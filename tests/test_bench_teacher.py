"""Teacher latency on the students' runtime, the speed-up column and the slower-than-parent flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefiq.pipeline.records import revive
from edgefiq.pipeline.report import build_rows, render_markdown


@pytest.fixture(scope="module")
def random_fr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised MobileFaceNet state dict (the teacher's FR model; no download)."""
    import torch

    from edgefiq.registry import FR_MODELS

    import edgefiq.models.fr  # noqa: F401  (registers the FR architectures)

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fr") / "mfn.pt"
    torch.save(FR_MODELS.get("mobilefacenet")().state_dict(), path)
    return path


def test_prefiqs_is_two_passes_of_the_exported_fr_model(random_fr: Path, tmp_path: Path) -> None:
    from edgefiq.bench.teacher import benchmark_teacher
    from edgefiq.teachers import make_teacher

    t = make_teacher("prefiqs", {"fr_model": str(random_fr), "rho": 0.4}, cache_dir=tmp_path / "cache")
    nets = t.networks()
    assert len(nets) == 2 and nets[0][1] is nets[1][1]  # l1 keeps the dense graph: the FR model, timed twice
    rows = benchmark_teacher("prefiqs", {"fr_model": str(random_fr), "rho": 0.4}, ["onnx"], tmp_path / "out",
                             cache_dir=tmp_path / "cache", min_time_s=0.05, min_runs=3, warmup=1)
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["passes"] == 2, rows
    assert rows[0]["p50_ms"] > 0 and rows[0]["target"] == "onnx" and rows[0]["threads"] == 1
    assert len(list((tmp_path / "out" / "onnx").glob("*/*.onnx"))) == 1  # exported once
    assert benchmark_teacher("severity", {}, ["onnx"], tmp_path / "none") == []


def test_ensemble_counts_the_members_shared_fr_pass_once(random_fr: Path, tmp_path: Path) -> None:
    from edgefiq.teachers import make_teacher

    members = ["prefiqs:1,method=l1,rho=0.4", "serfiq:1", "norm:1"]
    t = make_teacher("ensemble", {"fr_model": str(random_fr), "members": members}, cache_dir=tmp_path / "cache")
    nets = t.networks()
    assert [label for label, _ in nets] == ["fr", "pruned (l1 0.4, dense graph of fr)"]
    assert nets[0][1] is nets[1][1]   # one FR module, loaded once for the three members
    flipped = make_teacher("ensemble", {"fr_model": str(random_fr), "members": ["norm:1,flip=true", "serfiq:1"]},
                           cache_dir=tmp_path / "cache")
    assert [label for label, _ in flipped.networks()] == ["fr", "fr"]   # norm with flip: two FR passes per image
    assert make_teacher("severity").networks() == []


def _outputs() -> dict:
    arts, bench = [], []
    for model, method, p50 in (("s", "none", 1.0), ("s/structured-0.3", "structured", 2.5), ("s/l1-0.3", "l1", 0.8)):
        path = f"export/{model}/onnx-fp32/a.onnx"
        arts.append({"name": model, "student": "s", "checkpoint": f"prune/{model}.pt", "method": method,
                     "rho": 0.3 if method != "none" else 0.0, "target": "onnx", "precision": "fp32", "path": path, "parity": {"passed": True}, "status": "ok"})
        bench.append({"path": path, "key": f"{model}/onnx-fp32", "threads": 1, "batch": 1, "p50_ms": p50,
                      "status": "ok", "size_bytes": 1000})
    teacher = [{"kind": "teacher", "target": "onnx", "precision": "fp32", "threads": 1, "batch": 1, "p50_ms": 30.0,
                "passes": 2, "networks": ["fr", "pruned"], "status": "ok"}]
    evals = [{"source": "teacher", "kind": "teacher", "srcc": 1.0}] + [
        {"source": f"{a['name']}/onnx-fp32", "kind": "artifact", "srcc": 0.9} for a in arts]
    raw = {"export": {"artifacts": arts}, "bench": {"rows": bench, "teacher": teacher}, "eval": {"rows": evals}}
    return {stage: revive(stage, out) for stage, out in raw.items()}   # the records the report stage receives


def test_report_speedup_teacher_row_and_slower_than_parent_flag() -> None:
    rows = build_rows(_outputs())
    teacher = [r for r in rows if r["kind"] == "teacher" and r.get("target") == "onnx"]
    assert len(teacher) == 1 and teacher[0]["p50_ms"] == 30.0
    by = {r["model"]: r for r in rows if r["kind"] == "artifact"}
    assert by["s"]["speedup"] == pytest.approx(30.0) and by["s"]["teacher_p50_ms"] == 30.0
    assert by["s/structured-0.3"]["slower_than_parent"] is True and by["s/structured-0.3"]["vs_parent"] == 2.5
    assert by["s/l1-0.3"]["slower_than_parent"] is False and "vs_parent" not in by["s"]
    summary = {"synthetic": False, "recipe": "r", "teacher": {"name": "prefiqs"}, "data": {}, "eval": {},
               "convention": "fixed", "discard_limit": 0.3, "all_ok": True, "rows": rows,
               "slower_than_parent": ["s/structured-0.3 onnx-fp32 (2.50x its parent)"]}
    md = render_markdown(summary, [], [])
    assert "speed-up" in md and "| 30.0x |" in md and "**2.50x SLOWER**" in md and "0.80x" in md
    assert "slower than their unpruned parent" in md and "2 network passes" in md
