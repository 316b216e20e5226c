"""The synthetic sample: identity tree, index, marker, determinism, template layout, quality spread."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from edgefiq.data.align import arcface_template, read_landmarks_tsv
from edgefiq.data.images import load_image
from edgefiq.data.readers import identity_of, list_images
from edgefiq.data.synthetic import make_synthetic_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_sample(tmp_path_factory.mktemp("synth"), n_identities=6, per_identity=4, seed=1)


def test_layout_index_and_marker(sample: Path) -> None:
    assert "SYNTHETIC DATA - NOT REAL FACES" in (sample / "SYNTHETIC.txt").read_text()
    paths = list_images(sample)
    assert len(paths) == 6 * 4 * 2
    assert len({identity_of(p.relative_to(sample)) for p in paths}) == 6
    rows = list(csv.DictReader(open(sample / "index.csv")))
    assert {r["path"] for r in rows} == {p.relative_to(sample).as_posix() for p in paths}
    assert all(r["synthetic"] == "1" and r["identity"] == r["path"].split("/")[0] for r in rows)
    assert sum(r["kind"] == "clean" for r in rows) == 24 and len({r["kind"] for r in rows}) > 3
    assert load_image(paths[0]).shape == (112, 112, 3)


def test_deterministic_and_seed_dependent(sample: Path, tmp_path: Path) -> None:
    again = make_synthetic_sample(tmp_path / "a", n_identities=6, per_identity=4, seed=1)
    for p in list_images(sample):
        assert (again / p.relative_to(sample)).read_bytes() == p.read_bytes()
    other = make_synthetic_sample(tmp_path / "b", n_identities=1, per_identity=1, seed=2, degraded=False)
    assert (other / "Synth_000/Synth_000_0001.jpg").read_bytes() != (sample / "Synth_000/Synth_000_0001.jpg").read_bytes()


def test_landmarks_near_arcface_template_and_identities_differ(sample: Path) -> None:
    marks = read_landmarks_tsv(sample / "landmarks.tsv")
    assert len(marks) == 24
    dev = np.array([np.abs(m - arcface_template(112)).max() for m in marks.values()])
    assert dev.max() < 12 and dev.mean() < 7
    # images of one identity resemble each other more than images of different identities
    clean = {rel: load_image(sample / rel).astype(np.float64) for rel in marks}
    by_id: dict[str, list[np.ndarray]] = {}
    for rel, img in clean.items():
        by_id.setdefault(identity_of(rel), []).append(img[20:100, 20:92])  # face region
    ids = sorted(by_id)
    within = np.mean([np.abs(a - b).mean() for k in ids for a, b in zip(by_id[k], by_id[k][1:])])
    between = np.mean([np.abs(by_id[a][0] - by_id[b][0]).mean() for a, b in zip(ids, ids[1:])])
    assert within < 0.8 * between


def test_fast_enough_for_quickstart(tmp_path: Path) -> None:
    t = time.perf_counter()
    make_synthetic_sample(tmp_path, n_identities=20, per_identity=6)
    assert time.perf_counter() - t < 15  # target < 5 s; wide margin for a shared, loaded CI machine
