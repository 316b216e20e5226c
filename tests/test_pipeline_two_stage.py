"""Per-student recipe fields: ``taught_by`` (an earlier student teaches a later one online) and ``prune_rhos``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefiq.errors import RecipeError
from edgefiq.pipeline.recipe import load_recipe

RECIPE = """
name: two-stage
threads: 1
synthetic: {n_identities: 4, per_identity: 3, seed: 1}
data:
  degrade: {kinds: [gaussian_blur, noise], severities: [0.5, 1.0], per_image: 1}
  split: {val_fraction: 0.5}
teacher: {name: severity}
distill:
  students:
    - {arch: tiny_cnn}
    - {arch: tiny_cnn, name: taught, taught_by: tiny_cnn, prune_rhos: [0.5],
       config: {student_options: {width: 4}, augment: {degrade_p: 0.5}}}
  defaults: {input_size: [32, 32], optim: {epochs: 1, batch_size: 8}, threads: 1}
prune: {methods: [structured], rhos: [0.3]}
"""


def test_taught_student_learns_from_the_earlier_one_online(tmp_path: Path) -> None:
    from edgefiq.pipeline.runner import Engine
    from edgefiq.pipeline.stages import build_stages

    (tmp_path / "r.yaml").write_text(RECIPE)
    stages = [s for s in build_stages(load_recipe(tmp_path / "r.yaml")) if s.name in ("data", "label", "distill", "prune")]
    reports = Engine(tmp_path / "run", stages).run()
    assert [r.status for r in reports] == ["ran", "ran", "ran", "ran"]
    state = json.loads((tmp_path / "run" / "state.json").read_text())["stages"]
    assert sorted(state["prune"]["outputs"]) == ["taught/structured-0.5", "tiny_cnn/structured-0.3"]
    resolved = (tmp_path / "run" / "distill" / "taught" / "recipe.yaml").read_text()
    assert "teacher: model" in resolved and "distill/tiny_cnn/best.pt" in resolved
    first = (tmp_path / "run" / "distill" / "tiny_cnn" / "recipe.yaml").read_text()
    assert "teacher: null" in first
    # both students train on the same images and validate on the run teacher's validation labels
    meta = {n: json.loads((tmp_path / "run" / "distill" / n / "model.json").read_text()) for n in ("tiny_cnn", "taught")}
    assert meta["taught"]["teacher"]["kind"] == "online" and meta["taught"]["teacher"]["val_labels"].endswith("val.csv")
    assert meta["taught"]["teacher"]["config"]["model"].endswith("best.pt")
    assert [meta["taught"][k] for k in ("train_images", "val_images")] == [meta["tiny_cnn"][k] for k in
                                                                           ("train_images", "val_images")]


def test_taught_by_must_name_an_earlier_student(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RECIPE.replace("taught_by: tiny_cnn", "taught_by: later"))
    with pytest.raises(RecipeError, match="taught_by: 'later' is not a student listed before 'taught'"):
        load_recipe(tmp_path / "r.yaml")
    (tmp_path / "r.yaml").write_text(RECIPE.replace("prune_rhos: [0.5]", "prune_rhos: [1.5]"))
    with pytest.raises(RecipeError, match=r"distill.students.1.prune_rhos: \[1.5\] must be in \(0, 1\)"):
        load_recipe(tmp_path / "r.yaml")


def test_optional_student_fields_leave_existing_stage_keys_alone(tmp_path: Path) -> None:
    """Run folders made before taught_by / prune_rhos existed keep their distill and prune keys."""
    from edgefiq.pipeline.stages import build_stages

    plain = RECIPE.replace(", taught_by: tiny_cnn, prune_rhos: [0.5]", "").replace("augment: {degrade_p: 0.5}", "")
    (tmp_path / "r.yaml").write_text(plain)
    stages = {s.name: s.config for s in build_stages(load_recipe(tmp_path / "r.yaml"))}
    assert all(set(s) == {"arch", "name", "config"} for s in stages["distill"]["distill"]["students"])
    assert "student_rhos" not in stages["prune"]
