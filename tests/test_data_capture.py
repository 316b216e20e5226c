"""Capture defects: the degradation contract (identity at 0, monotone, seeded), where each acts, families, CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_data_degrade import assert_severity_ladder

from edgefiq.cli import cli
from edgefiq.data.capture import CAPTURE_DEFECTS
from edgefiq.data.degrade import (DEGRADATIONS, FAMILY, ISO_COMPONENT, KINDS, RandomDegradation, degrade,
                                  expand_kinds, family_of, make_degraded_set)
from edgefiq.errors import UsageError

_EYES, _MOUTH = slice(44, 60), slice(84, 100)  # rows of the ArcFace 112 template's eyes and mouth


def _face_like(seed: int = 0, size: int = 112) -> np.ndarray:
    """A smooth textured image with a bright oval 'face' in the middle (geometry must move something)."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([110 + 60 * np.sin(9 * xx + c) * np.cos(7 * yy) for c in range(3)], axis=2)
    face = ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.55) / 0.4) ** 2 < 1
    base[face] += 50
    return np.clip(base + r.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def test_kinds_keep_the_classic_order_and_every_kind_has_a_family() -> None:
    assert KINDS[:len(DEGRADATIONS)] == DEGRADATIONS  # the seeds of existing degraded sets do not move
    assert KINDS[len(DEGRADATIONS):] == CAPTURE_DEFECTS and len(CAPTURE_DEFECTS) == 17
    assert set(FAMILY) == set(KINDS) == set(ISO_COMPONENT)
    assert {FAMILY[k] for k in CAPTURE_DEFECTS} == {"misalignment", "pose", "lens", "occluder", "illumination",
                                                    "background"}
    assert family_of("yaw") == "pose" and family_of("clean") == "clean" and family_of("jpeg") == "compression"


@pytest.mark.parametrize("kind", CAPTURE_DEFECTS)
@pytest.mark.parametrize("size", [112, 64])
def test_identity_monotone_and_seeded(kind: str, size: int) -> None:
    assert_severity_ladder(_face_like(size=size), kind, seed=5, min_first=0.3)


def _centroid_x(img: np.ndarray) -> float:
    bright = img.mean(axis=2) > 200
    return float(np.argwhere(bright)[:, 1].mean())


def test_geometry_moves_and_scales_the_face() -> None:
    img = np.zeros((112, 112, 3), np.uint8)
    img[46:66, 46:66] = 255  # a 20 px bright square at the centre
    shifted = degrade(img, "shift_x", 1.0, np.random.default_rng(0))
    assert 25 < abs(_centroid_x(shifted) - _centroid_x(img)) < 40  # 30 % of 112 px
    area = lambda a: float((a.mean(axis=2) > 128).sum())  # noqa: E731
    assert 3.0 < area(degrade(img, "zoom_in", 1.0, np.random.default_rng(0))) / area(img) < 4.5  # 1.9x per side
    assert 0.1 < area(degrade(img, "zoom_out", 1.0, np.random.default_rng(0))) / area(img) < 0.25  # 0.4x per side
    cut = degrade(np.full((112, 112, 3), 200, np.uint8), "border_crop", 1.0, np.random.default_rng(0))
    assert 0.4 < (cut.max(axis=2) == 0).mean() < 0.5


def _region_change(kind: str, seed: int) -> tuple[float, float, float]:
    """Mean absolute change in the forehead, eye and mouth rows of a flat grey face at severity 1."""
    img = np.full((112, 112, 3), 150, np.uint8)
    d = np.abs(degrade(img, kind, 1.0, np.random.default_rng(seed)).astype(float) - img).mean(axis=(1, 2))
    return float(d[5:30].mean()), float(d[_EYES].mean()), float(d[_MOUTH].mean())


@pytest.mark.parametrize("seed", range(3))
def test_shaped_occluders_cover_their_region(seed: int) -> None:
    forehead, eyes, mouth = _region_change("sunglasses", seed)
    assert eyes > 3 * mouth and eyes > 15
    forehead, eyes, mouth = _region_change("mask", seed)
    assert mouth > 3 * eyes and mouth > 15
    forehead, eyes, mouth = _region_change("hat", seed)
    assert forehead > 3 * mouth and forehead > 15


def test_clutter_changes_the_background_not_the_face() -> None:
    img = _face_like()
    d = np.abs(degrade(img, "clutter", 1.0, np.random.default_rng(0)).astype(float) - img).mean(axis=2)
    assert d[50:70, 45:67].mean() < 1.0 and d[:10, :10].mean() > 20


def test_expand_kinds_takes_kinds_families_and_groups() -> None:
    assert expand_kinds(["noise", "pose"]) == ["noise", "yaw", "pitch"]
    assert expand_kinds(["classic"]) == list(DEGRADATIONS)
    assert expand_kinds(["all", "blur"]) == list(KINDS)
    assert expand_kinds(["occluder"]) == ["sunglasses", "mask", "hand", "hair", "hat"]
    with pytest.raises(UsageError, match="did you mean 'misalignment'"):
        expand_kinds(["misalignmnt"])
    aug = RandomDegradation(kinds=["capture"], p=1.0, seed=0)
    assert aug.kinds == CAPTURE_DEFECTS and aug(_face_like()).shape == (112, 112, 3)


def _write_faces(root: Path, n: int = 4) -> None:
    for i in range(n):
        (root / f"id{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_face_like(i)).save(root / f"id{i % 2}" / f"f{i}.png")


def test_degraded_set_with_families_writes_capture_kinds(tmp_path: Path) -> None:
    _write_faces(tmp_path / "src")
    index = make_degraded_set(tmp_path / "src", tmp_path / "out", kinds=["pose", "occluder"], severities=(0.5, 1.0),
                              per_image=0)
    rows = list(csv.DictReader(open(index)))
    kinds = {r["kind"] for r in rows}
    assert kinds == {"clean", "yaw", "pitch", "sunglasses", "mask", "hand", "hair", "hat"}
    assert len(rows) == 4 * (1 + 7 * 2)


def test_cli_lists_kinds_and_degrades_by_family(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["data", "degrade", "--list", "--json"])
    assert listed.exit_code == 0, listed.output
    import json

    table = json.loads(listed.output)
    assert [r["kind"] for r in table] == list(KINDS)
    assert {r["family"] for r in table if r["group"] == "capture"} >= {"misalignment", "pose"}
    _write_faces(tmp_path / "src", 2)
    res = runner.invoke(cli, ["data", "degrade", str(tmp_path / "src"), "-o", str(tmp_path / "out"),
                               "--kinds", "misalignment", "--severities", "1", "--per-image", "0"])
    assert res.exit_code == 0, res.output
    assert "wrote 14 images" in res.output  # 2 clean + 2 x 6 misalignment kinds
    bad = runner.invoke(cli, ["data", "degrade", str(tmp_path / "src"), "-o", str(tmp_path / "o2"), "--kinds", "poze"])
    assert bad.exit_code != 0 and "did you mean 'pose'" in str(bad.exception)
    missing = runner.invoke(cli, ["data", "degrade", "--kinds", "pose"])
    assert missing.exit_code != 0 and "needs SRC" in str(missing.exception)
