"""Issue 20 findings 5 and 6: scriptable output (-o -, --json, bench folders and globs, exit codes)
and wrong input that used to pass silently (landmarks matching nothing, odd sizes, garbage models).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_runtime import edgefiq_artifacts  # noqa: F401  (session fixture)

from edgefiq.cli import cli

FAST = ["--warmup", "0", "--min-runs", "1", "--min-time", "0", "--no-png"]


def test_bench_glob_skips_sidecars_writes_folder_and_prints_json(edgefiq_artifacts, tmp_path):  # noqa: F811
    files = sorted(str(p) for p in edgefiq_artifacts["onnx"].parent.iterdir())
    assert any(f.endswith(".json") for f in files)          # what `bench export/*` expands to
    res = CliRunner().invoke(cli, ["bench", *files, *FAST, "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "rep" / "bench.json").read_text())["rows"]
    assert [r["artifact"] for r in rows] == [edgefiq_artifacts["onnx"].name]
    res = CliRunner().invoke(cli, ["bench", str(edgefiq_artifacts["onnx"]), *FAST, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["rows"][0]["status"] == "ok"
    res = CliRunner().invoke(cli, ["bench", str(edgefiq_artifacts["onnx"]), *FAST, "-o", "-"])
    same = json.loads(res.stdout)      # --json and -o - print one document shape
    assert set(same) == set(doc) == {"environment", "settings", "rows"}
    assert same["rows"][0]["artifact"] == edgefiq_artifacts["onnx"].name


def test_bench_exits_nonzero_on_a_failed_row(edgefiq_artifacts, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    shutil.copy(str(edgefiq_artifacts["onnx"]) + ".json", str(bad) + ".json")
    res = CliRunner().invoke(cli, ["bench", str(edgefiq_artifacts["onnx"]), str(bad), *FAST, "-o",
                                   str(tmp_path / "b.json")])
    assert res.exit_code != 0 and "failed row" in str(res.exception)
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "failed"]     # the report is still written


def test_score_to_stdout_and_garbage_model(edgefiq_artifacts, tmp_path):  # noqa: F811
    res = CliRunner().invoke(cli, ["score", str(edgefiq_artifacts["onnx"]), str(edgefiq_artifacts["images"]),
                                   "-o", "-"])
    assert res.exit_code == 0, res.output
    assert list(csv.reader(res.stdout.splitlines()))[0] == ["path", "quality"] and not Path("-").exists()
    assert "not 32x32 or 112x112 aligned face crops" in res.stderr      # 40x40 images vs a 32x32 model
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\x00garbage")
    res = CliRunner().invoke(cli, ["score", str(bad), str(edgefiq_artifacts["images"]), "-o", "-"])
    assert res.exception is not None and "not a loadable onnx model" in str(res.exception)
    assert "\n" not in str(res.exception)


def test_score_landmarks_matching_no_image_is_an_error(edgefiq_artifacts, tmp_path):  # noqa: F811
    tsv = tmp_path / "marks.tsv"
    tsv.write_text("other/x.jpg\t" + " ".join(["10"] * 10) + "\n")
    res = CliRunner().invoke(cli, ["score", str(edgefiq_artifacts["onnx"]), str(edgefiq_artifacts["images"]),
                                   "-o", str(tmp_path / "q.csv"), "--landmarks", str(tsv)])
    assert res.exception is not None and "none of its 1 paths matches an image" in str(res.exception)
    assert not (tmp_path / "q.csv").exists()


def test_wrong_kinds_of_file_are_one_line_errors(edgefiq_artifacts, tmp_path):  # noqa: F811
    import subprocess
    import sys

    onnx = edgefiq_artifacts["onnx"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "edgefiq", *args], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path)

    cases = [  # (command, the one line it must print)
        (["export", str(onnx), "-t", "onnx", "-o", "out"], f"{onnx}: an exported ONNX model, not an edgefiq checkpoint"),
        (["prune", str(onnx), "--rho", "0.3", "-o", "p.pt"], f"{onnx}: an exported ONNX model, not an edgefiq checkpoint"),
        (["score", f"{onnx}.json", str(edgefiq_artifacts["images"]), "-o", "-"],
         f"{onnx}.json is the sidecar of {onnx}: pass {onnx} itself"),
        (["bench", "nope.onnx"], "artifact not found: nope.onnx"),
        (["bench", str(onnx), "--floor", "fps=100"], "no floor for 'fps'"),
    ]
    for args, message in cases:
        r = run(*args)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error")]
        assert r.returncode in (1, 2) and len(errors) == 1 and message in errors[0], (args, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == "", (args, r.stdout)   # no table before the error


def _json_verbs() -> set[str]:
    """Every verb (``group sub`` for subcommands) that has a ``--json`` option."""
    import click

    out: set[str] = set()

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        elif any("--json" in p.opts for p in cmd.params):
            out.add(" ".join(path))

    walk(cli, [])
    return out


@pytest.mark.slow
def test_every_json_verb_prints_one_json_document_on_stdout(edgefiq_artifacts, tmp_path):  # noqa: F811
    """Issue 28: each verb with --json, run through the CLI, prints exactly one JSON document on stdout."""
    import numpy as np

    from edgefiq.data.readers import list_images

    ckpt, onnx, images = (str(edgefiq_artifacts[k]) for k in ("ckpt", "onnx", "images"))
    rels = [p.relative_to(images).as_posix() for p in list_images(images)]
    labels = tmp_path / "labels.csv"
    labels.write_text("path,quality\n" + "".join(f"{r},{i / len(rels):.3f}\n" for i, r in enumerate(rels)))
    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(0).standard_normal((len(rels), 8)).astype(np.float32))
    index = tmp_path / "emb.csv"
    index.write_text("path\n" + "".join(f"{r}\n" for r in rels))
    t = str(tmp_path)
    runs = {
        "models": ["models"],
        "data inspect": ["data", "inspect", images],
        "data degrade": ["data", "degrade", images, "-o", f"{t}/deg", "--kinds", "pose", "--severities", "1"],
        "export": ["export", ckpt, "-t", "onnx", "-o", f"{t}/exp"],
        "quantize": ["quantize", ckpt, "-t", "onnx", "-p", "fp16", "-o", f"{t}/q"],
        "prune": ["prune", ckpt, "--rho", "0.25", "-o", f"{t}/pruned.pt"],
        "bench": ["bench", onnx, *FAST],
        "eval": ["eval", "--images", images, "--identities-from-folders", "--embeddings", str(emb),
                 "--embeddings-index", str(index), "--quality", str(labels), "-o", f"{t}/eval"],
        "distill": ["distill", "--images", images, "--labels", str(labels), "--student", "tiny_cnn",
                    "--epochs", "1", "-o", f"{t}/distill"],
        "run": ["run", str(Path(__file__).resolve().parents[1] / "recipes/quickstart.yaml"), "--only", "data",
                "-o", f"{t}/run"],
    }
    assert set(runs) == _json_verbs(), "a verb with --json is not exercised here"
    for verb, args in runs.items():
        res = CliRunner().invoke(cli, [*args, "--json"])
        assert res.exit_code == 0, (verb, res.output, res.exception)
        json.loads(res.stdout)   # one document, nothing else on stdout
