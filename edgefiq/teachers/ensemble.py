"""Ensemble teacher: a weighted average of the members' normalised ranks.

Each member scores the images; over the whole labelled set (``finalize``) every member's
scores become ranks scaled to [0, 1] (ties share their average rank), and the quality is
the weighted mean of those. Members' raw scores are kept as extra CSV columns
``quality_<member>``. Options given to the ensemble itself (``fr_model``, ``flip``...) are
passed to every member that takes them; a member spec can override them.

Member spec: ``NAME[:WEIGHT][,KEY=VALUE...]``, e.g. ``prefiqs:2,rho=0.4`` or ``norm``.

Example:
    >>> t = Ensemble(["prefiqs:2,rho=0.4", "serfiq:1,m=10"], fr_model="mobilefacenet.pt")   # doctest: +SKIP
    >>> t.score_paths(["a.jpg", "b.jpg"])                                                    # doctest: +SKIP
    array([1., 0.])
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgefiq.errors import UsageError
from edgefiq.registry import TEACHERS
from edgefiq.teachers.base import ENGINE_OPTIONS, Table, Teacher, make_teacher


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_member(spec: str | dict[str, Any]) -> tuple[str, float, dict[str, Any]]:
    """``"prefiqs:2,rho=0.4"`` (or ``{"teacher", "weight", "options"}``) -> ``(name, weight, options)``.

    Example:
        >>> parse_member("prefiqs:2,rho=0.4,method=random")
        ('prefiqs', 2.0, {'rho': 0.4, 'method': 'random'})
    """
    if isinstance(spec, dict):
        return str(spec["teacher"]), float(spec.get("weight", 1.0)), dict(spec.get("options", {}))
    head, *kvs = [s.strip() for s in spec.split(",")]
    name, _, w = head.partition(":")
    try:
        weight = float(w) if w else 1.0
    except ValueError:
        raise UsageError(f"ensemble member {spec!r}: weight {w!r} is not a number") from None
    opts = {}
    for kv in kvs:
        k, eq, v = kv.partition("=")
        if not eq:
            raise UsageError(f"ensemble member {spec!r}: expected KEY=VALUE, got {kv!r}")
        opts[k.strip().replace("-", "_")] = _value(v.strip())
    if weight <= 0:
        raise UsageError(f"ensemble member {spec!r}: weight must be > 0")
    return name, weight, opts


def rank01(x: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1] (0 = lowest score; a single row gets 0.5).

    Example:
        >>> rank01(np.array([3.0, 1.0, 2.0, 2.0])).tolist()
        [1.0, 0.0, 0.5, 0.5]
    """
    from scipy.stats import rankdata  # heavy optional ([train]): scipy.stats takes ~1 s to import

    n = len(x)
    if n < 2:
        return np.full(n, 0.5)
    return (rankdata(x, method="average") - 1.0) / (n - 1.0)


@TEACHERS.register("ensemble")
class Ensemble(Teacher):
    """Weighted rank average of several teachers.

    Args:
        members: member specs (see module docstring), at least one.
        **shared: options passed to every member that takes them (e.g. ``fr_model``).
    """

    name = "ensemble"

    def __init__(self, members: Sequence[str | dict[str, Any]] = (), **shared: Any) -> None:
        if isinstance(members, str):
            members = [members]
        if not members:
            raise UsageError("teacher 'ensemble' needs at least one --ensemble NAME[:WEIGHT][,KEY=VALUE...]")
        self.members: list[tuple[str, float, Teacher]] = []
        self.column_names: list[str] = []
        used: set[str] = set()
        for spec in members:
            name, weight, opts = parse_member(spec)
            if name == "ensemble":
                raise UsageError("an ensemble cannot contain an ensemble")
            params = inspect.signature(TEACHERS.get(name).__init__).parameters
            inherited = {k: v for k, v in shared.items() if k in params and k not in opts and v is not None}
            used.update(k for k in inherited if k not in ENGINE_OPTIONS)
            engine = {k: inherited.pop(k) for k in list(inherited) if k in ENGINE_OPTIONS}
            t = make_teacher(name, {**inherited, **opts}, **engine)
            col = f"quality_{name}"
            k = 2
            while col in self.column_names:
                col, k = f"quality_{name}{k}", k + 1
            self.members.append((name, weight, t))
            self.column_names.append(col)
        unused = [k for k, v in shared.items() if v is not None and k not in used and k not in ENGINE_OPTIONS]
        if unused:
            raise UsageError(f"no ensemble member takes {', '.join('--' + k.replace('_', '-') for k in unused)}")

    def score_table(self, root: Path, relpaths: Sequence[str], *, on_bad_image: str = "error") -> Table:
        out: Table = {}
        for (_, _, t), col in zip(self.members, self.column_names):
            tab = t.score_table(root, relpaths, on_bad_image=on_bad_image)
            for k, v in tab.items():
                out[col if k == "quality" else f"{col}.{k}"] = v
        q = np.zeros(len(relpaths))
        for col in self.column_names:  # a row skipped by any member is skipped
            q = q + np.where(np.isfinite(out[col]), 0.0, np.nan)
        return {"quality": q, **out}

    def networks(self) -> list[tuple[str, Any]]:
        """Every distinct network pass of the members: members that share a network (the FR model of
        PreFIQs, SER-FIQ and norm) need it once per image."""
        out: list[tuple[str, Any]] = []
        for _, _, t in self.members:
            mine = t.networks()
            known = {(label, id(m)) for label, m in out}
            out += [(label, m) for label, m in mine if (label, id(m)) not in known]
        return out

    def finalize(self, table: Table) -> Table:
        total = sum(w for _, w, _ in self.members)
        q = np.zeros(len(table["quality"]))
        out = dict(table)
        for (_, w, t), col in zip(self.members, self.column_names):
            sub = {("quality" if k == col else k[len(col) + 1:]): v for k, v in table.items()
                   if k == col or k.startswith(col + ".")}
            fin = t.finalize(sub)
            out[col] = fin["quality"]
            for k in list(out):
                if k.startswith(col + "."):
                    del out[k]
            q += w * rank01(fin["quality"])
        out["quality"] = q / total
        return out

    def config(self) -> dict[str, Any]:
        return {"teacher": self.name, "combine": "weighted mean of ranks scaled to [0, 1]",
                "members": [{**t.config(), "weight": w, "output_column": c}
                            for (_, w, t), c in zip(self.members, self.column_names)]}
