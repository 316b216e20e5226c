"""The README's device install: a fresh virtual environment per Python the README names, the one
install command, the built-in model scoring a folder on onnxruntime, and no torch there."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.11", "3.12", "3.13")   # README, "Python versions and installing on a device"


def _interpreter(version: str) -> str | None:
    """A working CPython ``version`` on this machine: under pyenv, or on PATH (a pyenv shim of a version
    that is not selected exists on PATH but does not run)."""
    candidates = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    candidates += [c for c in [shutil.which(f"python{version}")] if c]
    for c in candidates:
        if subprocess.run([c, "-c", "pass"], capture_output=True).returncode == 0:
            return c
    return None


def _readme_install_command() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python versions and installing on a device"):]
    return re.search(r"^(pip install \./edgefiq)\s", section, re.M).group(1)   # type: ignore[union-attr]


def _clone(dst: Path) -> Path:
    """What a clone holds for the install: the package, its metadata and the files they name."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dst / name)
    shutil.copytree(ROOT / "edgefiq", dst / "edgefiq", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


def test_readme_names_the_pythons_tested_here() -> None:
    text = (ROOT / "README.md").read_text()
    assert "Python 3.11, 3.12 and 3.13" in text and _readme_install_command() == "pip install ./edgefiq"


@pytest.mark.slow
@pytest.mark.parametrize("version", PYTHONS)
def test_fresh_venv_installs_the_runtime_and_scores_without_torch(version: str, tmp_path: Path) -> None:
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"Python {version} is not installed here")
    work = tmp_path / "device"
    (work / "edgefiq").mkdir(parents=True)
    _clone(work / "edgefiq")
    venv = work / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    install = subprocess.run(_readme_install_command() + " -q", shell=True, cwd=work, env=env,
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    check = subprocess.run([str(venv / "bin" / "pip"), "check"], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout   # the metadata describes exactly what is installed
    no_torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], env=env,
                              capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    faces = work / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(faces / f"f{i}.png")
    score = subprocess.run([str(venv / "bin" / "edgefiq"), "score", str(faces), "-o", str(work / "q.csv")],
                           cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert score.returncode == 0, score.stdout + score.stderr
    rows = (work / "q.csv").read_text().splitlines()
    assert rows[0].startswith("path,quality") and len(rows) == 5
