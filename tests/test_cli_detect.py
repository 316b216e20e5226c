"""``edgefiq data align`` without landmarks and ``edgefiq score --detect`` / ``--strict``, also with torch unimportable."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgefiq.cli import cli
from edgefiq.errors import DataError, UsageError

from test_runtime import edgefiq_artifacts  # noqa: F401  (session fixture: tiny 32x32 ONNX student)

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ["Aaron_Patterson/Aaron_Patterson_0001.jpg", "Hans_Blix/Hans_Blix_0016.jpg"]  # Hans Blix: 2 faces

# Run the CLI where `import torch` fails: a meta path finder refuses torch before anything is imported.
NO_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None
sys.meta_path.insert(0, _NoTorch())
from edgefiq.cli import main
sys.argv = ["edgefiq", *sys.argv[1:]]
main()
"""


@pytest.fixture
def photos(shared: Path, tmp_path: Path) -> Path:
    """Two raw LFW photos plus a blank image (no face) in a temporary folder."""
    from PIL import Image

    root = tmp_path / "photos"
    for rel in PHOTOS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared / "lfw-dev" / "raw_sample" / rel, root / rel)
    Image.fromarray(np.full((250, 250, 3), 90, np.uint8)).save(root / "blank.png")
    return root


def _fails(result, cls: type, text: str) -> None:
    """The CLI raised ``cls`` (``edgefiq.cli.main`` turns it into one line and its exit code) with ``text``."""
    assert isinstance(result.exception, cls) and text in str(result.exception), result.output
    assert "\n" not in str(result.exception)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path)))


@pytest.mark.shared_data
def test_align_without_landmarks_detects_and_writes_landmarks_and_skips(photos, shared, tmp_path):
    from edgefiq.data.align import read_landmarks_tsv
    from edgefiq.eval.detect import landmark_nme

    out = tmp_path / "aligned"
    r = CliRunner().invoke(cli, ["data", "align", str(photos), "-o", str(out), "--select", "center"])
    assert r.exit_code == 0, r.output
    assert "aligned 2 images" in r.output and "skipped 1" in r.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == sorted(PHOTOS)
    assert "blank.png\tno face found" in (out / "skipped.txt").read_text()
    found, given = read_landmarks_tsv(out / "landmarks.tsv"), read_landmarks_tsv(shared / "lfw-dev" / "landmarks.tsv")
    assert all(landmark_nme(found[rel], given[rel]) < 0.1 for rel in PHOTOS)
    assert len(_rows_tsv(out / "faces.tsv")) == 2
    # one crop per face, with its index
    out_all = tmp_path / "all"
    r = CliRunner().invoke(cli, ["data", "align", str(photos), "-o", str(out_all), "--all-faces"])
    assert r.exit_code == 0, r.output
    assert (out_all / "Hans_Blix/Hans_Blix_0016__face1.jpg").is_file()
    assert len(_rows_tsv(out_all / "faces.tsv")) == 3
    r = CliRunner().invoke(cli, ["data", "align", str(photos), str(out / "landmarks.tsv"), "-o", str(tmp_path / "x"),
                                 "--all-faces"])
    _fails(r, UsageError, "--all-faces needs face detection")


def _rows_tsv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path), delimiter="\t"))


@pytest.mark.shared_data
def test_score_detect_one_row_per_face_and_strict(photos, edgefiq_artifacts, tmp_path):  # noqa: F811
    model = str(edgefiq_artifacts["onnx"])
    out = tmp_path / "faces.csv"
    r = CliRunner().invoke(cli, ["score", model, str(photos), "-o", str(out), "--detect"])
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert list(rows[0]) == ["path", "face", "x1", "y1", "x2", "y2", "det_score", "quality", "status"]
    assert [(x["path"], x["face"], x["status"]) for x in rows] == [
        (PHOTOS[0], "0", "ok"), (PHOTOS[1], "0", "ok"), (PHOTOS[1], "1", "ok"), ("blank.png", "", "no face")]
    assert all(float(x["det_score"]) > 0.7 and np.isfinite(float(x["quality"])) for x in rows[:3])
    assert "1 image without a face" in r.output and not (tmp_path / "faces.skipped.txt").exists()
    # --select keeps one face per image: Hans Blix's second face (off to the side) goes, the no-face row stays
    r = CliRunner().invoke(cli, ["score", model, str(photos), "-o", str(out), "--detect", "--select", "center"])
    assert r.exit_code == 0, r.output
    assert [(x["path"], x["face"]) for x in _rows(out)] == [(PHOTOS[0], "0"), (PHOTOS[1], "0"), ("blank.png", "")]
    # raw photos without --detect/--landmarks: a warning with a count, or a refusal with --strict
    r = CliRunner().invoke(cli, ["score", model, str(photos), "-o", str(tmp_path / "q.csv"), "--strict"])
    _fails(r, UsageError, "3 image(s) are not 32x32 or 112x112 aligned face crops")
    r = CliRunner().invoke(cli, ["score", model, str(photos), "-o", str(tmp_path / "q.csv"), "--detect",
                                 "--landmarks", str(tmp_path / "m.tsv")])
    _fails(r, UsageError, "not both")


@pytest.mark.shared_data
def test_landmarks_matching_no_path_is_an_error(photos, edgefiq_artifacts, tmp_path):  # noqa: F811
    tsv = tmp_path / "m.tsv"
    tsv.write_text("other/x.jpg\t" + "\t".join(["100"] * 10) + "\n")
    r = CliRunner().invoke(cli, ["score", str(edgefiq_artifacts["onnx"]), str(photos), "-o", str(tmp_path / "q.csv"),
                                 "--landmarks", str(tsv)])
    _fails(r, DataError, "none of its 1 paths matches")


@pytest.mark.shared_data
def test_align_and_score_detect_without_torch(photos, edgefiq_artifacts, tmp_path):  # noqa: F811
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGEFIQ_QUIET": "1"}
    probe = subprocess.run([sys.executable, "-c", NO_TORCH.replace("main()", "import torch")], env=env,
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "torch is blocked" in probe.stderr

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", NO_TORCH, *args], env=env, capture_output=True, text=True,
                              timeout=300)

    r = run("data", "align", str(photos), "-o", str(tmp_path / "aligned"), "--min-face-size", "40")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "aligned").rglob("*.jpg"))) == 2
    r = run("score", str(edgefiq_artifacts["onnx"]), str(photos), "-o", str(tmp_path / "faces.csv"), "--detect")
    assert r.returncode == 0, r.stderr
    assert [x["status"] for x in _rows(tmp_path / "faces.csv")] == ["ok", "ok", "ok", "no face"]


@pytest.mark.shared_data
def test_missing_onnxruntime_is_one_line_error_naming_the_install(photos, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGEFIQ_QUIET": "1"}
    shim = NO_TORCH.replace('name == "torch" or name.startswith("torch.")', 'name.split(".")[0] == "onnxruntime"')
    r = subprocess.run([sys.executable, "-c", shim, "data", "align", str(photos), "-o", str(tmp_path / "a")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == "Error: face detection needs onnxruntime: `pip install onnxruntime`"
