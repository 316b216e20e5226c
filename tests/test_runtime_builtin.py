"""Built-in models: the builder on a real tiny run, the torch-free loader, ``score`` without MODEL, ``models``.

The fixture runs a tiny synthetic recipe (``edgefiq run``) and builds a built-in model from
it into a temporary root (``EDGEFIQ_BUILTIN_DIR``); nothing is written into the package.
The last test checks the models actually shipped in ``edgefiq/runtime/builtin`` (skipped,
with the reason, while none is there).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgefiq.cli import cli

from test_runtime import _torch_blocked_env, edgefiq_artifacts  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
NAME = "tiny-builtin"

# 40 identities x 3 photos x (clean + 1 degraded copy) = 240 images; half the identities are validation
TINY = """
name: tiny-builtin
synthetic: {n_identities: 40, per_identity: 3, seed: 2}
data:
  degrade: {kinds: [gaussian_blur, noise], severities: [0.5, 1.0], per_image: 1}
  split: {val_fraction: 0.5}
teacher: {name: severity}
distill:
  students: [{arch: tiny_cnn}]
  defaults: {input_size: [32, 32], optim: {epochs: 1, batch_size: 32}}
prune: {methods: []}
export: {targets: [TARGETS], precisions: [fp32], calibration_size: 16}
eval: {fr_arch: pixels}
bench: {options: {min_time_s: 0.05, min_runs: 3, warmup: 1}}
"""


def _targets() -> list[str]:
    from edgefiq.registry import BACKENDS

    import edgefiq.export  # noqa: F401

    return [t for t in ("onnx", "openvino", "tflite") if BACKENDS.get(t)().available()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished tiny run and a built-in model root built from it."""
    from edgefiq.pipeline.ship import build_builtin_model

    d = tmp_path_factory.mktemp("builtin")
    (d / "r.yaml").write_text(TINY.replace("TARGETS", ", ".join(_targets())))
    res = CliRunner().invoke(cli, ["run", str(d / "r.yaml"), "-o", str(d / "run")])
    assert res.exit_code == 0, res.output
    keys = tuple(f"{t}-fp32" for t in _targets())
    folder = build_builtin_model(d / "run", d / "root", NAME, keys=keys, min_srcc=-1.0)
    val, clean = d / "val", d / "clean"  # the validation images, and their clean ones: the stored distributions
    kinds = {r["path"]: r["kind"] for r in csv.DictReader(open(d / "run" / "data" / "images" / "index.csv"))}
    for line in list(csv.DictReader(open(d / "run" / "label" / "val.csv"))):
        for folder_ in [val] + ([clean] if kinds[line["path"]] == "clean" else []):
            (folder_ / line["path"]).parent.mkdir(parents=True, exist_ok=True)
            (folder_ / line["path"]).symlink_to((d / "run" / "data" / "images" / line["path"]).resolve())
    return {"run": d / "run", "root": d / "root", "folder": folder, "val": val, "clean": clean}


