"""Distillation: config, splits, sampler, schedule, a tiny end-to-end run, outputs and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from distill_helpers import make_labelled_tree, recipe_dict  # noqa: E402

from edgefiq.distill import DistillConfig, distill  # noqa: E402
from edgefiq.distill.config import OptimConfig  # noqa: E402
from edgefiq.distill.data import augment_batch, clean_index, identity_split  # noqa: E402
from edgefiq.distill.optim import lr_at  # noqa: E402
from edgefiq.distill.sampler import stratified_order, with_clean_share  # noqa: E402
from edgefiq.errors import RecipeError, UsageError  # noqa: E402
from edgefiq.recipe import from_mapping  # noqa: E402


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    make_labelled_tree(root)
    return root


def test_config_is_strict():
    with pytest.raises(RecipeError, match="did you mean 'epochs'"):
        from_mapping(DistillConfig, {"optim": {"epoch": 3}})
    with pytest.raises(RecipeError, match="schedule"):
        from_mapping(DistillConfig, {"optim": {"schedule": "linear"}})
    cfg = from_mapping(DistillConfig, {"losses": {"plcc": 1.0, "wing": 0.5}, "loss_options": {"wing": {"w": 0.2}}})
    assert cfg.losses == {"plcc": 1.0, "wing": 0.5}


def test_identity_split_is_disjoint_and_seeded():
    rel = [f"id{i}/x{j}.jpg" for i in range(20) for j in range(3)]
    tr, va = identity_split(rel, val_fraction=0.25, seed=1)
    ids_tr = {rel[i].split("/")[0] for i in tr}
    ids_va = {rel[i].split("/")[0] for i in va}
    assert not ids_tr & ids_va and len(ids_va) == 5 and len(tr) + len(va) == 60
    assert (tr, va) == identity_split(rel, val_fraction=0.25, seed=1)
    tr2, va2 = identity_split(rel, val_identities=["id3"])
    assert [rel[i] for i in va2] == ["id3/x0.jpg", "id3/x1.jpg", "id3/x2.jpg"]
    with pytest.raises(UsageError, match="identity tree"):
        identity_split(["a.jpg", "b.jpg"])


def test_stratified_sampler_is_uniform_over_bins():
    scores = np.r_[np.zeros(900), np.ones(100)]  # 90% in the low bin
    order = stratified_order(scores, epoch=0, seed=0, bins=2, num_samples=4000)
    share_high = (scores[order] == 1).mean()
    assert 0.45 < share_high < 0.55
    assert np.array_equal(order, stratified_order(scores, epoch=0, seed=0, bins=2, num_samples=4000))
    assert not np.array_equal(order, stratified_order(scores, epoch=1, seed=0, bins=2, num_samples=4000))


def test_clean_share_gives_clean_images_that_share_of_the_epoch():
    clean = np.zeros(1000, bool)
    clean[:40] = True   # 4 % clean
    order = np.random.default_rng(0).permutation(1000)
    mixed = with_clean_share(order, clean, 0.3, epoch=0, seed=0)
    assert len(mixed) == 1000 and 0.30 < clean[mixed].mean() < 0.37   # 0.3 drawn + the 4 % already there
    changed = mixed != order
    assert 0.25 < changed.mean() < 0.32   # about 30% of the positions are redrawn, the rest keep the sampler's order
    drawn = mixed[changed]
    assert clean[drawn].all()   # and only clean images go there
    assert np.bincount(drawn, minlength=40)[:40].max() - np.bincount(drawn, minlength=40)[:40].min() <= 1  # evenly
    assert np.array_equal(mixed, with_clean_share(order, clean, 0.3, epoch=0, seed=0))
    assert not np.array_equal(mixed, with_clean_share(order, clean, 0.3, epoch=1, seed=0))
    assert np.array_equal(with_clean_share(order, clean, 0.0, epoch=0, seed=0), order)
    assert np.array_equal(with_clean_share(order, np.zeros(1000, bool), 0.3, epoch=0, seed=0), order)


def test_lr_schedules():
    c = OptimConfig(lr=1.0, epochs=4, warmup_epochs=1, min_lr=0.0, schedule="cosine")
    assert lr_at(c, step=0, steps_per_epoch=10) == pytest.approx(0.1)
    assert lr_at(c, step=9, steps_per_epoch=10) == pytest.approx(1.0)
    assert lr_at(c, step=25, steps_per_epoch=10) == pytest.approx(0.5)  # half-way through the cosine
    s = OptimConfig(lr=1.0, epochs=6, warmup_epochs=0, schedule="step", step_epochs=2, gamma=0.1)
    assert lr_at(s, step=45, steps_per_epoch=10) == pytest.approx(0.01)
    p = OptimConfig(lr=1.0, warmup_epochs=0, schedule="plateau", min_lr=0.05)
    assert lr_at(p, step=3, steps_per_epoch=10, plateau_scale=0.01) == pytest.approx(0.05)


def test_augment_and_pairs():
    x = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    flipped = augment_batch(x, np.random.default_rng(0), hflip=1.0, shift=0)
    assert np.array_equal(flipped, x[:, :, ::-1])
    shifted = augment_batch(x, np.random.default_rng(0), hflip=0.0, shift=2)
    assert shifted.shape == x.shape
    assert clean_index(["a", "a#d", "b"], ["a", "a", "b"]).tolist() == [-1, 0, -1]


def test_distill_end_to_end(tree, tmp_path):
    from edgefiq.models.checkpoint import load_checkpoint

    cfg = from_mapping(DistillConfig, recipe_dict(tree, ema=0.9, sampler="stratified",
                                                   optim={"epochs": 3, "batch_size": 8, "lr": 0.01}))
    res = distill(cfg, tmp_path / "run")
    out = tmp_path / "run"
    for f in ("best.pt", "last.pt", "metrics.jsonl", "recipe.yaml", "model.json"):
        assert (out / f).is_file(), f
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert {"val_srcc", "val_plcc", "val_krcc", "train_loss", "train_plcc", "train_rank"} <= set(rows[0])
    model_json = json.loads((out / "model.json").read_text())
    assert model_json["arch"] == "tiny_cnn" and model_json["params"] > 0 and model_json["macs"] > 0
    assert model_json["preprocess"]["size"] == [32, 32]
    assert res.metrics["val_srcc"] == max(r["val_srcc"] for r in rows)
    assert res.metrics["val_srcc"] > 0.5  # contrast is learnable in 3 epochs
    ck = load_checkpoint(out / "best.pt")
    assert ck.preprocess.size == (32, 32) and ck.meta["metrics"]["val_srcc"] == res.metrics["val_srcc"]
    with torch.no_grad():
        assert ck.model(torch.zeros(2, 3, 32, 32)).shape == (2,)
    with pytest.raises(UsageError, match="--resume"):
        distill(cfg, out)


def test_distill_rejects_bad_setups(tree, tmp_path):
    with pytest.raises(UsageError, match="exactly one label source"):
        distill(from_mapping(DistillConfig, recipe_dict(tree, data={"images": str(tree / "imgs")})), tmp_path / "a")
    bad = recipe_dict(tree, augment={"degrade_p": 0.5})
    with pytest.raises(UsageError, match="online teacher"):
        distill(from_mapping(DistillConfig, bad), tmp_path / "b")
    with pytest.raises(UsageError, match="did you mean"):
        distill(from_mapping(DistillConfig, recipe_dict(tree, losses={"plc": 1.0})), tmp_path / "c")


def test_cli_help_lists_students_and_losses():
    from click.testing import CliRunner

    from edgefiq.cli import cli
    from edgefiq.registry import LOSSES, STUDENTS

    res = CliRunner().invoke(cli, ["distill", "--help"])
    assert res.exit_code == 0
    for name in STUDENTS.names() + LOSSES.names():
        assert name in res.output
    assert "Example:" in res.output


def test_cli_runs_and_maps_errors(tree, tmp_path, capsys):
    from click.testing import CliRunner

    from edgefiq.cli import cli, main

    args = ["distill", "--images", str(tree / "imgs"), "--labels", str(tree / "labels.csv"), "--student", "tiny_cnn",
            "--epochs", "1", "--batch-size", "8", "--set", "input_size=[32,32]", "--threads", "1",
            "--loss", "plcc=1", "--loss", "mse=0.5", "--set", "optim.name=sgd", "--set", "optim.schedule=step",
            "-o", str(tmp_path / "cli")]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "val_srcc" in res.output
    import yaml

    rec = yaml.safe_load((tmp_path / "cli" / "recipe.yaml").read_text())
    assert rec["losses"] == {"plcc": 1.0, "mse": 0.5} and rec["input_size"] == [32, 32]
    assert rec["optim"]["name"] == "sgd" and rec["optim"]["schedule"] == "step"
    # the console entry point maps library errors to one line + exit code (subprocess runs: test_distill_resume)
    with pytest.raises(SystemExit) as exc:
        main(["distill", "--images", str(tree / "imgs"), "--labels", str(tree / "labels.csv"), "--student",
              "tiny_cn", "-o", str(tmp_path / "x")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "did you mean 'tiny_cnn'" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["distill", "--images", str(tree / "imgs"), "--labels", str(tree / "missing.csv"), "-o", str(tmp_path / "y")])
    assert exc.value.code == 1 and "label CSV not found" in capsys.readouterr().err


class _Contrast(torch.nn.Module):
    """A stand-in teacher *model* (not the component under test): quality = pixel contrast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.std(dim=(1, 2, 3))


