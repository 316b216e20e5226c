"""Exact resume: a distill run killed (SIGKILL) mid-epoch and resumed ends with the same metrics and weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from distill_helpers import make_labelled_tree, recipe_dict  # noqa: E402

from edgefiq.distill.loop import TIMING_KEYS  # noqa: E402


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def _cmd(recipe: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgefiq", "distill", "--recipe", str(recipe), "-o", str(out), *extra]


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    make_labelled_tree(tmp_path, n_ids=12, per_id=6, size=48)
    rec = recipe_dict(tmp_path, input_size=[48, 48], student_options={"width": 16}, ema=0.9, save_every_steps=2,
                      optim={"epochs": 5, "batch_size": 4, "lr": 0.01, "warmup_epochs": 1},
                      losses={"plcc": 1.0, "rank": 0.5, "focal_ls": 0.5}, sampler="stratified")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(rec))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    full = tmp_path / "full"
    subprocess.run(_cmd(recipe, full), check=True, env=env, capture_output=True)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(_cmd(recipe, cut), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (cut / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_metrics(cut)) if (cut / "metrics.jsonl").exists() else 0
    assert done_before < 5, "the run finished before it could be killed; make it longer"

    resumed = subprocess.run(_cmd(recipe, cut, "--resume"), check=True, env=env, capture_output=True, text=True)
    assert "resuming at epoch" in resumed.stderr  # it continued from last.pt, not from scratch
    assert _metrics(cut) == _metrics(full)
    a = torch.load(full / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(cut / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
