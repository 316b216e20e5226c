"""Degradations: identity at 0, monotone in severity, seeded, composable; degraded-set writer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefiq.data.degrade import DEGRADATIONS, RandomDegradation, compose, degrade, make_degraded_set
from edgefiq.errors import BadImageError, UsageError


def _face_like(seed: int = 0, size: int = 112) -> np.ndarray:
    """A smooth image with edges (blur/downscale need detail to act on)."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([120 + 80 * np.sin(6 * xx + c) * np.cos(5 * yy) for c in range(3)], axis=2)
    base[size // 3: size // 2, size // 4: 3 * size // 4] = r.uniform(20, 230, 3)  # a sharp "eye band"
    return np.clip(base + r.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


def test_names_match_contract() -> None:
    assert DEGRADATIONS == ("gaussian_blur", "motion_blur", "noise", "jpeg", "downscale", "occlusion",
                            "exposure_under", "exposure_over")


def assert_severity_ladder(img: np.ndarray, kind: str, seed: int, min_first: float) -> None:
    """The degradation contract on ``img``: identity at 0, shape and dtype kept, strictly growing change over
    severities 0.25..1 (the first above ``min_first``), the same output for the same seed."""
    assert np.array_equal(degrade(img, kind, 0.0, np.random.default_rng(0)), img)
    outs = [degrade(img, kind, s, np.random.default_rng(seed)) for s in (0.25, 0.5, 0.75, 1.0)]
    for o in outs:
        assert o.shape == img.shape and o.dtype == np.uint8
    dists = [_mae(o, img) for o in outs]
    assert all(b > a for a, b in zip(dists, dists[1:])), (kind, dists)
    assert dists[0] > min_first, (kind, dists)
    assert np.array_equal(degrade(img, kind, 0.75, np.random.default_rng(seed)), outs[2])  # same seed, same output


@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_identity_monotone_and_seeded(kind: str) -> None:
    assert_severity_ladder(_face_like(), kind, seed=7, min_first=0.5)


def test_strength_at_severity_one_is_substantial() -> None:
    img = _face_like()
    rng = np.random.default_rng(0)
    # downscale to 14 px loses most detail: high-frequency energy mostly gone
    d = degrade(img, "downscale", 1.0, rng).astype(float)
    assert np.abs(np.diff(d, axis=1)).mean() < 0.5 * np.abs(np.diff(img.astype(float), axis=1)).mean()
    occ = degrade(img, "occlusion", 1.0, np.random.default_rng(1))
    changed = (np.abs(occ.astype(int) - img).sum(axis=2) > 0).mean()
    assert 0.30 < changed <= 0.42
    noisy = degrade(np.full((112, 112, 3), 128, np.uint8), "noise", 1.0, rng).astype(float)
    assert 45 < noisy.std() < 55
    assert degrade(img, "exposure_under", 1.0, rng).mean() < 0.4 * img.mean()
    assert degrade(img, "exposure_over", 1.0, rng).mean() > 1.4 * img.mean()


def test_occlusion_positions_vary_and_reach_eyes() -> None:
    img = np.zeros((112, 112, 3), np.uint8)
    masks = [(degrade(img, "occlusion", 1.0, np.random.default_rng(s)) != 0).any(axis=2) for s in range(40)]
    centres = {(int(np.argwhere(m)[:, 0].mean()) // 10, int(np.argwhere(m)[:, 1].mean()) // 10) for m in masks if m.any()}
    assert len(centres) > 10
    eye_hit = sum(m[45:58, 30:80].mean() > 0.3 for m in masks)
    assert eye_hit >= 5


def test_errors_and_compose() -> None:
    img = _face_like(1, 64)
    with pytest.raises(UsageError, match="did you mean 'gaussian_blur'"):
        degrade(img, "gausian_blur", 0.5, np.random.default_rng(0))
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        degrade(img, "noise", 1.5, np.random.default_rng(0))
    a = compose(img, [("downscale", 0.5), ("noise", 0.3)], np.random.default_rng(3))
    b = compose(img, [("downscale", 0.5), ("noise", 0.3)], np.random.default_rng(3))
    assert np.array_equal(a, b) and a.shape == img.shape and _mae(a, img) > 1
    aug = RandomDegradation(p=1.0, max_ops=2, seed=0)
    outs = [aug(img) for _ in range(5)]
    assert all(o.shape == img.shape for o in outs) and any(_mae(o, img) > 1 for o in outs)
    assert RandomDegradation(p=0.0)(img) is img


def _tree(root: Path, n_ids: int = 3, per_id: int = 2) -> Path:
    for i in range(n_ids):
        d = root / f"Person_{i}"
        d.mkdir(parents=True)
        for j in range(per_id):
            Image.fromarray(_face_like(i * 10 + j)).save(d / f"Person_{i}_{j:04d}.jpg", quality=95)
    return root


def _rows(index: Path) -> list[dict[str, str]]:
    with open(index) as f:
        return list(csv.DictReader(f))


def test_make_degraded_set_layout_determinism_resume(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    out = tmp_path / "out"
    index = make_degraded_set(src, out, kinds=["gaussian_blur", "jpeg", "noise"], severities=(0.5, 1.0), seed=3)
    rows = _rows(index)
    assert index == out / "index.csv"
    assert len(rows) == 6 * (1 + 2)  # clean + 1 kind x 2 severities per image
    for r in rows:
        assert (out / r["path"]).is_file() and (src / r["source"]).is_file()
        assert r["path"].split("/")[0] == r["source"].split("/")[0]  # identity tree mirrored
    clean = [r for r in rows if r["kind"] == "clean"]
    assert len(clean) == 6 and all(r["severity"] == "0" for r in clean)
    assert (out / clean[0]["path"]).read_bytes() == (src / clean[0]["source"]).read_bytes()
    deg = [r for r in rows if r["kind"] != "clean"]
    assert all("__" + r["kind"] + "_" in r["path"] for r in deg)
    # deterministic: a second output with the same seed is byte-identical
    index2 = make_degraded_set(src, tmp_path / "out2", kinds=["gaussian_blur", "jpeg", "noise"],
                               severities=(0.5, 1.0), seed=3)
    assert _rows(index2) == rows
    assert all((out / r["path"]).read_bytes() == (tmp_path / "out2" / r["path"]).read_bytes() for r in rows)
    # resumable: delete one output, re-run, only it is rebuilt; others untouched
    victim = out / deg[0]["path"]
    victim.unlink()
    keep = out / deg[1]["path"]
    mtime = keep.stat().st_mtime_ns
    make_degraded_set(src, out, kinds=["gaussian_blur", "jpeg", "noise"], severities=(0.5, 1.0), seed=3)
    assert victim.is_file() and keep.stat().st_mtime_ns == mtime
    assert not list(out.rglob(".*.tmp*"))


def test_make_degraded_set_fraction_per_image_and_bad_images(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", n_ids=4, per_id=3)
    rows = _rows(make_degraded_set(src, tmp_path / "a", per_image=0, severities=(1.0,), include_clean=False))
    assert len(rows) == 12 * len(DEGRADATIONS)
    rows = _rows(make_degraded_set(src, tmp_path / "b", fraction=0.0))
    assert {r["kind"] for r in rows} == {"clean"}
    (src / "Person_0" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(BadImageError, match="broken.jpg"):
        make_degraded_set(src, tmp_path / "c")
    make_degraded_set(src, tmp_path / "d", on_bad_image="skip")
    assert "broken.jpg" in (tmp_path / "d" / "skipped.txt").read_text()
    with pytest.raises(UsageError, match="inside the source"):
        make_degraded_set(src, src / "sub")


def test_make_degraded_set_jitter_gives_seeded_near_continuous_severities(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    kw = dict(kinds=["gaussian_blur", "noise"], severities=(0.25, 0.5, 0.75, 1.0), seed=1, jitter=0.1)
    rows = [r for r in _rows(make_degraded_set(src, tmp_path / "a", **kw)) if r["kind"] != "clean"]
    sev = np.array([float(r["severity"]) for r in rows])
    base = np.array([0.25, 0.5, 0.75, 1.0])
    nearest = base[np.abs(sev[:, None] - base[None]).argmin(1)]
    assert np.all(np.abs(sev - nearest) <= 0.1 + 1e-9) and np.all((sev >= 0.01) & (sev <= 1.0))
    assert len(set(sev.round(2))) > 2 * len(base)          # not the four tied levels
    for r in rows:                                          # the file name carries the jittered severity
        assert r["path"].endswith(f"_{float(r['severity']):.2f}.jpg")
    again = [r for r in _rows(make_degraded_set(src, tmp_path / "b", **kw)) if r["kind"] != "clean"]
    assert again == rows                                    # seeded
    with pytest.raises(UsageError, match="jitter"):
        make_degraded_set(src, tmp_path / "c", kinds=["noise"], jitter=1.5)
