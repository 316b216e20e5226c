"""``edgefiq score`` through click (artifact and checkpoint) and a subprocess (exit codes)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from edgefiq.cli import cli

from test_runtime import edgefiq_artifacts  # noqa: F401  (session fixture)


def _read(path):
    return {r["path"]: float(r["quality"]) for r in csv.DictReader(open(path))}


def test_score_artifact_and_checkpoint_agree(edgefiq_artifacts, tmp_path):
    imgs = str(edgefiq_artifacts["images"])
    for name, model in (("a.csv", edgefiq_artifacts["onnx"]), ("c.csv", edgefiq_artifacts["ckpt"])):
        res = CliRunner().invoke(cli, ["score", str(model), imgs, "-o", str(tmp_path / name), "--batch-size", "5"])
        assert res.exit_code == 0, res.output
    a, c = _read(tmp_path / "a.csv"), _read(tmp_path / "c.csv")
    assert list(a) == list(c) and len(a) == 12 and list(a) == sorted(a)
    np.testing.assert_allclose(list(a.values()), list(c.values()), atol=1e-4)


def test_score_help_and_errors(edgefiq_artifacts, tmp_path):
    res = CliRunner().invoke(cli, ["score", "--help"])
    assert res.exit_code == 0 and "Example:" in res.output
    imgs = tmp_path / "imgs"
    shutil.copytree(edgefiq_artifacts["images"], imgs)
    (imgs / "id1" / "zero.jpg").write_bytes(b"")
    onnx = str(edgefiq_artifacts["onnx"])
    r = subprocess.run([sys.executable, "-m", "edgefiq", "score", onnx, str(imgs), "-o", str(tmp_path / "q.csv")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "zero.jpg" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    res = CliRunner().invoke(cli, ["score", onnx, str(imgs), "-o", str(tmp_path / "q.csv"), "--on-bad-image", "skip"])
    assert res.exit_code == 0
    assert len(_read(tmp_path / "q.csv")) == 12 and "id1/zero.jpg\t" in (tmp_path / "q.skipped.txt").read_text()
    r = subprocess.run([sys.executable, "-m", "edgefiq", "score", str(tmp_path / "none.onnx"), str(imgs), "-o",
                        str(tmp_path / "x.csv")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr or r.returncode == 1 and "not found" in r.stderr


def test_score_mirror_average_is_the_mean_over_image_and_mirror(edgefiq_artifacts, tmp_path):
    from PIL import Image

    src = edgefiq_artifacts["images"]
    mirrored = tmp_path / "mirrored"
    for p in sorted(src.rglob("*.png")):
        out = mirrored / p.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(p).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(out)
    onnx = str(edgefiq_artifacts["onnx"])
    for args, name in (([str(src)], "plain"), ([str(mirrored)], "mirror"), ([str(src), "--mirror-average"], "avg")):
        res = CliRunner().invoke(cli, ["score", onnx, args[0], "-o", str(tmp_path / f"{name}.csv"), "--batch-size", "5",
                                       *args[1:]])
        assert res.exit_code == 0, res.output
    plain, mirror, avg = (_read(tmp_path / f"{n}.csv") for n in ("plain", "mirror", "avg"))
    assert list(avg) == list(plain) and len(avg) == 12
    expect = 0.5 * (np.array(list(plain.values())) + np.array(list(mirror.values())))
    np.testing.assert_allclose(list(avg.values()), expect, atol=1e-5)
    assert np.abs(np.array(list(plain.values())) - expect).max() > 1e-4   # the mirror pass changes the scores


def test_score_keeps_a_file_name_that_is_not_utf8(edgefiq_artifacts, tmp_path):
    """A name like b"\\xff\\xfe.png" is written to the CSV as its own bytes (no UnicodeEncodeError) and reads back."""
    import os

    imgs = tmp_path / "imgs"
    shutil.copytree(edgefiq_artifacts["images"], imgs)
    first = sorted(imgs.rglob("*.png"))[0]
    odd = os.path.join(os.fsencode(first.parent), b"\xff\xfe.png")
    os.rename(os.fsencode(first), odd)
    out = tmp_path / "q.csv"
    res = CliRunner().invoke(cli, ["score", str(edgefiq_artifacts["onnx"]), str(imgs), "-o", str(out)])
    assert res.exit_code == 0, res.output
    with open(out, newline="", encoding="utf-8", errors="surrogateescape") as f:
        paths = [r["path"] for r in csv.DictReader(f)]
    assert len(paths) == 12
    odd_rel = [p for p in paths if p.endswith(".png") and os.fsencode(p).endswith(b"\xff\xfe.png")]
    assert len(odd_rel) == 1 and os.path.isfile(os.fsencode(imgs / odd_rel[0]))
