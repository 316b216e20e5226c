"""Strict recipe loading: YAML -> frozen dataclasses, with CLI overrides.

Each subsystem declares its own frozen dataclass (``DistillConfig``, ``ExportConfig``...)
next to its code; this module only knows how to build any such dataclass from a mapping,
strictly: an unknown key is an error that suggests the closest valid key, a wrong type
names the key and the expected type. Nested dataclasses, ``list[...]``, ``tuple[...]``,
``dict[str, ...]``, ``Optional``/``X | None``, ``Literal`` and ``StrEnum`` fields work.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Opt:
    ...     lr: float = 1e-3
    ...     epochs: int = 10
    >>> from_mapping(Opt, {"lr": 0.01})
    Opt(lr=0.01, epochs=10)
    >>> apply_overrides(Opt(), ["epochs=3"]).epochs
    3
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from edgefiq.errors import RecipeError
from edgefiq.registry import suggest
from edgefiq.utils import atomic_write_text

T = TypeVar("T")


def from_mapping(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data`` (a mapping), strictly.

    Args:
        cls: a dataclass type.
        data: mapping of field name -> value (``None`` means all defaults).
        where: dotted location used in error messages (e.g. ``"distill.optim"``).

    Raises:
        RecipeError: unknown key, wrong type, or a required key missing.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{where or 'recipe'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        loc = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise RecipeError(f"unknown key {loc!r}{suggest(str(key), sorted(fields))}", key=loc)
        kwargs[key] = _coerce(hints[key], value, loc)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RecipeError(f"{where or 'recipe'}: missing required key(s): {', '.join(missing)}", key=where or None)
    return cls(**kwargs)


def _bad(loc: str, text: str) -> RecipeError:
    """``loc: text`` about the recipe key ``loc``."""
    return RecipeError(f"{loc}: {text}", key=loc)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, loc: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, loc)
            except RecipeError as e:
                errors.append(str(e))
        raise _bad(loc, f"{value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise _bad(loc, f"{value!r} is not one of {', '.join(map(str, choices))}"
                              f"{suggest(str(value), [str(c) for c in choices])}")
        return value
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _bad(loc, f"expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _bad(loc, f"expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{loc}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(item, v, f"{loc}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise _bad(loc, f"expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(kt, k, loc): _coerce(vt, v, f"{loc}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_mapping(tp, value, loc)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            names = [str(m.value) for m in tp]
            raise _bad(loc, f"{value!r} is not one of {', '.join(names)}{suggest(str(value), names)}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _bad(loc, f"expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _bad(loc, f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _bad(loc, f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _bad(loc, f"expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise _bad(loc, f"expected a path, got {value!r}")
    return value


def load_yaml(path: str | Path, variables: dict[str, str] | None = None) -> dict[str, Any]:
    """Read a YAML recipe file; ``${NAME}`` / ``${NAME:-default}`` expand from ``variables`` then the environment.

    Raises:
        RecipeError: file missing, not YAML, or not a mapping at the top level.
    """
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{p}: recipe file not found")
    text = p.read_text()
    text = _expand(text, {**os.environ, **(variables or {})}, p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RecipeError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{p}: the top level must be a mapping of sections")
    return data


def _expand(text: str, env: dict[str, str], path: Path) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(3)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise RecipeError(f"{path}: variable ${{{name}}} is not set (export {name}=... or pass --var {name}=...)")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", repl, text)


def apply_overrides(cfg: T, overrides: list[str] | tuple[str, ...]) -> T:
    """Return ``cfg`` with ``key.sub=value`` overrides applied (values parsed as YAML scalars).

    Example:
        ``apply_overrides(recipe, ["distill.epochs=2", "export.targets=[onnx]"])``
    """
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        cfg = _set(cfg, key.strip().split("."), yaml.safe_load(raw), key)
    return cfg


def _set(obj: Any, keys: list[str], value: Any, full: str) -> Any:
    names = [f.name for f in dataclasses.fields(obj)]
    head = keys[0]
    if head not in names:
        raise RecipeError(f"unknown key {full!r}{suggest(head, names)}", key=full)
    current = getattr(obj, head)
    if len(keys) > 1:
        if not dataclasses.is_dataclass(current):
            raise RecipeError(f"{full!r}: {head!r} has no sub-keys")
        new = _set(current, keys[1:], value, full)
    else:
        new = _coerce(get_type_hints(type(obj))[head], value, full)
    return dataclasses.replace(obj, **{head: new})


def to_dict(cfg: Any) -> Any:
    """Plain-YAML-serialisable form of a (nested) config dataclass."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, enum.Enum):
        return cfg.value
    if isinstance(cfg, Path):
        return str(cfg)
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    return cfg


def dump_resolved(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML next to an output (atomically)."""
    return atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
