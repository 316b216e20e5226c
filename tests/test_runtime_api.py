"""The Python API of issue 20: ``edgefiq.load_model(path).score(images)`` on every documented input form.

Paths, PIL images, HWC uint8, NHWC uint8 and preprocessed NCHW float32 give the same
scores as the CLI; a wrong shape or dtype is a one-line ``UsageError``, never a silent score.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_runtime import edgefiq_artifacts  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[1]


def test_score_accepts_documented_inputs_and_matches_cli(edgefiq_artifacts, tmp_path):  # noqa: F811
    from click.testing import CliRunner
    from PIL import Image

    import edgefiq
    from edgefiq.cli import cli
    from edgefiq.data.readers import list_images

    qm = edgefiq.load_model(edgefiq_artifacts["onnx"])
    paths = list_images(edgefiq_artifacts["images"])[:4]
    by_path = qm.score([str(p) for p in paths])
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    assert by_path.shape == (4,) and by_path.dtype == np.float32
    np.testing.assert_allclose(qm.score([Image.open(p) for p in paths]), by_path, atol=1e-6)
    np.testing.assert_allclose(qm.score(np.stack(arrays)), by_path, atol=1e-6)          # NHWC uint8 batch
    np.testing.assert_allclose(qm.score(arrays[0]), by_path[:1], atol=1e-6)             # one HWC image
    pre = np.stack([qm.prepare(a) for a in arrays])
    np.testing.assert_allclose(qm.score(pre), by_path, atol=1e-6)                       # NCHW float32
    np.testing.assert_allclose(qm.score([str(p) for p in paths], batch_size=3), by_path, atol=1e-6)

    res = CliRunner().invoke(cli, ["score", str(edgefiq_artifacts["onnx"]), str(edgefiq_artifacts["images"]),
                                   "-o", "-"])
    assert res.exit_code == 0, res.output
    rows = {r["path"]: float(r["quality"]) for r in csv.DictReader(res.stdout.splitlines())}
    rel = [str(p.relative_to(edgefiq_artifacts["images"])) for p in paths]
    np.testing.assert_allclose([rows[r] for r in rel], by_path, atol=1e-5)


@pytest.mark.parametrize("bad", [
    np.zeros((1, 32, 32, 3), np.float32),       # NHWC float: not preprocessed NCHW, not uint8 images
    np.zeros((3, 32, 32), np.uint8),            # CHW uint8
    np.zeros((32, 32), np.uint8),               # grayscale 2-D
    np.zeros((2, 3, 16, 16), np.float32),       # NCHW at the wrong size
    12,
])
def test_score_rejects_wrong_layouts(edgefiq_artifacts, bad):  # noqa: F811
    import edgefiq
    from edgefiq.errors import UsageError

    qm = edgefiq.load_model(edgefiq_artifacts["onnx"])
    with pytest.raises(UsageError, match="cannot score"):
        qm.score(bad)


def test_score_batch_rejects_nhwc_uint8(edgefiq_artifacts):  # noqa: F811
    """Issue 20 finding 7: score_batch(np.asarray(img)[None]) returned a wrong number silently."""
    import edgefiq
    from edgefiq.errors import UsageError

    qm = edgefiq.load_model(edgefiq_artifacts["onnx"])
    with pytest.raises(UsageError, match="use QualityModel.score"):
        qm.score_batch(np.zeros((1, 32, 32, 3), np.uint8))


def test_load_model_is_torch_free(edgefiq_artifacts, tmp_path):  # noqa: F811
    """``import edgefiq; edgefiq.load_model(onnx).score(...)`` must not import torch."""
    code = ("import sys, numpy as np, edgefiq; qm = edgefiq.load_model(sys.argv[1]); "
            "qm.score(np.zeros((32, 32, 3), np.uint8)); assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code, str(edgefiq_artifacts["onnx"])], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_score_warns_on_unaligned_sizes_and_names_folders(tmp_path):
    """Issue 28 finding 7: the API warns like the CLI on unaligned sizes, a folder is a one-line error
    naming the call that scores folders, and the repr is one short line."""
    import edgefiq
    from edgefiq.errors import UsageError

    qm = edgefiq.load_model()
    with pytest.warns(UserWarning, match="aligned"):
        qm.score(np.zeros((250, 250, 3), np.uint8))
    with pytest.raises(UsageError, match="score_folder"):
        qm.score(str(tmp_path))
    assert len(repr(qm)) < 200 and "backend=" in repr(qm)
