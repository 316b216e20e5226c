"""The real LFW recipe end to end on ../shared/data, with the reduced settings of ``tools/run_lfw.py``.

Slow (tens of minutes on 2 CPU cores): it runs only when ``EDGEFIQ_RUN_LFW_RECIPE=1`` is set
(the CI decides whether its budget allows it); otherwise it is skipped with that reason.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.skipif(os.environ.get("EDGEFIQ_RUN_LFW_RECIPE") != "1",
                    reason="set EDGEFIQ_RUN_LFW_RECIPE=1 to run the LFW recipe (about 30-60 min on 2 cores)")
def test_lfw_recipe_reduced_end_to_end(tmp_path: Path, shared: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    import run_lfw

    lfw = shared / "lfw-dev"
    fr = shared / "models" / "mobilefacenet" / "mobilefacenet.pt"
    code = run_lfw.main(["--run-dir", str(tmp_path / "run"), "--results", str(tmp_path / "results"),
                         "--var", f"LFW={lfw}", "--var", f"FR_MODEL={fr}"])
    rep = json.loads((tmp_path / "results" / "report.json").read_text())
    assert code == 0 and rep["all_ok"] and rep["synthetic"] is False
    arts = [r for r in rep["rows"] if r["kind"] == "artifact"]
    assert {r["target"] for r in arts} == {"onnx", "openvino", "tflite"}
    assert {r["method"] for r in arts} == {"none", "structured", "l1"}
    assert {r["model"].split("/")[0] for r in arts} == {"mobilenetv3_small_100", "emo_1m"}
    teacher, random = rep["rows"][0], rep["rows"][1]
    assert teacher["model"] == "teacher" and random["model"] == "random"
    assert teacher["pauc@0.001"] < random["pauc@0.001"]  # the teacher's ranking helps face recognition
