"""PreFIQs from the shared MobileFaceNet.onnx (batch fixed at 1) through the CLI agrees with the .pt model on 600 dev images.

With default options the two files are one teacher: l1 defaults to ``--scope normalized`` on both
(results/prefiqs_formats.md). The global L1 ranking differs between the .pt and its BatchNorm-folded
.onnx (SRCC 0.38 between them on these images), so there agreement needs the same weights: ``--fold-bn``
on the .pt, or ``--scope channel`` / ``normalized`` on both (rescaling an output channel changes neither mask)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest


def _dev_sample(lfw_aligned: Path, dest: Path, n: int = 600) -> Path:
    """A folder of symlinks to ``n`` seeded LFW dev images."""
    paths = sorted(lfw_aligned.glob("*/*.jpg"))
    for k in sorted(np.random.default_rng(0).choice(len(paths), n, replace=False)):
        p = paths[k]
        (dest / p.parent.name).mkdir(parents=True, exist_ok=True)
        (dest / p.parent.name / p.name).symlink_to(p)
    return dest


def _read(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {r["path"]: float(r["quality"]) for r in csv.DictReader(f)}


@pytest.mark.shared_data
@pytest.mark.slow
def test_label_prefiqs_onnx_agrees_with_pt(tmp_path: Path, lfw_aligned: Path, shared: Path) -> None:
    from click.testing import CliRunner
    from scipy.stats import spearmanr

    from edgefiq.cli import cli

    mfn = shared / "models" / "mobilefacenet"
    images = _dev_sample(lfw_aligned, tmp_path / "images")
    common = ["--method", "l1", "--rho", "0.4", "--cache-dir", str(tmp_path / "cache"), "--no-cache"]
    runs = {"onnx": ["--fr-model", str(mfn / "MobileFaceNet.onnx"), "--scope", "global"],
            "pt_folded": ["--fr-model", str(mfn / "mobilefacenet.pt"), "--fold-bn", "--scope", "global"],
            "pt": ["--fr-model", str(mfn / "mobilefacenet.pt")],
            "pt_torch": ["--fr-model", str(mfn / "mobilefacenet.pt"), "--runtime", "torch"],
            "onnx_channel": ["--fr-model", str(mfn / "MobileFaceNet.onnx"), "--scope", "channel"],
            "pt_channel": ["--fr-model", str(mfn / "mobilefacenet.pt"), "--scope", "channel"],
            "onnx_default": ["--fr-model", str(mfn / "MobileFaceNet.onnx")]}
    q = {}
    for name, args in runs.items():
        out = tmp_path / f"{name}.csv"
        res = CliRunner().invoke(cli, ["label", str(images), "--teacher", "prefiqs", *args, *common, "-o", str(out)])
        assert res.exit_code == 0, res.output
        q[name] = _read(out)
    keys = sorted(q["onnx"])
    assert len(keys) == 600
    v = {n: np.array([q[n][k] for k in keys]) for n in q}
    # the ONNX file holds BatchNorm-folded weights: it agrees with the .pt model pruned in its folded form
    assert spearmanr(v["onnx"], v["pt_folded"]).statistic >= 0.99
    # scopes channel and normalized prune the same weights in both forms: the .onnx agrees with the plain .pt
    assert spearmanr(v["onnx_channel"], v["pt_channel"]).statistic >= 0.99
    # default options: one teacher whatever the file format
    assert spearmanr(v["onnx_default"], v["pt"]).statistic >= 0.99
    # onnxruntime (default) and torch eager give the same .pt scores
    assert spearmanr(v["pt"], v["pt_torch"]).statistic >= 0.999
    np.testing.assert_allclose(v["pt"], v["pt_torch"], atol=1e-4)
