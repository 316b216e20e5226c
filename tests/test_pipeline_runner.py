"""The stage engine: keys, skip-if-unchanged, resume after interruption, --only / --from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefiq.errors import UsageError
from edgefiq.pipeline.runner import Engine, Stage, StageContext, fingerprint


class Calls:
    """Records which stage functions actually executed (the engine itself is real)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.resumed: list[str] = []


def make_stages(calls: Calls, cfg: dict, crash_in: str | None = None) -> list[Stage]:
    def write(ctx: StageContext) -> dict:
        calls.names.append(ctx.name)
        (ctx.stage_dir / "numbers.txt").write_text(" ".join(str(i * cfg["scale"]) for i in range(cfg["n"])))
        return {"numbers": ctx.rel(ctx.stage_dir / "numbers.txt")}

    def total(ctx: StageContext) -> dict:
        calls.names.append(ctx.name)
        if ctx.resume:
            calls.resumed.append(ctx.name)
        part = ctx.stage_dir / "partial.txt"
        if crash_in == "sum" and not part.exists():
            part.write_text("half")
            raise KeyboardInterrupt  # simulated kill mid-stage
        nums = [int(x) for x in ctx.path(ctx.outputs["write"]["numbers"]).read_text().split()]
        return {"total": sum(nums) + cfg["offset"], "had_partial": part.exists()}

    def report(ctx: StageContext) -> dict:
        calls.names.append(ctx.name)
        (ctx.stage_dir / "r.json").write_text(json.dumps(ctx.outputs["sum"]))
        return {"report": ctx.rel(ctx.stage_dir / "r.json")}

    return [Stage("write", write, config={"n": cfg["n"], "scale": cfg["scale"]}),
            Stage("sum", total, config={"offset": cfg["offset"]}),
            Stage("report", report, config={})]


CFG = {"n": 5, "scale": 2, "offset": 1}


def test_runs_then_skips_unchanged(tmp_path: Path) -> None:
    calls = Calls()
    reps = Engine(tmp_path, make_stages(calls, CFG)).run()
    assert [r.status for r in reps] == ["ran", "ran", "ran"]
    assert reps[1].outputs["total"] == 2 * (0 + 1 + 2 + 3 + 4) + 1
    calls2 = Calls()
    reps = Engine(tmp_path, make_stages(calls2, CFG)).run()
    assert [r.status for r in reps] == ["skipped"] * 3 and calls2.names == []
    state = json.loads((tmp_path / "state.json").read_text())
    assert set(state["stages"]) == {"write", "sum", "report"}
    assert all(len(s["key"]) == 64 and s["status"] == "done" for s in state["stages"].values())


def test_config_change_reruns_stage_and_downstream_only(tmp_path: Path) -> None:
    Engine(tmp_path, make_stages(Calls(), CFG)).run()
    calls = Calls()
    reps = Engine(tmp_path, make_stages(calls, {**CFG, "offset": 7})).run()
    assert [r.status for r in reps] == ["skipped", "ran", "ran"]
    assert reps[1].outputs["total"] == 27


def test_upstream_content_change_propagates(tmp_path: Path) -> None:
    Engine(tmp_path, make_stages(Calls(), CFG)).run()
    reps = Engine(tmp_path, make_stages(Calls(), {**CFG, "scale": 3})).run()
    assert [r.status for r in reps] == ["ran", "ran", "ran"]
    assert reps[1].outputs["total"] == 31


def test_tampered_or_deleted_output_reruns(tmp_path: Path) -> None:
    Engine(tmp_path, make_stages(Calls(), CFG)).run()
    (tmp_path / "write" / "numbers.txt").write_text("100")
    reps = Engine(tmp_path, make_stages(Calls(), CFG)).run()
    assert reps[0].status == "ran"
    (tmp_path / "report" / "r.json").unlink()
    reps = Engine(tmp_path, make_stages(Calls(), CFG)).run()
    assert [r.status for r in reps] == ["skipped", "skipped", "ran"]


def test_interrupted_stage_resumes_and_completed_stages_skip(tmp_path: Path) -> None:
    calls = Calls()
    with pytest.raises(KeyboardInterrupt):
        Engine(tmp_path, make_stages(calls, CFG, crash_in="sum")).run()
    assert calls.names == ["write", "sum"]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["stages"]["sum"]["status"] == "running"
    calls2 = Calls()
    reps = Engine(tmp_path, make_stages(calls2, CFG, crash_in="sum")).run()
    assert [r.status for r in reps] == ["skipped", "resumed", "ran"]
    assert calls2.resumed == ["sum"]
    assert reps[1].outputs == {"total": 21, "had_partial": True}  # partial work kept for the resume


