"""FaceDataset: preprocessing from the spec, labels, transforms before preprocessing, bad-image policy, cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgefiq.data.dataset import FaceDataset, worker_init_fn
from edgefiq.data.degrade import RandomDegradation
from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import BadImageError, DataError


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    out = []
    for i in range(4):
        p = tmp_path / f"P{i}" / "img.png"
        p.parent.mkdir()
        Image.fromarray(np.full((120, 100, 3), 40 * i, np.uint8)).save(p)
        out.append(p)
    return out


def test_items_follow_preprocess_spec(files: list[Path]) -> None:
    pp = Preprocess(size=(112, 112), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), layout="NHWC")
    ds = FaceDataset(files, pp, labels=[0.1, 0.2, 0.3, 0.4])
    x, y, i = ds[2]
    assert x.shape == (3, 112, 112) and x.dtype == torch.float32  # CHW regardless of the spec's layout
    assert y == pytest.approx(0.3) and i == 2
    assert torch.allclose(x, torch.full_like(x, (80 / 255 - 0.5) / 0.5), atol=1e-5)
    _, y, _ = FaceDataset(files, pp)[0]
    assert math.isnan(y)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 3, 112, 112) and batch[2].tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match="3 labels for 4 images"):
        FaceDataset(files, pp, labels=[1, 2, 3])


def test_transform_runs_on_uint8_before_preprocessing(files: list[Path]) -> None:
    seen = []

    def t(img: np.ndarray) -> np.ndarray:
        seen.append((img.dtype, img.shape))
        return 255 - img

    x, _, _ = FaceDataset(files, Preprocess(mean=(0, 0, 0), std=(1, 1, 1)), transform=t)[0]
    assert seen == [(np.uint8, (120, 100, 3))] and torch.allclose(x, torch.ones_like(x))
    aug = RandomDegradation(p=1.0, seed=0)
    ds = FaceDataset(files, Preprocess(), transform=aug)
    assert ds[1][0].shape == (3, 112, 112)


def test_bad_image_policy_and_cache(files: list[Path], tmp_path: Path) -> None:
    files[1].write_bytes(b"garbage")
    ds = FaceDataset(files, Preprocess())
    with pytest.raises(BadImageError, match="P1"):
        ds[1]
    ds = FaceDataset(files, Preprocess(), labels=[0, 1, 2, 3], on_bad_image="skip", cache=True)
    assert len(ds) == 3 and [ds[k][2] for k in range(3)] == [0, 2, 3] and ds[1][1] == 2.0
    assert ds.skips.write(tmp_path / "o").read_text().startswith(str(files[1]))
    files[3].unlink()  # cached images no longer need their files
    assert ds[2][0].shape == (3, 112, 112)


def test_worker_init_fn_gives_workers_distinct_streams(files: list[Path]) -> None:
    # noise changes every pixel of these flat images; a random kind could be a blur that leaves a flat
    # image as it was in both workers (seen once in a clean-clone CI run)
    aug = RandomDegradation(kinds=["noise"], p=1.0, seed=0)
    ds = FaceDataset(files[:2] * 2, Preprocess(), transform=aug)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, worker_init_fn=worker_init_fn)
    a, b = [x for x, _, _ in loader]
    assert not torch.allclose(a, b)  # same images, different workers -> different degradations
