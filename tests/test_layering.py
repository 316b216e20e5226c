"""The architecture, enforced: edgefiq's packages import only downward, never in a cycle,
never another package's ``_private`` names, and no module or function outgrows its limit.

``LAYERS`` is the one declaration of the layer order (L0 foundations ... L8 entry points;
``edgefiq/__init__.py`` summarises it). The import graph is built from the source with ``ast``, so function-level
imports count exactly like module-level ones.

A new package (or top-level module) must be added to ``LAYERS``; the test says so.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "edgefiq"

#: Layer of every package / top-level module of ``edgefiq``. Imports go to the same or a lower
#: layer only; imports inside one layer must not form a cycle.
LAYERS: dict[str, int] = {
    # L0 foundations
    "errors": 0, "registry": 0, "utils": 0, "recipe": 0, "packaged": 0, "console": 0, "timing": 0,
    # L1 data (one Dataset, label-CSV I/O, identity split) and plain-numpy metrics
    "data": 1, "metrics": 1,
    # L2 torch-free runtime: sidecar, runners through the backend registry, QualityModel
    "runtime": 2,
    # L2 video: decode, track, best-shot selection over the runtime (torch-free)
    "video": 2,
    # L3 students, FR backbones, checkpoint format (pruned structure included), losses
    "models": 3, "losses": 3,
    # L4 labelers, pruning primitives, the training loop
    "teachers": 4, "prune": 4, "distill": 4,
    # L5 backends, calibration, parity gate
    "export": 5,
    # L6 evaluation and benchmarks over public APIs
    "eval": 6, "bench": 6,
    # L7 workflows: run stages, prune recovery and sweeps, reports
    "pipeline": 7,
    # L8 entry points
    "cli": 8, "__main__": 8,
}

#: The root ``edgefiq/__init__.py`` is the public facade (version, lazily imported top-level API):
#: it sits above every layer, and packages may import only these names from it.
FACADE_NAMES = {"__version__"}

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

#: Functions still over MAX_FUNCTION_LINES, to be split. The list may only shrink: the test fails
#: when a listed function has been brought under the limit, so the entry gets removed.
OVERSIZE_FUNCTIONS: set[str] = set()


@dataclass(frozen=True)
class Edge:
    """One import statement from package ``src`` to package ``dst``."""

    src: str
    dst: str
    where: str          # file:line
    target: str         # imported module
    names: tuple[str, ...]


def _module_name(path: Path) -> tuple[list[str], bool]:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return parts[:-1], True
    return parts, False


def _package(parts: list[str]) -> str | None:
    """Layer unit of a module path (``["edgefiq", "data", "readers"]`` -> ``"data"``); None for the facade."""
    return parts[1] if len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line, absolute module, imported names)`` of every edgefiq import in ``path``, at any depth."""
    mod, is_pkg = _module_name(path)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, ()) for a in node.names if a.name.split(".")[0] == "edgefiq"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod if is_pkg else mod[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "edgefiq":
                out.append((node.lineno, target, tuple(a.name for a in node.names)))
    return out


def _sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def build_graph() -> list[Edge]:
    """Every cross-unit import edge of edgefiq (the facade's own imports are left out)."""
    edges = []
    for path in _sources():
        mod, _ = _module_name(path)
        src = _package(mod)
        if src is None:
            continue
        rel = path.relative_to(ROOT.parent).as_posix()
        for line, target, names in _imports(path):
            parts = target.split(".")
            if len(parts) == 1:   # ``from edgefiq import x``: x is a unit or a facade name
                for n in names:
                    edges.append(Edge(src, n if n in LAYERS else "", f"{rel}:{line}", f"edgefiq.{n}", (n,)))
                continue
            edges.append(Edge(src, parts[1], f"{rel}:{line}", target, names))
    return edges


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one unit (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.dst and e.dst != e.src:
            graph.setdefault(e.src, set()).add(e.dst)
            graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_every_unit_has_a_layer() -> None:
    units = {_package(_module_name(p)[0]) for p in _sources()} - {None}
    missing = sorted(u for u in units if u not in LAYERS)
    assert not missing, f"declare the layer of {missing} in tests/test_layering.py LAYERS"


def test_imports_go_down_only() -> None:
    up = [f"{e.where}: {e.src} (L{LAYERS[e.src]}) imports {e.target} (L{LAYERS[e.dst]})"
          for e in build_graph() if e.dst and LAYERS.get(e.src, 99) < LAYERS.get(e.dst, -1)]
    assert not up, "upward imports:\n" + "\n".join(up)


def test_no_cycle_between_packages() -> None:
    edges = build_graph()
    cycles = _cycles(edges)
    detail = []
    for comp in cycles:
        detail += [f"  {e.where}: {e.src} -> {e.dst}" for e in edges if e.src in comp and e.dst in comp and e.src != e.dst]
    assert not cycles, f"import cycles between packages {cycles}:\n" + "\n".join(detail)


def test_only_facade_names_from_the_root_package() -> None:
    bad = [f"{e.where}: {e.target}" for e in build_graph() if not e.dst and e.names[0] not in FACADE_NAMES]
    assert not bad, "import these from their package, not from the edgefiq facade:\n" + "\n".join(bad)


def test_no_private_name_crosses_a_package() -> None:
    bad = []
    for e in build_graph():
        if e.dst == e.src or not e.dst:
            continue
        hidden = [n for n in e.names if _private(n)] + [p for p in e.target.split(".") if _private(p)]
        if hidden:
            bad.append(f"{e.where}: {e.src} imports {hidden} from {e.target}")
    assert not bad, "make these public in the lower package:\n" + "\n".join(bad)


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)  # type: ignore[operator]
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_module_size_limit() -> None:
    big = [f"{p.relative_to(ROOT.parent)}: {n} lines" for p in _sources()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them):\n" + "\n".join(big)


def test_function_size_limit() -> None:
    over = {}
    for p in _sources():
        rel = p.relative_to(ROOT.parent).as_posix()
        for name, n in _functions(p):
            if n > MAX_FUNCTION_LINES:
                over[f"{rel}::{name}"] = n
    new = sorted(f"{k}: {n} lines" for k, n in over.items() if k not in OVERSIZE_FUNCTIONS)
    done = sorted(OVERSIZE_FUNCTIONS - set(over))
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (split them):\n" + "\n".join(new)
    assert not done, f"now within the limit, remove from OVERSIZE_FUNCTIONS: {done}"


@pytest.mark.parametrize("src,expect", [
    ("from edgefiq.export.base import load_runner\n", "export"),
    ("def f():\n    from edgefiq.pipeline import stages\n", "pipeline"),
    ("import edgefiq.cli.score\n", "cli"),
])
def test_graph_sees_every_import_form(tmp_path: Path, src: str, expect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: module-level, function-level and plain imports all become edges."""
    fake = tmp_path / "edgefiq"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "data" / "__init__.py").write_text("")
    (fake / "data" / "x.py").write_text(src)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    edges = build_graph()
    assert [(e.src, e.dst) for e in edges] == [("data", expect)]
    with pytest.raises(AssertionError, match="upward imports"):
        test_imports_go_down_only()


def test_cycle_detection() -> None:
    e = [Edge("a", "b", "", "", ()), Edge("b", "c", "", "", ()), Edge("c", "a", "", "", ()), Edge("c", "d", "", "", ())]
    assert _cycles(e) == [["a", "b", "c"]]
