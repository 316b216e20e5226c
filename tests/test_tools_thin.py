"""Issue 29: ``tools/`` stays thin (CONVENTIONS.md, "tools, not twins").

A tool is a page or two over package functions: at most ``MAX_TOOL_LINES`` lines, ``MAX_TOTAL_LINES`` for
all of them, and it never defines its own metric, reader, split or scoring loop (those live once in
``edgefiq.metrics``, ``edgefiq.data.readers``, ``edgefiq.pipeline.stages.split_identities`` /
``edgefiq.data.readers.lfw_fold_identities`` and ``edgefiq.runtime.score`` / ``edgefiq.eval``).
Checked on the source with ``ast``: nothing is imported or run, no data is needed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"
TOOL_FILES = sorted(TOOLS.glob("*.py"))

MAX_TOOL_LINES = 250
MAX_TOTAL_LINES = 1500

#: Function (or class, in snake case) names that say what the thing is. A name is split on ``_``.
RULES: dict[str, re.Pattern[str]] = {
    "metric": re.compile(r"(^|_)(pauc|paucs|auc|edc|srcc|plcc|krcc|spearman|pearson|kendall|roc|eer|fmr|fnmr|mae"
                         r"|accuracy|bootstrap)(_|$)"),
    "reader": re.compile(r"^_?(read|load|parse)_|(^|_)load_rows$"),
    "split": re.compile(r"(^|_)(split|splits|fold|folds|kfold|holdout)(_|$)|(held_out|val|train|validation)_identities$"),
    "scoring loop": re.compile(r"^_?(evaluate|train|distill|benchmark|(score|embed|label)_(images|paths|folder|batch"
                               r"|batches|chunks|stage|loop))$|_loop$"),
}
#: Modules a tool must not import: label/index CSVs are read by ``edgefiq.data.readers``, statistics
#: come from ``edgefiq.metrics``.
FORBIDDEN_IMPORTS = {"csv", "scipy.stats", "sklearn.metrics"}
#: A slice bound this large is a hard-coded block of pairs or images (``pairs[3000:4200]``): a split.
MAX_LITERAL_SLICE = 100


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _calls(node: ast.AST, name: str) -> bool:
    """True if ``node`` contains a call of ``name`` (``len(...)``, ``np.arange(...)``)."""
    return any(isinstance(n, ast.Call) and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)
               for n in ast.walk(node))


def _named(node: ast.AST) -> str:
    return getattr(node, "id", None) or getattr(node, "attr", None) or ""


def problems(source: str, where: str = "<tool>") -> list[str]:
    """Every rule ``source`` breaks, one line each (``where:line: what``)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        at = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out += [f"{at}: {node.name} looks like a {what}" for what, rx in RULES.items() if rx.search(_snake(node.name))]
        elif isinstance(node, ast.Import):
            out += [f"{at}: imports {a.name}" for a in node.names if a.name in FORBIDDEN_IMPORTS]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (
                node.module in FORBIDDEN_IMPORTS or any(f"{node.module}.{a.name}" in FORBIDDEN_IMPORTS for a in node.names)):
            out.append(f"{at}: imports from {node.module}")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            bounds = [b for b in (node.slice.lower, node.slice.upper) if b is not None]
            if any(isinstance(b, ast.Constant) and isinstance(b.value, int) and b.value >= MAX_LITERAL_SLICE
                   for b in bounds):
                out.append(f"{at}: literal slice of {MAX_LITERAL_SLICE}+ items (a hard-coded split)")
            elif "pair" in _named(node.value).lower():
                out.append(f"{at}: slices {_named(node.value)} (a split of the pairs by position)")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv) and (
                (_calls(node.left, "len") and isinstance(node.right, ast.Constant)) or _calls(node.left, "arange")):
            out.append(f"{at}: fold arithmetic ({ast.unparse(node)})")
    return out


def test_tools_fit_in_their_budget() -> None:
    lines = {p.name: len(p.read_text().splitlines()) for p in TOOL_FILES}
    over = {name: n for name, n in lines.items() if n > MAX_TOOL_LINES}
    assert not over, f"tools over {MAX_TOOL_LINES} lines (move logic into the package): {over}"
    assert sum(lines.values()) <= MAX_TOTAL_LINES, f"tools/ has {sum(lines.values())} lines (at most {MAX_TOTAL_LINES})"


@pytest.mark.parametrize("path", TOOL_FILES, ids=[p.name for p in TOOL_FILES])
def test_tool_defines_no_metric_reader_split_or_scoring_loop(path: Path) -> None:
    found = problems(path.read_text(), f"tools/{path.name}")
    assert not found, "call the package's function instead:\n" + "\n".join(found)


@pytest.mark.parametrize("path", TOOL_FILES, ids=[p.name for p in TOOL_FILES])
def test_tool_is_a_documented_script(path: Path) -> None:
    """A docstring saying what it measures, and nothing runs on import (tests import some tools' ``main``)."""
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"tools/{path.name} has no module docstring"
    guards = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert guards, f"tools/{path.name} has no `if __name__ == \"__main__\":` guard"


def test_the_rules_catch_a_pipeline_twin() -> None:
    """What the removed tools/bench_distill.py and bench_prune.py did, each caught by one rule."""
    twin = '''
import csv
from scipy.stats import spearmanr
def read_rows(index): ...
def _pauc(es, quality): ...
def split_label_files(work): ...
def held_out_identities(): ...
def evaluate(work, run_dir): ...
def label_chunks(work, root): ...
def kfold_accuracy(sim, genuine, folds): ...
ids = sorted({p for a, b, _ in pairs[3000:4200] for p in (a, b)})
per_fold = len(pairs) // 7
tail = pairs[5 * per_fold:]
fold_id = np.arange(n) * folds // n
'''
    found = "\n".join(problems(twin))
    for expected in ("imports csv", "imports from scipy.stats", "read_rows looks like a reader", "_pauc looks like a metric",
                     "split_label_files looks like a split", "held_out_identities looks like a split",
                     "evaluate looks like a scoring loop", "label_chunks looks like a scoring loop",
                     "kfold_accuracy looks like a metric", "literal slice", "slices pairs", "fold arithmetic (len(pairs) // 7)",
                     "fold arithmetic (np.arange(n) * folds // n)"):
        assert expected in found, f"{expected!r} not caught:\n{found}"
    thin = "def markdown(report): ...\ndef validation_sets(run_dir): ...\nx = images[:16]\ny = (480 - h) // 2\n"
    assert problems(thin) == []
