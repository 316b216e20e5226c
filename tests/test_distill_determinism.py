"""Deterministic CPU distillation: one seed and thread count give bit-identical weights in two processes.

The quickstart's reproducibility (issue #20) rests on this: two fresh processes on one host run the same
tiny distillation (quantisation-aware for its last epoch, EMA on, like the quickstart's student) and
must end with the same ``last.pt`` and ``best.pt`` weights, bit for bit, and the same metrics. Separate
processes matter: an in-process rerun shares allocator, thread-pool and RNG state that a user's second
run does not. (Across hosts the floating-point result may differ; the quickstart's int8 margin absorbs
that, see results/quickstart/reproducibility.md.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from distill_helpers import make_labelled_tree, metrics_rows, recipe_dict  # noqa: E402


def _distill(recipe: Path, out: Path) -> None:
    # a stray OMP/MKL setting must not be what makes the runs agree: the recipe's thread count rules
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    p = subprocess.run([sys.executable, "-m", "edgefiq", "distill", "--recipe", str(recipe), "-o", str(out)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.parametrize("threads", [2, pytest.param(1, marks=pytest.mark.slow)])   # 2: the quickstart's
def test_tiny_distillation_is_bitwise_identical_across_processes(tmp_path: Path, threads: int) -> None:
    make_labelled_tree(tmp_path, n_ids=10, per_id=4, size=32)
    rec = recipe_dict(tmp_path, threads=threads, seed=3, ema=0.9, quant_aware=True, quant_aware_epochs=1,
                      optim={"epochs": 3, "batch_size": 8, "lr": 0.01, "warmup_epochs": 0.5})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(rec))
    a, b = tmp_path / "a", tmp_path / "b"
    _distill(recipe, a)
    _distill(recipe, b)

    for ckpt in ("last.pt", "best.pt"):
        wa, wb = _weights(a / ckpt), _weights(b / ckpt)
        assert wa.keys() == wb.keys()
        differing = [k for k in wa if wa[k].dtype != wb[k].dtype or wa[k].shape != wb[k].shape
                     or wa[k].numpy().tobytes() != wb[k].numpy().tobytes()]   # bitwise, NaN-safe
        assert not differing, f"{ckpt}: {len(differing)} tensors differ between two runs, e.g. {differing[:3]}"
    assert metrics_rows(a) == metrics_rows(b)
