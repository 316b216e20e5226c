"""Issue 20 finding 9: the README's commands use options the verbs really have (docs tested against the CLI)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from edgefiq.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[str]:
    blocks, current, inside = [], [], False
    for ln in README.read_text().splitlines():
        if ln.startswith("```"):
            if inside:
                blocks.append("\n".join(current) + "\n")
            current, inside = [], not inside
        elif inside:
            current.append(ln)
    lines = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [ln.split("#")[0].split("|")[0].strip() for ln in joined.splitlines()]
    return [ln for ln in lines if ln.startswith("edgefiq ")]


def test_readme_starts_with_the_two_commands() -> None:
    first = [ln.strip() for ln in README.read_text().splitlines()[:2]]
    assert first == ["make quickstart", "make test"]


def test_readme_glossary_explains_the_jargon() -> None:
    text = README.read_text()
    glossary = text[text.index("## Glossary"):]
    for term in ("SRCC", "EDC", "FMR / FNMR", "pAUC", "PT2E", "DepGraph"):
        assert f"**{term}**" in glossary, term


def test_readme_commands_use_real_options() -> None:
    ctx = click.Context(cli)
    problems = []
    cmds = _commands()
    assert len(cmds) > 20
    for line in cmds:
        args = [a for a in shlex.split(line)[1:] if a not in ("-v", "-q")]
        cmd = cli.get_command(ctx, args[0])
        assert cmd is not None, line
        if isinstance(cmd, click.Group) and len(args) > 1 and args[1] in cmd.commands:
            cmd = cmd.commands[args[1]]
        known = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
        known |= {"--help", "-h"}
        for a in args:
            if a.startswith("-") and a != "-" and a.split("=")[0] not in known:
                problems.append(f"{line}: {a}")
    assert not problems, "\n".join(problems)


def _tested_python_blocks() -> list[str]:
    """The README's Python blocks whose introduction says a test runs them, in order."""
    return re.findall(r"a test runs this block[^\n]*\n\n```python\n(.*?)```", README.read_text(), re.S)


def _run_without_torch(code: str, cwd: Path) -> str:
    import subprocess
    import sys

    from test_cli_detect import NO_TORCH

    blocker = NO_TORCH.split("from edgefiq.cli")[0]   # the meta-path hook only
    r = subprocess.run([sys.executable, "-c", blocker + code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.shared_data
def test_readme_python_blocks_run_without_torch(shared: Path, tmp_path: Path) -> None:
    from edgefiq.video.synth import write_walkup_video

    frame_block, manual_block, stream_block = _tested_python_blocks()
    frame_block = frame_block.replace("../shared/data", str(shared))
    printed = _run_without_torch(frame_block + manual_block + "\nassert len(best) == 1 and "
                                 "faces.landmarks.shape[1:] == (5, 2) and np.isfinite(quality)\n"
                                 "assert abs(best[0].quality - quality) < 1e-5\n", README.parent)
    assert printed.strip()   # one line per face: box and quality
    lfw = shared / "lfw-dev"
    write_walkup_video(lfw / "raw_sample", lfw / "landmarks.tsv", tmp_path / "walkup.mp4", people=2, frames=40,
                       seed=1)
    out = [ln.split() for ln in _run_without_torch(stream_block, tmp_path).splitlines()]
    started = {int(ln[1]) for ln in out if ln[0] == "new_track"}
    finished = [int(ln[0]) for ln in out if ln[-3:] == ["(112,", "112,", "3)"]]   # tracks still live end in finish()
    assert finished and set(finished) <= started
