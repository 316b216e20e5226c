"""The real LFW recipe end to end on ../shared/data, at the CI size of ``tools/run_lfw.py --ci``.

Slow (about ten minutes on 2 CPU cores) and needs the shared data: CI runs it, the default
suite skips it. ``results/lfw/`` is the same run at the larger ``REDUCED`` size.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.shared_data
def test_lfw_recipe_ci_size_end_to_end(tmp_path: Path, shared: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    import run_lfw

    lfw = shared / "lfw-dev"
    fr = shared / "models" / "mobilefacenet" / "mobilefacenet.pt"
    code = run_lfw.main(["--ci", "--run-dir", str(tmp_path / "run"), "--results", str(tmp_path / "results"),
                         "--var", f"LFW={lfw}", "--var", f"FR_MODEL={fr}"])
    rep = json.loads((tmp_path / "results" / "report.json").read_text())
    arts = [r for r in rep["rows"] if r["kind"] == "artifact"]
    failed = [f"{r['model']} {r['target']} {r['precision']}: {r['status']}" for r in arts if r["status"] != "ok"]
    assert code == 0 and rep["all_ok"], failed
    assert rep["synthetic"] is False
    assert {r["target"] for r in arts} == {"onnx", "openvino", "tflite"}
    assert {r["method"] for r in arts} == {"none", "structured", "l1"}
    assert {r["model"].split("/")[0] for r in arts} == {"mobilenetv3_small_100", "emo_1m"}
    teacher, random = rep["rows"][0], rep["rows"][1]
    assert teacher["model"] == "teacher" and random["model"] == "random"
    assert teacher["pauc@0.001"] < random["pauc@0.001"]  # the teacher's ranking helps face recognition