def test_online_teacher_with_degraded_pairs(tree, tmp_path):
    """Self-training: a registered teacher scores every degraded view on the fly; margin_rank sees pairs."""
    ts = tmp_path / "contrast.pt"
    torch.jit.script(_Contrast()).save(str(ts))
    rec = recipe_dict(tree, data={"images": str(tree / "imgs"), "teacher": "model",
                                  "teacher_options": {"model": str(ts)}, "val_fraction": 0.3},
                      augment={"degrade_pairs": True, "degrade_kinds": ["noise", "gaussian_blur"]},
                      losses={"plcc": 1.0, "margin_rank": 1.0}, loss_options={"margin_rank": {"lam": 0.1}},
                      optim={"epochs": 2, "batch_size": 8, "lr": 0.01})
    res = distill(from_mapping(DistillConfig, rec), tmp_path / "online")
    rows = [json.loads(x) for x in (tmp_path / "online" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["train_margin_rank"] > 0  # pairs were formed and ranked
    assert np.isfinite(res.metrics["val_srcc"])
    model_json = json.loads((tmp_path / "online" / "model.json").read_text())
    assert model_json["teacher"]["kind"] == "online" and model_json["teacher"]["name"] == "model"


def test_early_stopping_on_srcc(tree, tmp_path):
    rec = recipe_dict(tree, early_stop=1, optim={"epochs": 6, "batch_size": 8, "lr": 1e-9, "warmup_epochs": 0,
                                                 "schedule": "plateau", "patience": 1})
    res = distill(from_mapping(DistillConfig, rec), tmp_path / "es")
    srcc = [h["val_srcc"] for h in res.history]
    # the run stops right after the first epoch that does not beat the best SRCC so far
    first_bad = next((e for e in range(1, len(srcc)) if srcc[e] <= max(srcc[:e])), None)
    stopped = json.loads((tmp_path / "es" / "model.json").read_text())["early_stopped"]
    if first_bad is None:
        assert len(srcc) == 6 and not stopped
    else:
        assert len(srcc) == first_bad + 1 and stopped
    assert res.metrics["val_srcc"] == max(srcc)


def test_cli_takes_a_pipeline_recipe(tree, tmp_path):
    """``distill --recipe`` on a pipeline recipe (recipes/quickstart.yaml) trains its student with its settings."""
    from click.testing import CliRunner

    import yaml

    from edgefiq.cli import cli

    quickstart = Path(__file__).parents[1] / "recipes" / "quickstart.yaml"
    base = ["distill", "--recipe", str(quickstart), "--images", str(tree / "imgs"), "--labels", str(tree / "labels.csv"),
            "--epochs", "1", "--set", "quant_aware=false", "--set", "input_size=[32,32]"]
    res = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "q")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rec = yaml.safe_load((tmp_path / "q" / "recipe.yaml").read_text())
    qs = yaml.safe_load(quickstart.read_text())["distill"]
    assert rec["student"] == qs["students"][0]["arch"]
    assert rec["losses"] == qs["defaults"]["losses"] and rec["optim"]["lr"] == qs["defaults"]["optim"]["lr"]
    assert rec["optim"]["epochs"] == 1   # flags still override the recipe
    res = CliRunner().invoke(cli, [*base, "--student", "tiny_cnn", "-o", str(tmp_path / "t")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((tmp_path / "t" / "recipe.yaml").read_text())["student"] == "tiny_cnn"


def test_leave_out_keeps_a_family_out_of_training_only(tree, tmp_path):
    """--leave-out FAMILY drops that family's degraded copies from training; validation keeps them."""
    from click.testing import CliRunner

    from edgefiq.cli import cli
    from edgefiq.data.degrade import make_degraded_set
    from edgefiq.data.readers import read_kind_index
    from edgefiq.distill.prepare import prepare_data

    deg = tmp_path / "deg"
    index = make_degraded_set(tree / "imgs", deg, kinds=["gaussian_blur", "shift_x", "zoom_in"], severities=(1.0,),
                              per_image=0, seed=0)
    kinds = read_kind_index(index)
    (tmp_path / "labels.csv").write_text("path,quality\n" + "".join(
        f"{rel},{0.0 if kind == 'clean' else 1.0}\n" for rel, kind in kinds.items()))
    data = {"images": str(deg), "labels": str(tmp_path / "labels.csv"), "val_fraction": 0.3, "index": str(index),
            "leave_out": ["misalignment"]}
    prep = prepare_data(from_mapping(DistillConfig, recipe_dict(tree, data=data)), None)
    assert {kinds[r] for r in prep.train.rel} == {"clean", "gaussian_blur"}
    assert {kinds[r] for r in prep.val.rel} == {"clean", "gaussian_blur", "shift_x", "zoom_in"}
    args = ["distill", "--images", str(deg), "--labels", str(tmp_path / "labels.csv"), "--student", "tiny_cnn",
            "--epochs", "1", "--batch-size", "8", "--set", "input_size=[32,32]", "--threads", "1",
            "--set", "data.val_fraction=0.3", "--leave-out", "misalignment", "-o", str(tmp_path / "run")]
    bad = CliRunner().invoke(cli, args)
    assert bad.exit_code != 0 and "needs data.index" in str(bad.exception)
    res = CliRunner().invoke(cli, [*args, "--index", str(index)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    model = json.loads((tmp_path / "run" / "model.json").read_text())
    assert model["left_out"] == ["misalignment"] and model["train_images"] == len(prep.train.rel)
    shared = CliRunner().invoke(cli, [*args, "--set", "clean_share=0.5", "-o", str(tmp_path / "run-clean")])
    assert shared.exit_code != 0 and "clean_share needs data.index" in str(shared.exception)
    shared = CliRunner().invoke(cli, [*args, "--index", str(index), "--set", "clean_share=0.5", "-o",
                                      str(tmp_path / "run-clean")], catch_exceptions=False)
    assert shared.exit_code == 0, shared.output
    assert "clean_share: 0.5" in (tmp_path / "run-clean" / "recipe.yaml").read_text()
