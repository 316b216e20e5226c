"""The shipped recipes load strictly, and the VQualA recipe's student is within the challenge limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefiq.errors import RecipeError
from edgefiq.pipeline.recipe import distill_config, load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
VARS = {"IMAGES": "/data/faces", "LABELS": "/data/mos.csv"}


def test_the_three_recipes_exist() -> None:
    assert {p.stem for p in RECIPES} >= {"quickstart", "lfw-mobilefacenet", "vquala-efficient"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_and_every_student_config_validates(path: Path) -> None:
    cfg = load_recipe(path, VARS)
    assert cfg.name == path.stem
    for s in cfg.distill.students:
        dc = distill_config(cfg.distill, s, seed=cfg.seed)
        assert getattr(dc, "student", s.arch) == s.arch


def test_quickstart_is_synthetic_and_covers_every_target() -> None:
    cfg = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    assert cfg.synthetic is not None
    assert set(cfg.export.targets) == {"onnx", "openvino", "tflite"}
    assert set(cfg.export.precisions) == {"fp32", "int8"}
    assert [s.arch for s in cfg.distill.students] == ["mobilenetv3_small_100"]
    assert cfg.prune.methods == ("structured",) and cfg.prune.rhos == (0.3,)


def test_lfw_recipe_paths_are_variables() -> None:
    cfg = load_recipe(ROOT / "recipes" / "lfw-mobilefacenet.yaml", {"LFW": "/x/lfw", "FR_MODEL": "/m/mfn.pt"})
    assert cfg.data.images == "/x/lfw/aligned112" and cfg.data.split.pairs == "/x/lfw/pairs.txt"
    assert cfg.data.split.val_folds == (6, 7)
    assert cfg.teacher.name == "prefiqs" and cfg.eval.fr_model == "/m/mfn.pt"
    assert {s.arch for s in cfg.distill.students} == {"face_trunk", "mobilenetv3_small_100"}
    assert cfg.prune.methods == ("structured",) and cfg.prune.finetune_max_steps == 160
    assert set(cfg.export.precisions) == {"fp32", "fp16", "int8"}


def test_lfw_edge_recipe_differs_from_the_lfw_recipe_only_in_its_student_and_pruning() -> None:
    from edgefiq.recipe import to_dict

    v = {"LFW": "/x/lfw", "FR_MODEL": "/m/mfn.pt"}
    main, edge = (to_dict(load_recipe(ROOT / "recipes" / f"{n}.yaml", v)) for n in ("lfw-mobilefacenet", "lfw-edge"))
    for section in ("data", "teacher", "export", "eval", "bench"):
        assert edge[section] == main[section], section   # same split, labels and evaluation: comparable runs
    (student,) = edge["distill"]["students"]
    assert student["arch"] == "face_trunk" and student["config"]["input_size"] == [64, 64]
    assert student["config"]["weights"] == "face" and edge["prune"]["rhos"] == [0.5]


def test_vquala_needs_its_variables() -> None:
    with pytest.raises(RecipeError, match=r"\$\{IMAGES\} is not set"):
        load_recipe(ROOT / "recipes" / "vquala-efficient.yaml", {"LABELS": "x.csv"})


def test_vquala_student_within_challenge_limits() -> None:
    from edgefiq.models.students import model_profile
    from edgefiq.registry import STUDENTS

    cfg = load_recipe(ROOT / "recipes" / "vquala-efficient.yaml", VARS)
    assert cfg.teacher.options["csv"] == "/data/mos.csv"
    for s in cfg.distill.students:
        dc = distill_config(cfg.distill, s, seed=cfg.seed)
        assert set(dc.losses) == {"plcc", "rank", "focal_ls"}
        prof = model_profile(STUDENTS.get(s.arch)(**dict(dc.student_options)), tuple(dc.input_size))
        assert prof["params"] <= 5_000_000
        assert 2 * prof["macs"] <= 0.5e9  # GFLOPs counted as 2 x MACs (the stricter convention)
