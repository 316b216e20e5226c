"""``edgefiq bench``: latency, throughput, size and memory of artifacts on every backend (torch-free)."""

from __future__ import annotations

import json

import click

from edgefiq.bench import benchmark, benchmark_isolated, check_floors, environment
from edgefiq.bench.core import FLOOR_METRICS, failed_rows, select_artifacts
from edgefiq.bench.remote import benchmark_remote
from edgefiq.bench.report import print_table, write_bench_report
from edgefiq.errors import EdgefiqError, UsageError


def _ints(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,2,4, got {value!r}") from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"values must be >= 1, got {value!r}")
    return out


def _floors(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for v in value:
        k, sep, num = v.partition("=")
        try:
            out[k.strip()] = float(num)
        except ValueError:
            raise click.BadParameter(f"expected metric=value like throughput=100 or srcc=0.9, got {v!r}") from None
        if not sep or not k.strip():
            raise click.BadParameter(f"expected metric=value, got {v!r}")
        if k.strip() not in FLOOR_METRICS:
            raise click.BadParameter(f"no floor for {k.strip()!r}: a floor bounds a metric where higher is better, "
                                     f"{' or '.join(FLOOR_METRICS)} (e.g. throughput=200)")
    return out


@click.command("bench")
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--threads", default="1", show_default=True, callback=_ints,
              help="Runtime threads; bench sweeps, so a comma list (1,2,4) gives one row per value.")
@click.option("--batch-size", "batches", default="1", show_default=True, callback=_ints,
              help="Images per call; a comma list (1,8) gives one row per value.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, or ssh://user@host[:port].")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Untimed calls after the first.")
@click.option("--min-runs", type=click.IntRange(min=1), default=30, show_default=True, help="Minimum timed calls.")
@click.option("--min-time", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Minimum timed seconds per setting (both minimums must be reached).")
@click.option("--images", type=click.Path(file_okay=False), default=None, help="Images for the accuracy columns.")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="path,quality CSV to correlate with (SRCC column).")
@click.option("--fr-model", type=click.Path(dir_okay=False), default=None,
              help="FR model for the pAUC column (identity folders of --images; needs torch).")
@click.option("--embeddings", type=click.Path(dir_okay=False), default=None, help="Precomputed embeddings instead.")
@click.option("--embeddings-index", type=click.Path(dir_okay=False), default=None, help="path CSV of --embeddings rows.")
@click.option("--floor", "floors", multiple=True, callback=_floors,
              help="Fail (exit 1) if metric < value in any row, e.g. throughput=200, srcc=0.9. Repeatable.")
@click.option("--remote-python", default="python3", show_default=True, help="Python on the ssh device.")
@click.option("--ssh-key", type=click.Path(dir_okay=False), default=None, help="Private key for ssh devices.")
@click.option("--ssh-option", "ssh_options", multiple=True, help="Extra ssh -o option, e.g. StrictHostKeyChecking=no.")
@click.option("--isolate", is_flag=True, help="One process per artifact, so peak RSS is per artifact.")
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Interleaved timing rounds (all artifacts, then again), each with 1/N of --min-time; "
                   "p50 = median of the rounds' medians. Steadier on a shared or small machine.")
@click.option("--no-png", is_flag=True, help="Do not write the PNG plot.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON on stdout instead of a table: {environment, settings, rows}, as -o - does.")
@click.option("-o", "--output", "out_json", type=click.Path(allow_dash=True), default=None,
              help="Report: a .json file (.md and .png next to it), a folder (gets bench.json/.md/.png), "
                   "or - for JSON on stdout. Default: print the table only.")
def bench(artifacts: tuple[str, ...], threads: list[int], batches: list[int], device: str, warmup: int, min_runs: int,
          min_time: float, images: str | None, reference: str | None, fr_model: str | None, embeddings: str | None,
          embeddings_index: str | None, floors: dict[str, float], remote_python: str, ssh_key: str | None,
          ssh_options: tuple[str, ...], isolate: bool, rounds: int, no_png: bool, as_json: bool,
          out_json: str | None) -> None:
    """Benchmark ARTIFACTS: p50/p90/p99 latency, throughput, load/first-call time, size, peak RSS.

    Every backend is timed by the same routine (warm-up, then until both --min-runs and
    --min-time are reached). Status: ok / failed validation (sidecar parity failed) /
    failed (reason) / unavailable (e.g. cuda without a GPU). The exit code is 1 if any row
    failed. Sidecars (.json) and OpenVINO .bin weights among ARTIFACTS are skipped, so
    `bench export/*` works. Runs without torch.

    \b
    Example:
      edgefiq bench export/student.onnx export/student.xml export/student.tflite \\
        --threads 1,2 --batch-size 1,8 -o bench.json
      edgefiq bench export/* -o results/        # a folder: results/bench.json, .md, .png
      edgefiq bench export/student_int8.onnx --json | jq '.rows[0].p50_ms'
      edgefiq bench student_int8.onnx --floor throughput=200 -o bench.json
      edgefiq bench a.onnx b.xml c.tflite --isolate --rounds 5 --min-time 5 -o bench.json
      edgefiq bench student.onnx --images faces/ --reference teacher.csv -o bench.json
      edgefiq bench student.onnx --device ssh://pi@raspberrypi --remote-python python3 -o pi.json
    """
    artifacts = select_artifacts(artifacts)

    settings = {"threads": threads, "batch": batches, "device": device, "warmup": warmup, "min_runs": min_runs,
                "min_time_s": min_time, "isolated": isolate, "rounds": rounds}
    if device.startswith("ssh://"):
        if rounds > 1:
            raise UsageError("--rounds is not supported on ssh devices yet; run it locally or with --rounds 1")
        if images or reference or fr_model or embeddings:
            raise UsageError("accuracy columns are not computed on ssh devices; run them locally")

        rows, env = benchmark_remote(artifacts, device, threads=threads, batches=batches, warmup=warmup,
                                     min_runs=min_runs, min_time_s=min_time, remote_python=remote_python,
                                     ssh_key=ssh_key, ssh_options=ssh_options)
    else:
        run = benchmark_isolated if isolate else benchmark
        rows = run(artifacts, threads=threads, batches=batches, device=device, warmup=warmup,
                   min_runs=min_runs, min_time_s=min_time, images=images, reference=reference,
                   fr_model=fr_model, embeddings=embeddings, embeddings_index=embeddings_index, rounds=rounds)
        env = environment()
    if out_json == "-" or as_json:
        click.echo(json.dumps({"environment": env, "settings": settings, "rows": rows}, indent=2, default=str))
    else:
        print_table(rows)
    if out_json and out_json != "-":
        paths = write_bench_report(rows, out_json, env=env, settings=settings, png=not no_png)
        click.echo("wrote " + ", ".join(str(p) for p in paths.values()), err=as_json)
    bad = (check_floors(rows, floors) if floors else []) + failed_rows(rows)
    if bad:
        raise EdgefiqError(f"{len(bad)} failed row(s): " + "; ".join(bad))