def test_interrupted_stage_with_new_config_starts_clean(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        Engine(tmp_path, make_stages(Calls(), CFG, crash_in="sum")).run()
    calls = Calls()
    with pytest.raises(KeyboardInterrupt):  # the partial file was wiped: a fresh attempt crashes again
        Engine(tmp_path, make_stages(calls, {**CFG, "offset": 2}, crash_in="sum")).run()
    assert calls.resumed == []


def test_only_and_from(tmp_path: Path) -> None:
    eng = Engine(tmp_path, make_stages(Calls(), CFG))
    with pytest.raises(UsageError, match="has not completed"):
        eng.run(only="sum")
    eng.run()
    calls = Calls()
    reps = Engine(tmp_path, make_stages(calls, CFG)).run(only="sum")
    assert calls.names == ["sum"] and [r.status for r in reps] == ["not selected", "ran", "not selected"]
    calls = Calls()
    reps = Engine(tmp_path, make_stages(calls, CFG)).run(start="sum")
    assert calls.names == ["sum", "report"]
    with pytest.raises(UsageError, match="did you mean 'sum'"):
        eng.run(only="sun")
    with pytest.raises(UsageError, match="not both"):
        eng.run(only="sum", start="sum")


def test_fingerprint_file_dir_missing(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("x")
    assert fingerprint(tmp_path / "d" / "a.txt").startswith("sha256:")
    f1 = fingerprint(tmp_path / "d")
    (tmp_path / "d" / "b.txt").write_text("y")
    assert fingerprint(tmp_path / "d") != f1
    assert fingerprint(tmp_path / "nope") == "missing"


def test_external_input_change_reruns(tmp_path: Path) -> None:
    src = tmp_path / "input.txt"
    src.write_text("1")
    calls = Calls()

    def read(ctx: StageContext) -> dict:
        calls.names.append(ctx.name)
        return {"value": int(src.read_text())}

    run_dir = tmp_path / "run"
    assert Engine(run_dir, [Stage("read", read, config={}, inputs=(src,))]).run()[0].outputs == {"value": 1}
    assert Engine(run_dir, [Stage("read", read, config={}, inputs=(src,))]).run()[0].status == "skipped"
    src.write_text("2")
    assert Engine(run_dir, [Stage("read", read, config={}, inputs=(src,))]).run()[0].outputs == {"value": 2}


def test_an_output_string_longer_than_a_file_name_is_not_taken_for_a_path(tmp_path: Path) -> None:
    """A stage may record a failure reason (e.g. an export's one-line error) longer than NAME_MAX."""
    reason = "failed: " + "accuracy control refused this model " * 12
    stages = [Stage("only", lambda ctx: {"rows": [{"status": reason}]}, config={})]
    reps = Engine(tmp_path, stages).run()
    assert reps[0].status == "ran" and reps[0].outputs["rows"][0]["status"] == reason
    assert [r.status for r in Engine(tmp_path, stages).run()] == ["skipped"]


def test_report_table_escapes_pipes_inside_cells():
    from edgefiq.pipeline.report import parity_summary, render_markdown

    parity = parity_summary({"passed": True, "max_abs_diff": 3e-6, "srcc": 1.0})
    assert "max|d|" in parity
    row = {"kind": "artifact", "model": "m", "method": "none", "rho": 0, "target": "onnx", "precision": "fp32",
           "size_bytes": 1000, "p50_ms": 0.3, "srcc": 0.9, "parity": parity, "status": "ok"}
    summary = {"synthetic": False, "recipe": "r", "teacher": {"name": "t"}, "data": {}, "eval": {},
               "convention": "fixed", "discard_limit": 0.3, "all_ok": True, "rows": [row]}
    table = [ln for ln in render_markdown(summary, [], []).splitlines() if ln.startswith("| m |")]
    cells = table[0].replace("\\|", "").strip("|").split("|")   # unescaped pipes separate cells
    assert len(cells) == 12 and "max\\|d\\|" in table[0]        # 12 columns without pAUC columns


def test_report_parity_cell_shows_the_int8_lower_bound():
    from edgefiq.pipeline.report import parity_summary

    cell = parity_summary({"passed": True, "max_abs_diff": 0.011, "srcc_vs_fp32": 0.99881, "srcc_lower_bound": 0.99752,
                           "tolerance": {"srcc_min": 0.99, "confidence": 0.95}})
    assert cell == "ok (max|d|=0.011, srcc=0.9988, 95% LB 0.9975)"
    assert "LB" not in parity_summary({"passed": True, "max_abs_diff": 3e-6, "tolerance": {"max_abs_diff": 1e-4}})
