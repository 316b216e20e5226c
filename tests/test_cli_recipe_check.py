"""Issue 20 finding 8: `edgefiq recipe check` lists every error (variables, keys, values, paths) in --set syntax."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from edgefiq.cli import cli

ROOT = Path(__file__).resolve().parents[1]

BAD = """\
name: bad
data:
  images: ${IMGS}/x
  labels: ${MISSING}
  split: {val_fractoin: 0.2}
distill:
  students:
    - arch: mobilenetv3_small_100
      epoch: 3
  defaults:
    optim: {epochs: many}
export:
  targets: [onnx, tflte]
"""


def _check(*args: str):
    return CliRunner().invoke(cli, ["recipe", "check", *args])


def test_recipe_check_lists_every_error_in_set_syntax(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(BAD)
    res = _check(str(recipe), "--var", "IMGS=/nonexistent", "--var", "IMSG=typo")
    assert type(res.exception).__name__ == "RecipeError", res.output   # exit 2 through main()
    out = res.stderr
    for expected in ("${MISSING}: variable is not set",
                     "--var IMSG: the recipe has no ${IMSG}; did you mean 'IMGS'?",
                     "unknown key 'data.split.val_fractoin'; did you mean 'val_fraction'?",
                     "unknown key 'distill.students.0.epoch'",
                     "distill.defaults.optim.epochs: expected an integer",
                     "export.targets: unknown backend 'tflte'; did you mean 'tflite'?",
                     "data.images: /nonexistent/x does not exist"):
        assert expected in out, f"missing {expected!r} in:\n{out}"
    assert "Traceback" not in out


def test_recipe_check_misspelt_var_and_nonexistent_path() -> None:
    lfw = str(ROOT / "recipes" / "lfw-mobilefacenet.yaml")
    res = _check(lfw, "--var", "LFE=/data")
    assert res.exception is not None and "did you mean 'LFW'?" in res.stderr
    res = _check(lfw, "--var", "LFW=/nonexistent", "--set", "distill.defaults.optim.epochz=2")
    assert type(res.exception).__name__ == "RecipeError"
    assert "data.images: /nonexistent/aligned112 does not exist" in res.stderr
    assert "unknown key 'distill.defaults.optim.epochz'; did you mean 'epochs'?" in res.stderr


def test_recipe_check_ok() -> None:
    res = _check(str(ROOT / "recipes" / "quickstart.yaml"))
    assert res.exit_code == 0, res.output
    assert "name: quickstart" not in res.stdout and res.stdout.strip().endswith(": ok")   # one line
    res = _check(str(ROOT / "recipes" / "quickstart.yaml"), "--show")
    assert res.exit_code == 0 and "name: quickstart" in res.stdout


def test_recipe_check_refuses_what_label_refuses_and_names_the_var_of_a_missing_path(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsynthetic: {n_identities: 4, per_identity: 2}\n"
                      "teacher:\n  name: prefiqs\n  options: {rho: 1.4, fr_model: '${FR_MODEL:-/no/such/fr.pt}'}\n"
                      "distill:\n  students: [{arch: tiny_cnn}]\n")
    res = _check(str(recipe))
    assert "teacher.options: rho must be in (0, 1), got 1.4" in res.stderr      # as `edgefiq label --rho 1.4`
    recipe.write_text(recipe.read_text().replace("rho: 1.4", "rho: 0.4"))
    res = _check(str(recipe))
    assert ("teacher.options.fr_model: /no/such/fr.pt does not exist (set by ${FR_MODEL}: --var FR_MODEL=...)"
            in res.stderr)