@pytest.fixture
def root(built: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGEFIQ_BUILTIN_DIR", str(built["root"]))
    return built["root"]


def test_builder_writes_artifacts_sidecars_and_card(built: dict[str, Path], root: Path) -> None:
    folder = built["folder"]
    card = json.loads((folder / "card.json").read_text())
    assert (root / "DEFAULT").read_text().strip() == NAME and card["name"] == NAME and card["model"] == "tiny_cnn"
    assert [a["key"] for a in card["artifacts"]] == [f"{t}-fp32" for t in _targets()]
    for a in card["artifacts"]:
        assert all((folder / f).is_file() for f in a["files"]) and a["p50_ms"] > 0
        side = json.loads((folder / (a["file"] + ".json")).read_text())
        dist = side["extra"]["score_distribution"]
        assert side["extra"]["builtin"] == NAME and dist["n"] == card["validation"]["n_images"]
        assert dist["quantiles"] == sorted(dist["quantiles"])
    assert card["score"]["distribution"]["n"] > 100 and "higher = better" in card["score"]["scale"]
    assert card["thresholds"] and {r["fmr"] for r in card["thresholds"]} == {0.001, 0.0001}
    fams = card["by_degradation"]   # the run's per-family table, for the teacher, random and what ships
    assert [f["family"] for f in fams][:1] == ["clean"] and len(fams) >= 2
    assert set(fams[0]["pauc"]) == {"teacher", "random", *(f"{t}-fp32" for t in _targets())}
    assert set(fams[0]["srcc"]) == set(fams[0]["pauc"]) and fams[0]["srcc"]["teacher"] == 1.0
    md = (folder / "card.md").read_text()
    for words in ("## Training", "## Validation", "## Intended use", "## Limits", "## Licences", "ArcFace 5-point",
                  "edc_fmr0.001.png", "## Thresholds", "SYNTHETIC", "## Quality by degradation family",
                  "SRCC vs teacher"):
        assert words in md, words
    assert (folder / "edc_fmr0.001.png").is_file() and not list(root.glob(".*.tmp"))


def test_builder_refuses_a_weak_or_missing_model(built: dict[str, Path], tmp_path: Path) -> None:
    from edgefiq.errors import DataError, UsageError
    from edgefiq.pipeline.ship import build_builtin_model

    with pytest.raises(DataError, match="SRCC >= 0.99"):
        build_builtin_model(built["run"], tmp_path, "x", keys=("onnx-fp32",), min_srcc=0.99)
    with pytest.raises(UsageError, match="no artifact onnx-int8"):
        build_builtin_model(built["run"], tmp_path, "x", model="tiny_cnn", keys=("onnx-int8",))
    with pytest.raises(DataError, match="speed-up over the teacher 0.0x < 20x"):  # severity has no network to time
        build_builtin_model(built["run"], tmp_path, "x", keys=("onnx-fp32",), min_srcc=-1, min_speedup=20)
    with pytest.raises(DataError, match="MB of artifacts"):
        build_builtin_model(built["run"], tmp_path, "x", keys=("onnx-fp32",), min_srcc=-1, max_mb=1e-6)
    assert not (tmp_path / "x").exists()


def test_reference_scores_match_per_runtime(root: Path) -> None:
    from edgefiq.runtime.builtin_models import reference_mismatches

    assert reference_mismatches(NAME) == {}


def test_load_model_default_and_specs(built: dict[str, Path], root: Path) -> None:
    import edgefiq
    from edgefiq.errors import UsageError

    qm = edgefiq.load_model()
    assert qm.path.parent == built["folder"] and qm.meta["extra"]["builtin"] == NAME
    for key in (f"{t}-fp32" for t in _targets()):
        assert edgefiq.load_model(f"builtin:{NAME}/{key}").backend == key.split("-")[0]
    assert edgefiq.load_model("builtin").path == qm.path
    with pytest.raises(UsageError, match="did you mean"):
        edgefiq.load_model("builtin:tiny-bultin")
    with pytest.raises(UsageError, match="no artifact"):
        edgefiq.load_model(f"builtin:{NAME}/onnx-int4")


def _decisions(path: Path) -> list[str]:
    return [r["decision"] for r in csv.DictReader(open(path))]


def test_score_without_model_and_reject_fraction(built: dict[str, Path], root: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["score", str(built["val"]), "-o", str(tmp_path / "q.csv"),
                                   "--reject-fraction", "0.1", "--distribution", "all"])
    assert res.exit_code == 0, res.output
    dec = _decisions(tmp_path / "q.csv")
    assert len(dec) > 100 and abs(dec.count("reject") / len(dec) - 0.1) <= 0.01
    # the default reads the clean photos' distribution: 10 % of the clean validation photos
    res = CliRunner().invoke(cli, ["score", str(built["clean"]), "-o", str(tmp_path / "c.csv"),
                                   "--reject-fraction", "0.1", "--scale", "0-100"])
    assert res.exit_code == 0, res.output
    dec = _decisions(tmp_path / "c.csv")
    assert len(dec) > 30 and abs(dec.count("reject") / len(dec) - 0.1) <= 0.03
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    order = sorted(rows, key=lambda r: float(r["quality"]))
    scaled = [int(r["quality_0_100"]) for r in order]
    assert scaled == sorted(scaled) and 0 <= scaled[0] and scaled[-1] <= 100 and scaled[-1] > scaled[0]
    # a threshold, and a reference CSV instead of the stored distribution
    res = CliRunner().invoke(cli, ["score", str(built["val"]), "-o", str(tmp_path / "t.csv"), "--model",
                                   f"builtin:{NAME}", "--threshold", "1e9"])
    assert res.exit_code == 0 and set(_decisions(tmp_path / "t.csv")) == {"reject"}
    res = CliRunner().invoke(cli, ["score", str(built["val"]), "-o", str(tmp_path / "r.csv"), "--reject-fraction",
                                   "0.2", "--reference", str(tmp_path / "q.csv")])
    dec = _decisions(tmp_path / "r.csv")
    assert res.exit_code == 0 and abs(dec.count("reject") / len(dec) - 0.2) <= 0.01
    bad = CliRunner().invoke(cli, ["score", str(built["val"]), "-o", str(tmp_path / "x.csv"), "--threshold", "0",
                                   "--reject-fraction", "0.1"])
    assert bad.exit_code != 0 and "not both" in str(bad.exception or bad.output)


def test_sidecar_and_card_store_clean_and_all_distributions(built: dict[str, Path], root: Path) -> None:
    from edgefiq.runtime.gate import gate_threshold

    card = json.loads((built["folder"] / "card.json").read_text())
    clean, every = card["score"]["distribution_clean"], card["score"]["distribution"]
    assert clean["n"] < every["n"]   # the clean validation photos are a subset
    assert card["thresholds"] and all(0 <= r["clean_rejected"] <= 1 for r in card["thresholds"])
    md = (built["folder"] / "card.md").read_text()
    assert "| quantile | all images | clean photos |" in md and "clean photos rejected" in md
    import edgefiq

    meta = edgefiq.load_model(f"builtin:{NAME}").meta
    t_clean, how = gate_threshold(meta, reject_fraction=0.1)
    t_all, how_all = gate_threshold(meta, reject_fraction=0.1, population="all")
    assert t_clean != t_all and "clean validation photos" in how and "all validation images" in how_all
    del meta["extra"]["score_distribution_clean"]
    assert "stores no clean-photo distribution" in gate_threshold(meta, reject_fraction=0.1)[1]


def test_scale_needs_a_stored_distribution(edgefiq_artifacts, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["score", str(edgefiq_artifacts["onnx"]), str(edgefiq_artifacts["images"]),
                                   "-o", str(tmp_path / "q.csv"), "--scale", "0-100"])
    assert res.exit_code != 0 and "--scale 0-100" in str(res.exception) and not (tmp_path / "q.csv").exists()


def test_models_verb_and_torch_free_scoring(built: dict[str, Path], root: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["models", "--json"])
    assert res.exit_code == 0, res.output
    cards = json.loads(res.output)
    assert [c["name"] for c in cards] == [NAME] and cards[0]["default"] is True
    assert "## Limits" in CliRunner().invoke(cli, ["models", NAME]).output
    assert "Example:" in CliRunner().invoke(cli, ["models", "--help"]).output
    env = _torch_blocked_env(tmp_path)
    env["EDGEFIQ_BUILTIN_DIR"] = str(root)
    r = subprocess.run([sys.executable, "-m", "edgefiq", "score", str(built["val"]), "-o", str(tmp_path / "q.csv")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = {row["path"]: float(row["quality"]) for row in csv.DictReader(open(tmp_path / "q.csv"))}
    assert len(got) > 100 and np.isfinite(list(got.values())).all()
    r = subprocess.run([sys.executable, "-m", "edgefiq", "models"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and NAME in r.stdout


def test_no_builtin_installed_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setenv("EDGEFIQ_BUILTIN_DIR", str(tmp_path / "empty"))
    Image.fromarray(np.zeros((112, 112, 3), np.uint8)).save(tmp_path / "face.png")
    r = subprocess.run([sys.executable, "-m", "edgefiq", "score", str(tmp_path), "-o", str(tmp_path / "q.csv")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 1 and "no built-in quality model is installed" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "edgefiq", "score", "student.onnx", "-o", str(tmp_path / "q.csv")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and "looks like a model: give the IMAGES folder" in r.stderr


def test_shipped_builtin_models_score_as_recorded() -> None:
    """The models in the package: every artifact re-scores the generated images as when it was built."""
    from edgefiq.runtime.builtin_models import builtin_names, builtin_root, reference_mismatches

    import os

    if os.environ.get("EDGEFIQ_BUILTIN_DIR"):
        pytest.skip("EDGEFIQ_BUILTIN_DIR points elsewhere")
    if not builtin_names():
        pytest.skip(f"no built-in model shipped yet in {builtin_root()} (tools/build_builtin_model.py writes it)")
    for name in builtin_names():
        bad = {k: v for k, v in reference_mismatches(name).items() if v != "runtime not installed"}
        assert bad == {}, f"{name}: {bad}"


def test_shipped_cards_python_line_runs(tmp_path: Path) -> None:
    """Each shipped card's `python -c` line runs as printed (it used to raise NameError)."""
    import re
    import shlex

    from PIL import Image

    from edgefiq.runtime.builtin_models import builtin_names, builtin_root

    names = builtin_names()
    if not names:
        pytest.skip(f"no built-in model shipped yet in {builtin_root()}")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(
        tmp_path / "face.jpg")
    for name in names:
        line = next(ln for ln in (builtin_root() / name / "card.md").read_text().splitlines()
                    if ln.startswith("python -c"))
        code = shlex.split(re.sub(r"\s+#.*$", "", line))[2]
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.startswith("["), (name, r.stderr)


@pytest.mark.slow
@pytest.mark.shared_data
def test_shipped_default_scores_lfw_without_torch(lfw_aligned: Path, tmp_path: Path) -> None:
    """Issue 18's must-show: `edgefiq score ../shared/data/lfw-dev/aligned112 -o q.csv`, no model, torch blocked."""
    import os

    from edgefiq.runtime.builtin_models import builtin_names

    lfw = lfw_aligned
    if os.environ.get("EDGEFIQ_BUILTIN_DIR") or not builtin_names():
        pytest.skip("no built-in model shipped in the package")
    env = _torch_blocked_env(tmp_path)
    r = subprocess.run([sys.executable, "-m", "edgefiq", "score", str(lfw), "-o", str(tmp_path / "q.csv")],
                       env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "aligned face crops" not in r.stderr  # aligned 112x112 crops are the input, whatever the model's size
    rows = list(csv.DictReader(open(tmp_path / "q.csv")))
    assert len(rows) == sum(1 for p in lfw.rglob("*.jpg")) and np.isfinite([float(x["quality"]) for x in rows]).all()
