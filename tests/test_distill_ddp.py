"""torchrun DDP on CPU (gloo): 2 processes train one student; rank 0 writes the run folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from distill_helpers import make_labelled_tree, recipe_dict  # noqa: E402


@pytest.mark.slow
def test_torchrun_two_processes_cpu(tmp_path):
    make_labelled_tree(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tmp_path, optim={"epochs": 2, "batch_size": 8, "lr": 0.01})))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "edgefiq", "distill",
                        "--recipe", str(recipe), "-o", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]  # written once (rank 0), not twice
    assert all(-1 <= r["val_srcc"] <= 1 for r in rows)
    assert (out / "best.pt").is_file() and (out / "model.json").is_file()
