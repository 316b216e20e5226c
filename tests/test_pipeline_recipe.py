"""RunRecipe loading: strict keys with suggestions, variables, raw overrides, cross-section checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefiq.errors import RecipeError
from edgefiq.pipeline.recipe import apply_raw_overrides, distill_config, load_recipe
from edgefiq.recipe import to_dict

MINIMAL = """
name: t
synthetic: {n_identities: 4, per_identity: 2}
distill:
  students: [{arch: tiny_cnn}]
  defaults: {input_size: [32, 32], optim: {epochs: 1}}
eval: {fr_arch: mobilefacenet}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_minimal_recipe_defaults(tmp_path: Path) -> None:
    cfg = load_recipe(write(tmp_path, MINIMAL))
    assert cfg.default_run_dir() == Path("runs/t")
    assert cfg.prune.rhos == (0.3,) and cfg.export.precisions == ("fp32", "int8")
    dc = distill_config(cfg.distill, cfg.distill.students[0], seed=cfg.seed)
    assert dc.student == "tiny_cnn" and dc.optim.epochs == 1 and tuple(dc.input_size) == (32, 32)
    assert to_dict(cfg)["distill"]["students"][0]["arch"] == "tiny_cnn"


@pytest.mark.parametrize("extra, message", [
    ("prune: {rho: [0.3]}", "did you mean 'rhos'"),
    ("teacher: {nme: severity}", "did you mean 'name'"),
    ("expor: {}", "did you mean 'export'"),
    ("export: {precisions: [fp64]}", "fp64"),
    ("prune: {rhos: [1.5]}", "not in \\(0, 1\\)"),
    ("bench: {threads: one}", "expected a list"),
    ("eval: {bootstrap: -5}", "eval.bootstrap: -5 resamples"),
])
def test_strict_errors(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, MINIMAL + extra + "\n"))


def test_distill_settings_validated_against_distill_config(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="did you mean 'epochs'"):
        load_recipe(write(tmp_path, MINIMAL), overrides=["distill.defaults.optim.epoch=3"])
    with pytest.raises(RecipeError, match="name the architecture in `arch:`"):
        load_recipe(write(tmp_path, MINIMAL), overrides=["distill.defaults.student=emo_1m"])


def test_unknown_student_suggests(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="did you mean 'emo_1m'"):
        load_recipe(write(tmp_path, MINIMAL), overrides=["distill.students.0.arch=emo_1n"])


def test_overrides_reach_lists_and_free_form_sections(tmp_path: Path) -> None:
    cfg = load_recipe(write(tmp_path, MINIMAL), overrides=[
        "distill.students.0.config.optim.lr=0.01", "export.targets=[onnx]", "prune.rhos=[0.2, 0.5]", "seed=3"])
    assert cfg.export.targets == ("onnx",) and cfg.prune.rhos == (0.2, 0.5) and cfg.seed == 3
    dc = distill_config(cfg.distill, cfg.distill.students[0], seed=cfg.seed)
    assert dc.optim.lr == 0.01 and dc.seed == 3  # the run seed reaches distillation
    with pytest.raises(RecipeError, match="not an index"):
        load_recipe(write(tmp_path, MINIMAL), overrides=["distill.students.4.arch=x"])
    with pytest.raises(RecipeError, match="key.sub=value"):
        load_recipe(write(tmp_path, MINIMAL), overrides=["seed"])


def test_apply_raw_overrides_does_not_mutate() -> None:
    raw = {"a": {"b": 1}, "l": [{"x": 1}]}
    out = apply_raw_overrides(raw, ["a.b=2", "l.0.x=5", "new.deep.key=yes"])
    assert raw == {"a": {"b": 1}, "l": [{"x": 1}]}
    assert out == {"a": {"b": 2}, "l": [{"x": 5}], "new": {"deep": {"key": True}}}


def test_variables_and_defaults(tmp_path: Path) -> None:
    text = MINIMAL.replace("synthetic: {n_identities: 4, per_identity: 2}",
                           "data: {images: '${IMGS:-/default/imgs}'}")
    assert load_recipe(write(tmp_path, text)).data.images == "/default/imgs"
    assert load_recipe(write(tmp_path, text), {"IMGS": "/mine"}).data.images == "/mine"


def test_cross_section_checks(tmp_path: Path) -> None:
    no_images = MINIMAL.replace("synthetic: {n_identities: 4, per_identity: 2}\n", "")
    with pytest.raises(RecipeError, match="data.images: required"):
        load_recipe(write(tmp_path, no_images))
    dup = MINIMAL.replace("students: [{arch: tiny_cnn}]", "students: [{arch: tiny_cnn}, {arch: tiny_cnn}]")
    with pytest.raises(RecipeError, match="duplicate student"):
        load_recipe(write(tmp_path, dup))
    named = MINIMAL.replace("students: [{arch: tiny_cnn}]",
                            "students: [{arch: tiny_cnn}, {arch: tiny_cnn, name: wide, config: {student_options: {width: 16}}}]")
    cfg = load_recipe(write(tmp_path, named))
    assert [s.label for s in cfg.distill.students] == ["tiny_cnn", "wide"]
    assert distill_config(cfg.distill, cfg.distill.students[1], seed=cfg.seed).student_options == {"width": 16}


@pytest.mark.parametrize("extra, message", [
    ("export: {options: {calibraton_method: auto}}", "unknown key 'export.options.calibraton_method'; did you mean"),
    ("export: {options: {calibration_method: autoo}}", "not offered by onnx, openvino, tflite; did you mean 'auto'"),
    ("export: {targets: [onnx], options: {calibration_method: nncf-asym}}", "'nncf-asym' is not offered by onnx"),
    ("prune: {options: {round: 8}}", "did you mean 'round_to'"),
    ("prune: {options: {scope: glob}}", "did you mean 'global'"),
    ("bench: {options: {min_run: 3}}", "did you mean 'min_runs'"),
    ("teacher: {name: csv, options: {cvs: labels.csv}}", "unknown key 'teacher.options.cvs' for teacher 'csv'; did you mean 'csv'"),
])
def test_typos_in_options_fail_at_load(tmp_path: Path, extra: str, message: str) -> None:
    """Every section is typed: a typo in an ``options`` mapping fails when the recipe loads, before any stage."""
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, MINIMAL + extra + "\n"))


def test_typed_options_keep_stage_keys(tmp_path: Path) -> None:
    """Stage keys hash only the options a recipe sets, as before they were typed (old run folders resume)."""
    from edgefiq.pipeline.recipe import option_kwargs, stage_config

    cfg = load_recipe(write(tmp_path, MINIMAL + "prune: {options: {round_to: 8}}\nbench: {options: {min_runs: 3}}\n"))
    assert stage_config(cfg.prune)["options"] == {"round_to": 8} and stage_config(cfg.export)["options"] == {}
    assert option_kwargs(cfg.bench.options) == {"warmup": 5, "min_runs": 3, "min_time_s": 1.0, "rounds": 1}
