"""The real LFW recipe end to end on ../shared/data, at the CI size of ``tools/run_lfw.py --ci``.

Slow (minutes on 2 CPU cores) and needs the shared data: CI runs it, the default suite skips it.
``results/lfw/`` is this run, committed. At this size the students see a few hundred images for a
few epochs, so an int8 export may be refused by the parity gate (SRCC vs fp32 < 0.99): that is the
gate working and is accepted here; every other row must be ok.
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
    refused = [r for r in arts if r["precision"] == "int8" and "parity gate failed" in r["status"]]
    failed = [f"{r['model']} {r['target']} {r['precision']}: {r['status']}" for r in arts
              if r["status"] != "ok" and r not in refused]
    assert code in (0, 1) and not failed, failed
    assert all(r["status"] == "ok" for r in arts if r["precision"] == "fp32")
    assert rep["synthetic"] is False
    assert {r["target"] for r in arts} == {"onnx", "openvino", "tflite"}
    assert {r["method"] for r in arts} == {"none", "structured"}
    assert {r["model"].split("/")[0] for r in arts} == {"face_trunk", "mobilenetv3_small_100"}
    teacher, random = rep["rows"][0], rep["rows"][1]
    assert teacher["model"] == "teacher" and random["model"] == "random"
    assert teacher["pauc@0.001"] < random["pauc@0.001"]  # the teacher's ranking helps face recognition
