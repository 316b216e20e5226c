"""The backend contract is complete: a backend defined in this file, registered here and nowhere
else, shows up in ``export --help``, passes (or fails) the parity gate, is benchmarked by
``edgefiq bench`` and appears in the run's report, with no edit anywhere in edgefiq.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import ParityError
from edgefiq.export.base import Backend, BackendBase, Exported, ExportOptions
from edgefiq.registry import BACKENDS


class ToyBackend(BackendBase):
    """TorchScript under another name and suffix, scored with torch: a backend in a dozen lines."""

    name = "toy"
    suffix = ".toy"
    precisions = ("fp32",)
    packages = ("torch",)
    calibration_methods = ("toy-minmax",)
    offset = 0.0   # a wrong backend adds this to every score

    def export(self, model: Any, example: Any, out: Path, options: ExportOptions) -> Exported:
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model.eval(), example, check_trace=False), str(out))
        return Exported(Path(out))

    def load(self, path: Path, threads: int | None = None) -> Any:
        mod = torch.jit.load(str(path)).eval()

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                y = mod(torch.from_numpy(np.ascontiguousarray(batch, np.float32))).reshape(len(batch), -1)[:, 0]
            return y.numpy() + self.offset

        return run


@pytest.fixture
def toy() -> Iterator[type[ToyBackend]]:
    BACKENDS.register("toy")(ToyBackend)
    try:
        yield ToyBackend
    finally:
        BACKENDS.unregister("toy")


def _tiny() -> torch.nn.Module:
    from edgefiq.registry import STUDENTS

    torch.manual_seed(0)
    return STUDENTS.get("tiny_cnn")()


def test_every_registered_backend_meets_the_protocol() -> None:
    for name in BACKENDS.names():
        b = BACKENDS.get(name)()
        assert isinstance(b, Backend), name
        assert isinstance(b.packages, tuple) and isinstance(b.calibration_methods, tuple), name
        assert set(b.auto_calibration) <= set(b.calibration_methods), name


def test_toy_backend_in_export_help(toy: type[ToyBackend]) -> None:
    from edgefiq.cli import cli

    out = CliRunner().invoke(cli, ["export", "--help"]).output
    assert "toy|all" in out.replace("\n", "").replace(" ", "") and "toy-minmax" in out


def test_toy_backend_through_the_parity_gate(toy: type[ToyBackend], tmp_path: Path) -> None:
    from edgefiq.export import export_model

    res = export_model(_tiny(), Preprocess(size=(32, 32)), "toy", tmp_path / "ok", arch="tiny")
    assert res.path.suffix == ".toy" and res.meta.parity["passed"] and res.meta.backend == "toy"
    toy.offset = 0.5
    try:
        with pytest.raises(ParityError, match="parity gate failed for toy fp32"):
            export_model(_tiny(), Preprocess(size=(32, 32)), "toy", tmp_path / "bad", arch="tiny")
    finally:
        toy.offset = 0.0
    assert not list((tmp_path / "bad").glob("*.toy"))


def test_toy_backend_in_bench(toy: type[ToyBackend], tmp_path: Path) -> None:
    from edgefiq.bench import benchmark
    from edgefiq.export import export_model

    art = export_model(_tiny(), Preprocess(size=(32, 32)), "toy", tmp_path, arch="tiny").path
    rows = benchmark([art], min_runs=3, min_time_s=0.0, warmup=1)
    assert rows[0]["backend"] == "toy" and rows[0]["p50_ms"] > 0
    from edgefiq.bench.devices import gpu_unavailable_reason

    assert gpu_unavailable_reason("toy") == "no GPU path for toy in edgefiq bench"


RUN = """
name: toy
synthetic: {n_identities: 4, per_identity: 2, seed: 1}
data:
  degrade: {kinds: [gaussian_blur], severities: [1.0], per_image: 1}
  split: {val_fraction: 0.5}
distill:
  students: [{arch: tiny_cnn}]
  defaults: {input_size: [32, 32], optim: {epochs: 1}}
export: {targets: [toy], precisions: [fp32]}
eval: {fr_arch: mobilefacenet}
"""


def test_toy_backend_in_the_run_report(toy: type[ToyBackend], tmp_path: Path) -> None:
    from edgefiq.cli import cli

    recipe = tmp_path / "toy.yaml"
    recipe.write_text(RUN)
    res = CliRunner().invoke(cli, ["run", str(recipe), "-o", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert "toy" in json.dumps(report) and "| toy" in (tmp_path / "run" / "report.md").read_text()
