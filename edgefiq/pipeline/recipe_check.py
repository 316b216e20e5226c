"""``check_recipe``: every problem of a run recipe at once, in the key syntax of ``--set``.

``load_recipe`` stops at the first error, which is right for ``edgefiq run``. ``edgefiq
recipe check`` wants the whole list: unset variables (``${NAME}`` without a default, not
given by ``--var`` or the environment), ``--var`` names the recipe never uses (a typo),
unknown keys, wrong types and values, and input paths that do not exist. Each message
names its key the way ``--set`` spells it (``distill.students.0.arch``,
``distill.defaults.optim.epochs``), so the fix can be typed straight back.

The checker re-runs the strict loader, removing each offending key after reporting it, so
it reuses the loader's messages instead of duplicating its rules.

Example:
    >>> cfg, errors = check_recipe("recipes/quickstart.yaml")   # doctest: +SKIP
    >>> errors                                                  # doctest: +SKIP
    []
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from edgefiq.errors import RecipeError

# Recipe keys that name an input file or folder (outputs such as run_dir are not checked).
PATH_KEYS = {"images", "labels", "val_labels", "val_identities", "pairs", "fr_model", "csv", "model", "index",
             "calibration", "verify", "embeddings", "embeddings_index", "landmarks", "reference", "images_root",
             "same_source_index", "targets_file", "feature_targets"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")
_UNSET = "<unset:{}>"
_MAX_ERRORS = 50


def _variable_errors(text: str, variables: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Unset and unused variables; returns the errors and stand-in values for the unset ones."""
    from edgefiq.registry import suggest

    used = {m.group(1): m.group(3) for m in _VAR.finditer(text)}
    errors, stand_ins = [], {}
    for name, default in used.items():
        if name not in variables and name not in os.environ and default is None:
            errors.append(f"${{{name}}}: variable is not set (pass --var {name}=... or export {name}=...)")
            stand_ins[name] = _UNSET.format(name)
    for name in variables:
        if name not in used:
            hint = suggest(name, sorted(used)) if used else "; this recipe takes no variables"
            errors.append(f"--var {name}: the recipe has no ${{{name}}}{hint}")
    return errors, stand_ins


def _set_syntax(error: RecipeError, raw: dict[str, Any]) -> tuple[str, list[str] | None]:
    """The loader's message with its key (``RecipeError.key``) as ``--set`` spells it, and that key path."""
    message, loc = str(error), error.key
    if not loc:
        return message, None
    label = re.fullmatch(r"distill\[([^\]]+)\]\.?(.*)", loc)
    if label:   # a student's merged settings: its own key if it sets it, else the shared defaults
        students = (raw.get("distill") or {}).get("students") or []
        rest = label.group(2)
        index = next((i for i, s in enumerate(students) if isinstance(s, dict)
                      and label.group(1) in (s.get("name"), s.get("arch"))), None)
        own = index is not None and _has_path(students[index].get("config") or {}, rest.split("."))
        loc = (f"distill.students.{index}.config" if own else "distill.defaults") + (f".{rest}" if rest else "")
    loc = re.sub(r"\[(\d+)\]", r".\1", loc)
    return message.replace(error.key, loc, 1), loc.split(".")


def _has_path(node: Any, keys: list[str]) -> bool:
    """Whether the nested dict ``node`` holds the key path ``keys`` (the student's own setting)."""
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return False
        node = node[k]
    return True


def _drop(raw: dict[str, Any], keys: list[str]) -> bool:
    """Remove ``keys`` (a path of dict keys / list indices) from ``raw``; False if it is not there."""
    node: Any = raw
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) and k.isdigit() and int(k) < len(node) else (
            node.get(k) if isinstance(node, dict) else None)
        if node is None:
            return False
    last = keys[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        del node[int(last)]
        return True
    return False


def _path_errors(resolved: Any, template: Any = None, where: str = "") -> list[str]:
    """Input paths in the resolved recipe that do not exist; ``template`` is the recipe before its
    variables were filled in, so that a path from ``${NAME}`` names the ``--var`` that sets it."""
    out: list[str] = []
    items = resolved.items() if isinstance(resolved, dict) else enumerate(resolved) if isinstance(
        resolved, (list, tuple)) else ()
    for k, v in items:
        loc = f"{where}.{k}" if where else str(k)
        sub = template.get(k) if isinstance(template, dict) else (
            template[k] if isinstance(template, list) and isinstance(k, int) and k < len(template) else None)
        if isinstance(v, (dict, list, tuple)):
            out += _path_errors(v, sub, loc)
        elif isinstance(v, str) and str(k) in PATH_KEYS and v and "<unset:" not in v and not Path(v).exists():
            names = [m.group(1) for m in _VAR.finditer(sub)] if isinstance(sub, str) else []
            hint = "".join(f" (set by ${{{n}}}: --var {n}=...)" for n in names)
            out.append(f"{loc}: {v} does not exist{hint}")
    return out


def _template(path: Path) -> Any:
    """The recipe's YAML with its ``${NAME}`` references left as text (None if it does not parse)."""
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None


def check_recipe(path: str | Path, variables: dict[str, str] | None = None,
                 overrides: list[str] | tuple[str, ...] = ()) -> tuple[Any, list[str]]:
    """Validate a run recipe and return ``(recipe or None, every error found)``.

    Args:
        path: the YAML recipe.
        variables: ``--var`` values.
        overrides: ``--set`` strings.

    Returns:
        The loaded ``RunRecipe`` when no key error remains (else ``None``) and the list of
        one-line errors (empty when the recipe is fine).

    Example:
        >>> check_recipe("recipes/lfw-mobilefacenet.yaml", {"LFE": "/data"})[1][0]   # doctest: +SKIP
        "--var LFE: the recipe has no ${LFE}; did you mean 'LFW'?"
    """
    from edgefiq.pipeline.recipe import RunRecipe, apply_raw_overrides, validate
    from edgefiq.recipe import from_mapping, load_yaml, to_dict

    variables = dict(variables or {})
    p = Path(path)
    if not p.is_file():
        return None, [f"{p}: recipe file not found"]
    errors, stand_ins = _variable_errors(p.read_text(), variables)
    try:
        raw = apply_raw_overrides(load_yaml(p, {**stand_ins, **variables}), overrides)
    except RecipeError as e:
        return None, errors + [str(e)]
    cfg = None
    for _ in range(_MAX_ERRORS):
        try:
            cfg = from_mapping(RunRecipe, raw, "")
            validate(cfg)
            break
        except RecipeError as e:
            message, keys = _set_syntax(e, raw)
            errors.append(message)
            cfg = None
            if not keys or not _drop(raw, keys):
                break
    if cfg is not None:
        errors += _path_errors(to_dict(cfg), _template(p))
    return cfg, errors
