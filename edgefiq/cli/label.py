"""``edgefiq label``: score every image of a folder with a quality teacher (one call to ``label_images``)."""

from __future__ import annotations

import json
import os

import click


@click.command()
@click.argument("images", type=click.Path(file_okay=False))
@click.option("--teacher", required=True,
              help="prefiqs | norm | serfiq | severity | model | csv | ensemble.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="Output labels CSV.")
@click.option("--fr-model", type=click.Path(dir_okay=False), help="Face recognition weights (.pt state dict or .onnx).")
@click.option("--arch", help="Force the FR architecture (mobilefacenet, iresnet18/34/50/100).")
@click.option("--method", type=click.Choice(["l1", "random", "structured"]), help="prefiqs: pruning method [l1].")
@click.option("--rho", type=float, help="prefiqs: pruning ratio in (0,1) [0.4].")
@click.option("--scope", type=click.Choice(["global", "layer", "channel", "normalized"]),
              help="prefiqs: unstructured pruning scope [normalized for l1, global otherwise]; channel "
                   "(rho of every output channel) and normalized (global, magnitudes relative to their output "
                   "channel's norm) prune the same weights in a .pt and its BatchNorm-folded .onnx.")
@click.option("--seed", type=int, help="prefiqs (random pruning) / serfiq (dropout masks) seed [0].")
@click.option("--runtime", type=click.Choice(["auto", "onnxruntime", "torch"]),
              help="prefiqs: run the FR passes with onnxruntime (exported once, cached) or torch [auto].")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]),
              help="prefiqs, norm, serfiq: bf16 runs the FR passes with OpenVINO in bfloat16 on CPUs with native "
                   "support (1.4-1.6x faster; scores within bfloat16 rounding of fp32) [fp32].")
@click.option("--fold-bn/--no-fold-bn", default=None,
              help="prefiqs: prune the BatchNorm-folded weights, as in an exported .onnx [no-fold-bn].")
@click.option("--passes", "m", type=int, help="serfiq: stochastic forward passes (SER-FIQ's m) [20].")
@click.option("--dropout", type=float, help="serfiq: dropout rate [0.5].")
@click.option("--score", type=click.Choice(["sigmoid", "distance"]), help="serfiq: score form [sigmoid].")
@click.option("--batch-stats/--no-batch-stats", default=None, help="norm: AdaFace (norm-mean)/std clipped to [-1,1].")
@click.option("--flip/--no-flip", default=None, help="Flip-sum embeddings (prefiqs, norm) [no-flip].")
@click.option("--index", type=click.Path(dir_okay=False), help="severity: index.csv [IMAGES/index.csv].")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="csv: your labels CSV (path,quality).")
@click.option("--column", help="csv: score column [quality].")
@click.option("--model", type=click.Path(dir_okay=False), help="model: your scalar model (.onnx, TorchScript, checkpoint).")
@click.option("--ensemble", "members", multiple=True,
              help="ensemble member NAME[:WEIGHT][,KEY=VALUE...]; repeat. Other options go to every member taking them.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:i].")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Images per forward pass.")
@click.option("--workers", type=int, default=0, show_default=True, help="Image-decoding worker processes.")
@click.option("--chunk-size", type=int, default=256, show_default=True, help="Images per resumable chunk.")
@click.option("--on-bad-image", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Stop at an unreadable image, or skip it and list it in OUTPUT_STEM.skipped.txt next to "
                   "OUTPUT (labels.csv -> labels.skipped.txt).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Embedding/pruned-model cache [~/.cache/edgefiq].")
@click.option("--no-cache", is_flag=True, help="Do not read or write the embedding cache.")
@click.option("--no-resume", is_flag=True, help="Ignore finished chunks of an interrupted run.")
@click.option("--threads", type=int, help="torch CPU threads (default: torch's choice).")
def label(images: str, teacher: str, out: str, fr_model: str | None, arch: str | None, method: str | None,
          rho: float | None, scope: str | None, seed: int | None, runtime: str | None, precision: str | None,
          fold_bn: bool | None,
          m: int | None, dropout: float | None,
          score: str | None, batch_stats: bool | None, flip: bool | None, index: str | None, csv_path: str | None,
          column: str | None, model: str | None, members: tuple[str, ...], device: str, batch_size: int,
          workers: int, chunk_size: int, on_bad_image: str, cache_dir: str | None, no_cache: bool,
          no_resume: bool, threads: int | None) -> None:
    """Label every image under IMAGES with a quality teacher; write OUTPUT (path,quality[,columns]).

    Also writes OUTPUT.json (the teacher's full configuration, counts, images/s). Runs are
    resumable: rerun the same command after an interruption. Under torchrun every rank
    labels a shard and rank 0 merges.

    \b
    Example:
      edgefiq label ../shared/data/lfw-dev/aligned112 --teacher prefiqs \\
          --fr-model ../shared/data/models/mobilefacenet/mobilefacenet.pt --method l1 --rho 0.4 -o labels.csv
      edgefiq label faces/ --teacher prefiqs --fr-model MobileFaceNet.onnx --method l1 --rho 0.4 -o labels.csv
      edgefiq label faces/ --teacher prefiqs --fr-model mfn.pt --precision bf16 -o labels.csv
      edgefiq label faces/ --teacher serfiq --fr-model mfn.pt --passes 20 --dropout 0.5 -o serfiq.csv
      edgefiq label faces-degraded/ --teacher severity -o severity.csv
      edgefiq label faces/ --teacher ensemble --fr-model mfn.pt --ensemble prefiqs:2 --ensemble norm -o ens.csv
      torchrun --nproc-per-node 2 -m edgefiq label faces/ --teacher norm --fr-model mfn.pt -o norm.csv
    """
    if threads:
        import torch  # heavy: only to set the thread count

        torch.set_num_threads(threads)
    from edgefiq.teachers import label_images  # imports torch: only when the verb runs

    options = {"fr_model": fr_model, "arch": arch, "method": method, "rho": rho, "scope": scope, "seed": seed,
               "runtime": runtime, "precision": precision, "fold_bn": fold_bn, "m": m, "dropout": dropout, "score": score, "batch_stats": batch_stats, "flip": flip, "index": index,
               "csv": csv_path, "column": column, "model": model, "members": list(members) or None,
               "cache": False if no_cache else None}
    path = label_images(images, teacher, options, out, batch_size=batch_size, device=device,
                        on_bad_image=on_bad_image, resume=not no_resume, workers=workers, chunk_size=chunk_size,
                        cache_dir=cache_dir)

    if int(os.environ.get("RANK", "0")) == 0:
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        speed = meta.get("images_per_second")
        click.echo(f"labelled {meta['n_labelled']} images ({meta['n_skipped']} skipped) with {teacher} -> {path}"
                   + (f" [{speed:.1f} img/s]" if speed else ""))
