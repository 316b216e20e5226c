"""Readers: image folders, identity trees, label CSVs, LFW pairs, insightface .bin (restricted unpickler)."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefiq.data.readers import (identity_of, list_images, read_insightface_bin, read_labels_csv, read_lfw_pairs,
                                  write_insightface_bin)
from edgefiq.errors import DataError, UnsafeFileError


def _img(path: Path, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)
    return path


def test_list_images_recursive_sorted_filters(tmp_path: Path) -> None:
    for rel in ["b/b_0002.png", "b/b_0001.jpg", "a/x.JPEG", "a/deep/y.bmp", "c.webp"]:
        _img(tmp_path / rel)
    (tmp_path / "notes.txt").write_text("hi")
    _img(tmp_path / ".hidden" / "z.jpg")
    _img(tmp_path / "a" / ".a.jpg.tmp.jpg")  # an atomic-write leftover
    got = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert got == ["a/deep/y.bmp", "a/x.JPEG", "b/b_0001.jpg", "b/b_0002.png", "c.webp"]
    assert [identity_of(g) for g in got] == ["a", "a", "b", "b", ""]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="folder not found"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        list_images(tmp_path / "empty")


def test_read_labels_csv_good_and_bad(tmp_path: Path) -> None:
    _img(tmp_path / "img" / "A" / "a1.jpg")
    _img(tmp_path / "img" / "B" / "b1.jpg")
    root = tmp_path / "img"
    good = tmp_path / "good.csv"
    good.write_text("path,quality,teacher\nA/a1.jpg,0.5,x\nB/b1.jpg,-1e-3,y\n")
    paths, q = read_labels_csv(good, root)
    assert paths == [root / "A/a1.jpg", root / "B/b1.jpg"] and q.tolist() == [0.5, -1e-3] and q.dtype == np.float64
    cases = {
        "path,score\nA/a1.jpg,0.5\n": "missing column\\(s\\) quality",
        "path,quality\nA/a1.jpg,nan\n": r"row 2 \(A/a1.jpg\): quality is nan",
        "path,quality\nA/a1.jpg,0.1\nB/b1.jpg,inf\n": r"row 3 \(B/b1.jpg\): quality is inf",
        "path,quality\nA/a1.jpg,\n": r"row 2 \(A/a1.jpg\): quality is missing",
        "path,quality\nA/a1.jpg,high\n": "'high' is not a number",
        "path,quality\nA/a1.jpg,1\nA/gone.jpg,2\nA/gone2.jpg,3\n": r"row 3 \(A/gone.jpg\): image not found.*1 more",
        "path,quality\n/etc/hostname,1\n": r"row 2 \(/etc/hostname\): paths must be relative to the images root",
        "path,quality\nA/a1.jpg,1\n../../etc/hostname,2\n": r"row 3 \(../../etc/hostname\): paths must be relative",
        "": "empty file",
        "path,quality\n": "no rows",
    }
    for i, (text, msg) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.csv"
        bad.write_text(text)
        with pytest.raises(DataError, match=msg) as e:
            read_labels_csv(bad, root)
        assert f"bad{i}.csv" in str(e.value) and "\n" not in str(e.value)


def test_read_lfw_pairs(tmp_path: Path) -> None:
    p = tmp_path / "pairs.txt"
    p.write_text("1\t2\nAbel\t1\t4\nBob\t2\t3\nAbel\t1\tCarl\t12\nDee\t3\tEd\t1\n")
    pairs = read_lfw_pairs(p)
    assert pairs[0] == ("Abel/Abel_0001.jpg", "Abel/Abel_0004.jpg", True)
    assert pairs[2] == ("Abel/Abel_0001.jpg", "Carl/Carl_0012.jpg", False)
    assert [g for _, _, g in pairs] == [True, True, False, False]
    p.write_text("1\t3\nAbel\t1\t4\n")
    with pytest.raises(DataError, match="promises 6 pairs, found 1"):
        read_lfw_pairs(p)
    p.write_text("1 1\nAbel 1\nA 1 B 2\n")
    with pytest.raises(DataError, match="line 2"):
        read_lfw_pairs(p)


@pytest.mark.parametrize("as_numpy", [True, False])
def test_insightface_bin_roundtrip(tmp_path: Path, as_numpy: bool) -> None:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 120, 112)[None, :, None]
    imgs = [np.clip(rng.uniform(0, 130, 3) + ramp + 0 * ramp.T, 0, 255).astype(np.uint8).repeat(112, 0) for _ in range(4)]
    path = write_insightface_bin(tmp_path / "t.bin", imgs, [True, False], as_numpy=as_numpy)
    got, issame = read_insightface_bin(path)
    assert issame == [True, False] and len(got) == 4 and got[0].shape == (112, 112, 3)
    assert np.abs(got[1].astype(float) - imgs[1]).mean() < 3  # JPEG q95 of a smooth image
    blobs, _ = read_insightface_bin(path, decode=False)
    assert all(isinstance(b, bytes) and b[:2] == b"\xff\xd8" for b in blobs)


def test_insightface_bin_python2_bytes_and_numpy_bools(tmp_path: Path) -> None:
    buf = __import__("io").BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG")
    jpg = buf.getvalue()
    # protocol 2 + np.bool_ flags, as mixed-era files have them
    (tmp_path / "p2.bin").write_bytes(pickle.dumps(([jpg, jpg], [np.bool_(True)]), protocol=2))
    imgs, issame = read_insightface_bin(tmp_path / "p2.bin")
    assert issame == [True] and imgs[0].shape == (8, 8, 3)
    # a genuine Python-2 pickle: JPEGs as BINSTRING (py2 str) opcodes, which need encoding="bytes"
    binstr = b"T" + struct.pack("<i", len(jpg)) + jpg
    py2 = b"\x80\x02](" + binstr + binstr + b"e]\x88a\x86."
    (tmp_path / "py2.bin").write_bytes(py2)
    imgs, issame = read_insightface_bin(tmp_path / "py2.bin")
    assert issame == [True] and len(imgs) == 2 and imgs[1].shape == (8, 8, 3)


def test_malicious_bin_rejected_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # noqa: D105
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps(([Evil()], [True])))
    with pytest.raises(UnsafeFileError, match=r"evil.bin: refusing to load (posix|os|nt)\.system"):
        read_insightface_bin(evil)
    assert not marker.exists()
    # sanity: plain pickle.load WOULD run it, so the test above is meaningful
    pickle.loads(evil.read_bytes())
    assert marker.exists()


def test_bin_structure_errors(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(DataError, match="expected a pickle of"):
        read_insightface_bin(tmp_path / "a.bin")
    (tmp_path / "b.bin").write_bytes(b"garbage, not a pickle")
    with pytest.raises(DataError, match="not a valid insightface .bin"):
        read_insightface_bin(tmp_path / "b.bin")
    (tmp_path / "c.bin").write_bytes(pickle.dumps(([b"junk", b"junk"], [True])))
    with pytest.raises(DataError, match=r"c.bin\[image 0\]: not an image"):
        read_insightface_bin(tmp_path / "c.bin")


@pytest.mark.shared_data
def test_real_small_lfw_bin_and_pairs(shared: Path) -> None:
    imgs, issame = read_insightface_bin(shared / "insightface-bin" / "small_lfw.bin")
    assert len(imgs) == 20 and len(issame) == 10 and imgs[0].shape == (112, 112, 3)
    pairs = read_lfw_pairs(shared / "lfw-dev" / "pairs.txt")
    assert len(pairs) == 4200 and sum(g for *_, g in pairs) == 2100
