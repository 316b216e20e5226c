"""5-point similarity alignment: Umeyama fit, templates, warping, and the shared LFW crops reproduced."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgefiq.data.align import (ARCFACE_TEMPLATE_112, align_face, align_folder, arcface_template, read_landmarks_tsv,
                                similarity_transform)
from edgefiq.errors import BadImageError, DataError


def _sim(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


def test_umeyama_recovers_similarity_and_never_reflects() -> None:
    m = _sim(2.3, 17.0, 40.0, -12.0)
    src = ARCFACE_TEMPLATE_112
    dst = src @ m[:, :2].T + m[:, 2]
    assert np.allclose(similarity_transform(src, dst), m, atol=1e-9)
    mirrored = dst * [-1, 1]  # a reflection is the exact fit; we must return a rotation instead
    fit = similarity_transform(src, mirrored)
    assert np.linalg.det(fit[:, :2]) > 0
    with pytest.raises(DataError, match="degenerate"):
        similarity_transform(np.zeros((5, 2)), dst)


def test_templates_for_sizes() -> None:
    assert np.allclose(arcface_template(112), ARCFACE_TEMPLATE_112)
    assert np.allclose(arcface_template((112, 96)), ARCFACE_TEMPLATE_112 - [8, 0])
    assert np.allclose(arcface_template(224), ARCFACE_TEMPLATE_112 * 2)


@pytest.mark.parametrize("convention", ["pillow", "opencv"])
def test_align_puts_landmarks_on_template(convention: str) -> None:
    # draw 5 dots at the template of a 112 image, move them with a known similarity, align back
    m = _sim(1.8, -12.0, 30.0, 25.0)
    pts = ARCFACE_TEMPLATE_112 @ m[:, :2].T + m[:, 2]
    offset = 0.5 if convention == "pillow" else 0.0  # pillow: pixel i spans [i, i+1), centre at i + 0.5
    yy, xx = np.mgrid[0:300, 0:300] + offset
    blobs = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.5**2)) for x, y in pts)
    src = np.repeat((255 * blobs)[..., None], 3, axis=2).round().astype(np.uint8)
    for size in [(112, 112), (112, 96)]:
        crop = align_face(src, pts, size, convention=convention).astype(float)[..., 0]
        cy_, cx_ = np.mgrid[0:size[0], 0:size[1]] + offset
        for x, y in arcface_template(size):
            win = crop * ((np.abs(cx_ - x) < 6) & (np.abs(cy_ - y) < 6))
            cy, cx = (win * cy_).sum() / win.sum(), (win * cx_).sum() / win.sum()
            assert abs(cx - x) < 0.15 and abs(cy - y) < 0.15, (size, x, y, cx, cy)


def test_read_landmarks_tsv_errors(tmp_path: Path) -> None:
    p = tmp_path / "m.tsv"
    p.write_text("a/a_0001.jpg\t" + "\t".join(["1"] * 10) + "\n# comment\n\n")
    assert read_landmarks_tsv(p)["a/a_0001.jpg"].shape == (5, 2)
    p.write_text("a/a_0001.jpg\t1\t2\n")
    with pytest.raises(DataError, match="line 1"):
        read_landmarks_tsv(p)
    p.write_text("a/a_0001.jpg\t" + "\t".join(["nan"] * 10) + "\n")
    with pytest.raises(DataError, match="finite"):
        read_landmarks_tsv(p)


def test_align_folder_missing_landmarks_policy(tmp_path: Path) -> None:
    for name in ("A/A_0001.jpg", "A/A_0002.jpg"):
        (tmp_path / "raw" / "A").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(tmp_path / "raw" / name)
    tsv = tmp_path / "m.tsv"
    tsv.write_text("A/A_0001.jpg\t40 50 80 50 60 70 45 90 75 90\nB/B_0001.jpg\t1 2 3 4 5 6 7 8 9 10\n")
    with pytest.raises(BadImageError, match="A_0002.jpg: no landmarks"):
        align_folder(tmp_path / "raw", tsv, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.jpg"))   # the crop of A_0001 made before the error is gone
    res = align_folder(tmp_path / "raw", tsv, tmp_path / "out2", size=(112, 96), on_bad_image="skip")
    assert res.aligned == 1 and len(res.skipped) == 1
    assert Image.open(tmp_path / "out2" / "A" / "A_0001.jpg").size == (96, 112)
    assert "A_0002.jpg" in (tmp_path / "out2" / "skipped.txt").read_text()


@pytest.mark.shared_data
def test_cli_align_reproduces_shared_lfw_crops(shared: Path, tmp_path: Path) -> None:
    """Must-show: `edgefiq data align raw_sample landmarks.tsv -o OUT` matches aligned112 (MAE < 3 on 0-255)."""
    from edgefiq.cli import cli
    from edgefiq.data.images import load_image
    from edgefiq.data.readers import list_images

    lfw = shared / "lfw-dev"
    res = CliRunner().invoke(cli, ["data", "align", str(lfw / "raw_sample"), str(lfw / "landmarks.tsv"),
                                   "-o", str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    outs = list_images(tmp_path / "x")
    assert len(outs) == 200
    maes = [np.abs(load_image(p).astype(np.float64) - load_image(lfw / "aligned112" / p.relative_to(tmp_path / "x"))).mean()
            for p in outs]
    print(f"align MAE over {len(maes)} images: mean {np.mean(maes):.3f}, max {np.max(maes):.3f}")
    assert np.mean(maes) < 3.0 and np.max(maes) < 3.0


def test_cli_align_names_the_skip_file_once(tmp_path: Path) -> None:
    from edgefiq.cli import cli

    (tmp_path / "raw" / "A").mkdir(parents=True)
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(tmp_path / "raw" / "A" / "A_0001.jpg")
    (tmp_path / "raw" / "A" / "A_0002.jpg").write_bytes(b"not an image")
    tsv = tmp_path / "m.tsv"
    tsv.write_text("A/A_0001.jpg\t40 50 80 50 60 70 45 90 75 90\nA/A_0002.jpg\t40 50 80 50 60 70 45 90 75 90\n")
    res = CliRunner().invoke(cli, ["data", "align", str(tmp_path / "raw"), str(tsv), "-o", f"{tmp_path}/out/",
                                   "--on-bad-image", "skip"])
    assert res.exit_code == 0, res.output
    assert f"skipped 1 (see {tmp_path}/out/skipped.txt)" in res.output
