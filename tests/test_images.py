"""Bad input is normal input: every kind of awkward or broken image, through the library and the CLI."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgefiq.cli import cli
from edgefiq.data.images import SkipLog, image_info, load_image, read_images
from edgefiq.errors import BadImageError, DataError, UnsafeFileError

CONVERTIBLE = ["gray.png", "rgba.png", "cmyk.jpg", "deep16.png", "palette.png", "palette_transparent.png",
               "exif_rotated.jpg", "rgb.bmp", "rgb.webp"]
BROKEN = ["corrupt.jpg", "truncated.jpg", "zero.jpg", "text.jpg"]


def _jpeg_bytes(arr: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    """An identity tree ``Good/`` (convertible images) + ``Bad/`` (broken files), built with PIL at test time."""
    good, bad = tmp_path / "imgs" / "Good", tmp_path / "imgs" / "Bad"
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    grad = np.linspace(0, 255, 32 * 32).reshape(32, 32).astype(np.uint8)
    rgb = np.stack([grad, grad.T, 255 - grad], axis=2)
    Image.fromarray(grad, "L").save(good / "gray.png")
    rgba = np.dstack([rgb, np.full((32, 32), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(good / "rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(good / "cmyk.jpg", quality=95)
    Image.fromarray((grad.astype(np.uint16) * 257)).save(good / "deep16.png")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16).save(good / "palette.png")
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.save(good / "palette_transparent.png", transparency=0)
    marked = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide x 20 high, red marker at stored top-left
    marked[:5, :5] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    Image.fromarray(marked).save(good / "exif_rotated.jpg", quality=95, exif=exif.tobytes())
    Image.fromarray(rgb).save(good / "rgb.bmp")
    Image.fromarray(rgb).save(good / "rgb.webp")
    full = _jpeg_bytes(rgb)
    (bad / "corrupt.jpg").write_bytes(full[:20] + bytes(np.random.default_rng(0).integers(0, 255, 600, dtype=np.uint8)))
    (bad / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("this is not an image, just a text file with a .jpg name\n")
    return tmp_path / "imgs"


def test_convertible_images_load_as_rgb_uint8(bad_folder: Path) -> None:
    for name in CONVERTIBLE:
        img = load_image(bad_folder / "Good" / name)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8, name
    gray = load_image(bad_folder / "Good" / "gray.png")
    assert (gray[..., 0] == gray[..., 2]).all() and gray.max() == 255
    deep = load_image(bad_folder / "Good" / "deep16.png")  # 16-bit rescaled, not clipped
    assert deep.max() == 255 and 120 < deep.mean() < 135
    rgba = load_image(bad_folder / "Good" / "rgba.png")  # alpha 128 composited on black: about half
    assert 0.4 < rgba.astype(float).mean() / load_image(bad_folder / "Good" / "rgb.bmp").mean() < 0.6
    assert abs(load_image(bad_folder / "Good" / "cmyk.jpg").astype(float).mean()
               - load_image(bad_folder / "Good" / "rgb.bmp").mean()) < 8


def test_exif_orientation_is_applied(bad_folder: Path) -> None:
    img = load_image(bad_folder / "Good" / "exif_rotated.jpg")
    assert img.shape == (40, 20, 3)  # rotated to portrait
    red = (img[..., 0] > 150) & (img[..., 1] < 100)
    ys, xs = np.nonzero(red)
    assert ys.mean() < 6 and xs.mean() > 13  # stored top-left -> displayed top-right after 90 CW


@pytest.mark.parametrize("name,reason", [("corrupt.jpg", "cannot decode|not an image"), ("truncated.jpg", "cannot decode"),
                                         ("zero.jpg", "empty file"), ("text.jpg", "not an image")])
def test_broken_images_raise_one_line_error_naming_file(bad_folder: Path, name: str, reason: str) -> None:
    with pytest.raises(BadImageError, match=reason) as e:
        load_image(bad_folder / "Bad" / name)
    assert name in str(e.value) and "\n" not in str(e.value)


def test_read_images_skip_policy_and_skipped_txt(bad_folder: Path, tmp_path: Path) -> None:
    paths = sorted((bad_folder / "Bad").iterdir()) + sorted((bad_folder / "Good").iterdir())
    with pytest.raises(BadImageError):
        list(read_images(paths))
    skips = SkipLog()
    got = list(read_images(paths, "skip", skips))
    assert [p.name for _, p, _ in got] == sorted(CONVERTIBLE)
    assert [i for i, _, _ in got] == list(range(len(BROKEN), len(paths)))  # original indices
    out = skips.write(tmp_path / "out")
    assert sorted(Path(line.split("\t")[0]).name for line in out.read_text().splitlines()) == sorted(BROKEN)
    assert SkipLog().write(tmp_path / "none") is None and not (tmp_path / "none").exists()
    assert image_info(bad_folder / "Good" / "deep16.png").mode.startswith("I")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgefiq", *args], capture_output=True, text=True,
                          env={**os.environ, "EDGEFIQ_QUIET": "1"})


def test_cli_inspect_verify_errors_then_skips(bad_folder: Path, tmp_path: Path) -> None:
    p = _run("data", "inspect", "--verify", str(bad_folder))
    assert p.returncode == 1
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("Error: ") and any(b in p.stderr for b in BROKEN)
    res = CliRunner().invoke(cli, ["data", "inspect", "--verify", "--on-bad-image", "skip", "-o", str(tmp_path / "rep"),
                                   str(bad_folder)])
    assert res.exit_code == 0, res.output
    assert f"{len(CONVERTIBLE) + len(BROKEN)} images of 2 identities" in res.output
    assert f"unreadable: {len(BROKEN)} (fully decoded)" in res.output
    listed = (tmp_path / "rep" / "skipped.txt").read_text()
    assert sorted(Path(line.split("\t")[0]).name for line in listed.splitlines()) == sorted(BROKEN)
    assert (tmp_path / "rep" / "inspect.json").is_file() and (tmp_path / "rep" / "inspect.md").is_file()


def test_cli_degrade_bad_images_error_and_skip(bad_folder: Path, tmp_path: Path) -> None:
    r = CliRunner()
    res = r.invoke(cli, ["data", "degrade", str(bad_folder), "-o", str(tmp_path / "d1"), "--kinds", "noise"])
    assert res.exit_code != 0 and isinstance(res.exception, BadImageError)
    res = r.invoke(cli, ["data", "degrade", str(bad_folder), "-o", str(tmp_path / "d2"), "--kinds", "noise",
                         "--on-bad-image", "skip"])
    assert res.exit_code == 0, res.output
    listed = (tmp_path / "d2" / "skipped.txt").read_text()
    assert sorted(Path(line.split("\t")[0]).name for line in listed.splitlines()) == sorted(BROKEN)


def test_cli_empty_folder_and_bad_csv(tmp_path: Path, bad_folder: Path) -> None:
    (tmp_path / "empty").mkdir()
    p = _run("data", "inspect", str(tmp_path / "empty"))
    assert p.returncode == 1 and "no images found" in p.stderr and "Traceback" not in p.stderr
    csv = tmp_path / "labels.csv"
    csv.write_text("path,quality\nGood/gray.png,0.5\nGood/rgba.png,nan\nGood/missing.jpg,0.1\n")
    res = CliRunner().invoke(cli, ["data", "inspect", str(csv), "--images-root", str(bad_folder)])
    assert isinstance(res.exception, DataError)
    assert "labels.csv row 3 (Good/rgba.png): quality is nan" in str(res.exception)
    csv.write_text("path,quality,teacher\nGood/gray.png,0.5,x\nGood/missing.jpg,0.1,x\n")
    res = CliRunner().invoke(cli, ["data", "inspect", str(csv), "--images-root", str(bad_folder)])
    assert "row 3 (Good/missing.jpg): image not found" in str(res.exception)
    csv.write_text("path,quality,teacher\nGood/gray.png,0.5,x\nGood/rgb.bmp,inf,y\n")
    res = CliRunner().invoke(cli, ["data", "inspect", str(csv), "--images-root", str(bad_folder)])
    assert "quality is inf" in str(res.exception)


def test_cli_malicious_bin_rejected_nothing_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # noqa: D105
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps(([Evil(), Evil()], [True])))
    p = _run("data", "inspect", str(evil))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "refusing to load" in p.stderr and "system" in p.stderr
    assert not marker.exists()
    res = CliRunner().invoke(cli, ["data", "inspect", str(evil)])
    assert isinstance(res.exception, UnsafeFileError) and not marker.exists()
