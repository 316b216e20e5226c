"""``edgefiq bestshot`` and the ``BestShot`` stream API on a generated walk-up MP4 of LFW photos."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgefiq.cli import cli
from edgefiq.errors import DataError, UsageError
from edgefiq.video import BestShot, open_frames
from edgefiq.video.synth import truth_path, write_walkup_video

from test_cli_detect import NO_TORCH, ROOT

PHOTOS = ["Hans_Blix/Hans_Blix_0004.jpg", "Aaron_Patterson/Aaron_Patterson_0001.jpg"]
pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def walkup(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 50-frame 480x640 MP4: one person walks up, a second one crosses."""
    raw = shared / "lfw-dev"
    out = tmp_path_factory.mktemp("video") / "walkup.mp4"
    return write_walkup_video(raw / "raw_sample", raw / "landmarks.tsv", out, photos=PHOTOS, frames=50, seed=3)


def _chosen(tracks_json: dict) -> dict[int, list[int]]:
    return {t["track"]: [b["frame"] for b in t["best"]] for t in tracks_json["tracks"]}


def test_walkup_video_and_truth(walkup):
    truth = json.loads(truth_path(walkup).read_text())
    assert truth["people"] == PHOTOS and len(truth["frames"]) == 50
    frames = list(open_frames(walkup))
    assert len(frames) == 50 and frames[0].image.shape == (480, 640, 3)
    assert frames[1].timestamp == pytest.approx(0.04)


def test_stream_api_frame_by_frame_matches_the_cli(walkup, tmp_path):
    r = CliRunner().invoke(cli, ["bestshot", str(walkup), "-o", str(tmp_path / "best"), "--threads", "1"])
    assert r.exit_code == 0, r.output
    cli_tracks = json.loads((tmp_path / "best" / "tracks.json").read_text())

    bs = BestShot(top_k=3, threads=1)
    events = []
    for frame in open_frames(walkup):
        events.extend(bs.update(frame.image, frame.timestamp))
    tracks = bs.finish()
    assert {t.id: [b.frame for b in t.best] for t in tracks} == _chosen(cli_tracks)
    assert len(tracks) >= 2 and all(len(t.best) == 3 and t.status == "ok" for t in tracks)
    assert [t.id for t in tracks] == list(range(1, len(tracks) + 1))  # numbered per BestShot, from 1
    for t in tracks:  # the kept crops are the track's best frames, best first, aligned 112x112
        qualities = sorted((s.quality for s in t.sightings), reverse=True)
        assert [b.quality for b in t.best] == pytest.approx(qualities[:3])
        assert t.best[0].crop.shape == (112, 112, 3) and t.best[0].crop.dtype == np.uint8
        assert [s.frame for s in t.sightings] == sorted(s.frame for s in t.sightings)
    kinds = [(e.kind, e.track) for e in events]
    assert sorted(k for k in kinds if k[0] == "new_track") == [("new_track", t.id) for t in tracks]
    assert all(("best_improved", t.id) in kinds for t in tracks)
    assert bs.seconds["detect"] > bs.seconds["score"] > 0


def test_bestshot_cli_without_torch_writes_every_output(walkup, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGEFIQ_QUIET": "1"}
    out = tmp_path / "best"
    r = subprocess.run([sys.executable, "-c", NO_TORCH, "bestshot", str(walkup), "-o", str(out), "--top-k", "2"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "tracks.json").read_text())
    n = len(data["tracks"])
    assert n >= 2 and f"50 frames, {data['summary']['faces']} faces, {n} tracks, {2 * n} crops kept" in r.stdout
    assert "| detect |" in r.stdout
    rows = list(csv.DictReader(open(out / "tracks.csv")))
    assert len(rows) == sum(t["frames"] for t in data["tracks"])
    assert sum(r["chosen"] == "1" for r in rows) == 2 * n and data["summary"]["kept_crops"] == 2 * n
    for t in data["tracks"]:
        for b in t["best"]:
            assert Image.open(out / b["crop"]).size == (112, 112)
        assert Image.open(out / t["sheet"]).size[0] > 112
    assert set(data["stages"]) == {"decode", "detect", "track", "align", "score", "total"}


def test_bestshot_gate_force_and_errors(walkup, tmp_path):
    out = str(tmp_path / "best")
    r = CliRunner().invoke(cli, ["bestshot", str(walkup), "-o", out, "--threshold", "99", "--min-track", "3"])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "best" / "tracks.json").read_text())
    assert data["tracks"] and all(t["status"] == "no usable frame" and not t["best"] for t in data["tracks"])
    assert "with no usable frame" in r.output and not list((tmp_path / "best").glob("[0-9]*/*.png"))
    r = CliRunner().invoke(cli, ["bestshot", str(walkup), "-o", out])
    assert isinstance(r.exception, UsageError) and "--force" in str(r.exception)
    r = CliRunner().invoke(cli, ["bestshot", str(walkup), "-o", out, "--force", "--reject-fraction", "0.1"])
    assert r.exit_code == 0, r.output
    assert "0-quantile" not in r.output and json.loads((tmp_path / "best" / "tracks.json").read_text())["settings"][
        "gate"].startswith("0.1-quantile of the model's stored distribution of clean validation photos")
    r = CliRunner().invoke(cli, ["bestshot", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "x")])
    assert isinstance(r.exception, UsageError) and "no such video file" in str(r.exception)
    (tmp_path / "text.mp4").write_text("not a video")
    r = CliRunner().invoke(cli, ["bestshot", str(tmp_path / "text.mp4"), "-o", str(tmp_path / "x")])
    assert isinstance(r.exception, DataError) and "cannot open the video" in str(r.exception)
    assert "\n" not in str(r.exception)
