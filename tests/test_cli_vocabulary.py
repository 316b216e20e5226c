"""Issue 20 findings 3 and 4: one option vocabulary across every verb, and a fast, torch-free start.

The vocabulary (README, "Option vocabulary"): every verb that writes files takes
``-o/--output``; batch options are ``--batch-size``; a short flag means the same thing in
every verb (``-t`` is always ``--target``); ``--threads`` is one number, except in
``bench``, which sweeps and takes a comma list; ``-v``/``-q`` work before or after the
verb; verbs that print a table take ``--json``; every option has help text.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from edgefiq.cli import COMMANDS, SUMMARIES, cli

ROOT = Path(__file__).resolve().parents[1]

# verbs that write files: each has -o/--output
WRITERS = {"label", "distill", "prune", "export", "quantize", "eval", "score", "bench", "run", "data inspect",
           "data align", "data degrade", "data synthetic", "data calibration"}
# verbs that print a table: each has --json
TABLES = {"distill", "prune", "export", "quantize", "eval", "bench", "run", "data inspect", "data degrade", "models"}
BANNED = {"--out": "--output", "--batch": "--batch-size", "--m": "--passes", "--outdir": "--output"}


def _commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    out: list[tuple[str, click.Command]] = []
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd))
    return out


def _options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option)]


def test_shared_option_vocabulary() -> None:
    shorts: dict[str, set[str]] = {}
    problems: list[str] = []
    for path, cmd in _commands():
        names = {o for p in _options(cmd) for o in p.opts + p.secondary_opts}
        for p in _options(cmd):
            if not (p.help or "").strip():
                problems.append(f"{path} {p.opts}: no help text")
            longs = [o for o in p.opts if o.startswith("--")]
            for s in (o for o in p.opts if not o.startswith("--")):
                shorts.setdefault(s, set()).update(longs)
        for bad, good in BANNED.items():
            if bad in names:
                problems.append(f"{path}: {bad} should be {good}")
        if path in WRITERS and not {"-o", "--output"} <= names:
            problems.append(f"{path}: writes files but has no -o/--output")
        if path in TABLES and "--json" not in names:
            problems.append(f"{path}: prints a table but has no --json")
        if not {"-v", "--verbose", "-q", "--quiet"} <= names:
            problems.append(f"{path}: -v/-q not accepted after the verb")
        threads = next((p for p in _options(cmd) if "--threads" in p.opts), None)
        if threads is not None and path != "bench" and not isinstance(threads.type, (click.types.IntParamType,)):
            problems.append(f"{path}: --threads should be one number (only bench sweeps a list)")
    for s, longs in shorts.items():
        if len(longs) > 1:
            problems.append(f"short flag {s} means {sorted(longs)} in different verbs")
    assert shorts.get("-t", {"--target"}) == {"--target"}
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_top_level_summaries_match_the_verbs_help(name: str) -> None:
    """`edgefiq --help` shows SUMMARIES without importing the verbs; they must not drift."""
    if name not in SUMMARIES:
        pytest.skip(f"{name}: no static summary (its module is imported for --help)")
    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None
    assert (cmd.help or "").strip().splitlines()[0] == SUMMARIES[name]


def test_verbose_and_quiet_after_the_verb(tmp_path: Path) -> None:
    for flag in ("-q", "-v", "--quiet"):
        res = CliRunner().invoke(cli, ["data", "synthetic", "-o", str(tmp_path / flag), "--identities", "1",
                                       "--per-identity", "1", "--no-degraded", flag])
        assert res.exit_code == 0, res.output


def test_misspelt_verb_gets_a_suggestion() -> None:
    res = CliRunner().invoke(cli, ["scroe"])
    assert res.exit_code == 2 and "did you mean 'score'" in res.output


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_help_and_missing_file_do_not_import_torch(tmp_path: Path) -> None:
    code = ("import sys\nfrom edgefiq.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    print('exit', e.code)\n"
            "print('torch' in sys.modules)")
    r = _python(code, "--help")
    assert r.returncode == 0 and r.stdout.strip().endswith("False"), r.stdout[-300:] + r.stderr[-1000:]
    r = _python(code, "export", str(tmp_path / "nothere.pt"), "-t", "onnx", "-o", str(tmp_path))
    assert r.stdout.split()[-3:] == ["exit", "1", "False"], r.stdout + r.stderr
    assert r.stderr.strip() == f"Error: {tmp_path / 'nothere.pt'}: checkpoint not found"


def test_distill_help_without_torch() -> None:
    """A torch-free install still gets `edgefiq distill --help` (the student list says what is missing)."""
    code = ("import sys\nsys.modules['torch'] = None\nfrom edgefiq.cli import main\n"
            "try:\n    main(['distill', '--help'])\nexcept SystemExit as e:\n    print('exit', e.code)\n")
    r = _python(code)
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "Usage: edgefiq distill" in r.stdout and "--epochs" in r.stdout and "Students:" in r.stdout
