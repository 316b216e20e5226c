"""Tests for the foundation: registry, strict recipes, errors -> exit codes, atomic writes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from edgefiq.errors import RecipeError, UsageError
from edgefiq.recipe import apply_overrides, from_mapping, to_dict
from edgefiq.registry import Registry
from edgefiq.utils import atomic_path


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    name: Literal["adamw", "sgd"] = "adamw"


@dataclass(frozen=True)
class Cfg:
    epochs: int = 3
    optim: Optim = field(default_factory=Optim)
    targets: tuple[str, ...] = ("onnx",)


def test_registry_suggests_closest_name() -> None:
    reg = Registry("thing")
    reg.register("mobilenetv3_small_100")(object)
    with pytest.raises(UsageError, match="did you mean 'mobilenetv3_small_100'"):
        reg.get("mobilenetv3_smal_100")


def test_recipe_unknown_key_suggests() -> None:
    with pytest.raises(RecipeError, match=r"unknown key 'optim.lrr'; did you mean 'lr'"):
        from_mapping(Cfg, {"optim": {"lrr": 0.1}})


def test_recipe_wrong_type_names_key() -> None:
    with pytest.raises(RecipeError, match=r"epochs: expected an integer"):
        from_mapping(Cfg, {"epochs": "three"})
    with pytest.raises(RecipeError, match=r"optim.name: 'adam' is not one of adamw, sgd; did you mean 'adamw'"):
        from_mapping(Cfg, {"optim": {"name": "adam"}})


def test_recipe_roundtrip_and_overrides() -> None:
    cfg = from_mapping(Cfg, {"epochs": 5, "optim": {"lr": 1}, "targets": ["onnx", "tflite"]})
    assert cfg == Cfg(epochs=5, optim=Optim(lr=1.0), targets=("onnx", "tflite"))
    assert from_mapping(Cfg, to_dict(cfg)) == cfg
    cfg2 = apply_overrides(cfg, ["optim.lr=0.5", "targets=[openvino]"])
    assert cfg2.optim.lr == 0.5 and cfg2.targets == ("openvino",)
    assert dataclasses.is_dataclass(cfg2)
    with pytest.raises(RecipeError, match="did you mean 'epochs'"):
        apply_overrides(cfg, ["epoch=1"])


def test_atomic_path_leaves_nothing_on_failure(tmp_path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done"


def test_atomic_path_result_has_umask_mode(tmp_path) -> None:
    import os

    target = tmp_path / "report.json"
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
