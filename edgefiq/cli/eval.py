"""``edgefiq eval``: EDC/pAUC and correlations of several quality sources on the same comparisons."""

from __future__ import annotations

from pathlib import Path

import click

from edgefiq.cli import echo_info, echo_table, json_mode, json_option
from edgefiq.errors import UsageError
from edgefiq.eval import evaluate


def _fmrs(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers like 1e-3,1e-4, got {value!r}") from None
    if not out or any(not 0 < f < 1 for f in out):
        raise click.BadParameter(f"FMRs must be in (0, 1), got {value!r}")
    return out


def _fractions(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated fractions like 0.05,0.1, got {value!r}") from None
    if any(not 0 < f < 1 for f in out):
        raise click.BadParameter(f"fractions must be in (0, 1), got {value!r}")
    return out


@click.command("eval")
@json_option
@click.option("--images", type=click.Path(file_okay=False), required=True, help="Images root the CSV paths are relative to.")
@click.option("--identities-from-folders", is_flag=True, help="All genuine/impostor pairs of <identity>/<image> folders.")
@click.option("--pairs", type=click.Path(dir_okay=False), default=None, help="LFW-style pairs.txt instead.")
@click.option("--fr-model", type=click.Path(dir_okay=False), default=None, help="FR model (.pt state dict or .onnx).")
@click.option("--embeddings", type=click.Path(dir_okay=False), default=None, help="Precomputed embeddings .npy [N, D].")
@click.option("--embeddings-index", type=click.Path(dir_okay=False), default=None,
              help="CSV with a 'path' column giving the image of each .npy row (default: sorted image list).")
@click.option("--quality", "quality_csvs", multiple=True, type=click.Path(dir_okay=False),
              help="A path,quality CSV; repeat for several sources.")
@click.option("--name", "names", multiple=True, help="Name per --quality (default: the CSV file stem).")
@click.option("--reference", default=None, help="Source name to correlate every other source against (default: first).")
@click.option("--random-baseline", is_flag=True, help="Add a seeded uniform random quality source 'random'.")
@click.option("--fmr", "fmrs", default="1e-3", show_default=True, callback=_fmrs, help="Target FMRs, comma-separated.")
@click.option("--limit", type=click.FloatRange(0, 1, min_open=True), default=0.3, show_default=True,
              help="pAUC discard limit.")
@click.option("--max-impostors", type=click.IntRange(min=1), default=None,
              help="Sample this many impostor pairs (default: all; ~20 bytes per pair).")
@click.option("--same-source-index", type=click.Path(dir_okay=False), default=None,
              help="CSV path,source (e.g. a degrade index.csv): leave out pairs of copies of the same photo.")
@click.option("--save-embeddings", type=click.Path(file_okay=False), default=None,
              help="Keep the FR embeddings here (embeddings.npy + embeddings_index.csv) for --embeddings reruns.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the random baseline and sampling.")
@click.option("--reject-fractions", default="0.01,0.02,0.05,0.1,0.2,0.3", show_default=True,
              callback=_fractions, help="Image fractions of the threshold table: per FMR, the quality threshold "
              "that rejects each fraction and the FNMR it leaves.")
@click.option("--by", "by", type=click.Choice(["degradation"]), default=None,
              help="Also a pAUC table per degradation family (clean only, then each family with the clean "
                   "images), from the index.csv of `edgefiq data degrade` (IMAGES/index.csv or --same-source-index).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --by degradation: identity resamples for a 90% interval of each source's pAUC relative "
                   "to the reference, per family (1000 is usual; 0 = none).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Report folder: report.json, report.md, edc.png.")
def eval_cmd(images: str, identities_from_folders: bool, pairs: str | None, fr_model: str | None,
             embeddings: str | None, embeddings_index: str | None, quality_csvs: tuple[str, ...],
             names: tuple[str, ...], reference: str | None, random_baseline: bool, fmrs: list[float], limit: float,
             max_impostors: int | None, same_source_index: str | None, save_embeddings: str | None, seed: int,
             reject_fractions: list[float], by: str | None, bootstrap: int, out_dir: str) -> None:
    """Compare quality sources by EDC/pAUC (both threshold conventions) and SRCC/PLCC.

    Every source is evaluated on the same comparisons: cosine similarities of the FR
    model's embeddings; pair quality = min of the two image qualities. Lower pAUC is better.
    The report also has, per FMR and source, the quality threshold that rejects each
    --reject-fractions share of the images and the FNMR it leaves: a gate read off the EDC.

    \b
    Example:
      edgefiq eval --images ../shared/data/lfw-dev/aligned112 --identities-from-folders \\
        --fr-model ../shared/data/models/mobilefacenet/mobilefacenet.pt \\
        --quality prefiqs.csv --quality student.csv --name prefiqs --name student \\
        --reference prefiqs --random-baseline --fmr 1e-3,1e-4 -o report/
      edgefiq score faces/ -o q.csv
      edgefiq eval --images faces/ --identities-from-folders --fr-model mobilefacenet.pt --quality q.csv \\
        --save-embeddings emb/ -o report-fr/
      edgefiq eval --images faces/ --pairs pairs.txt --embeddings emb/embeddings.npy \\
        --embeddings-index emb/embeddings_index.csv --quality q.csv -o report-pairs/
      edgefiq data degrade faces/ -o capture/ --kinds capture --per-image 2
      edgefiq score capture/ -o capture.csv
      edgefiq eval --images capture/ --identities-from-folders --fr-model mobilefacenet.pt \\
        --quality capture.csv --random-baseline --by degradation --bootstrap 1000 -o report-capture/
    """
    if names and len(names) != len(quality_csvs):
        raise UsageError(f"--name given {len(names)} times but --quality {len(quality_csvs)} times")
    if bootstrap and by != "degradation":
        raise UsageError("--bootstrap needs --by degradation (its intervals are per degradation family)")
    labels = list(names) if names else [Path(q).stem for q in quality_csvs]
    kind_index = (same_source_index or str(Path(images) / "index.csv")) if by == "degradation" else None
    rep = evaluate(images, qualities=list(zip(labels, quality_csvs)), identities_from_folders=identities_from_folders,
                   pairs=pairs, fr_model=fr_model, embeddings=embeddings, embeddings_index=embeddings_index,
                   reference=reference, random_baseline=random_baseline, fmrs=fmrs, limit=limit,
                   max_impostors=max_impostors, same_source_index=same_source_index, save_embeddings=save_embeddings,
                   seed=seed, out_dir=out_dir, reject_fractions=reject_fractions, by_degradation=kind_index,
                   bootstrap=bootstrap)

    echo_table([{k: r[k] for k in ("source", "fmr", "convention", "pauc_x1e3", "pauc_norm", "fnmr_at_0")}
                for r in rep["pauc"]], title="pAUC x1e3 (lower is better)")
    if "by_degradation" in rep and not json_mode():
        echo_table([{"family": r["family"], "images": r["n_images"],
                     **{f"{src} @{fmr}": v for src, per in r["pauc"].items() for fmr, v in per.items()}}
                    for r in rep["by_degradation"]], title="pAUC x1e3 by degradation family (fixed threshold)")
    echo_info(f"wrote {Path(out_dir) / 'report.md'}, report.json, edc.png")
