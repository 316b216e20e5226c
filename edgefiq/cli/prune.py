"""``edgefiq prune``: prune a checkpoint at one ratio, or sweep ratios into one table."""

from __future__ import annotations

from pathlib import Path

import click

from edgefiq.cli import echo_info, echo_table, json_mode, json_option, must_exist
from edgefiq.errors import UsageError


@click.command("prune")
@json_option
@click.argument("ckpt", type=click.Path(dir_okay=False), callback=must_exist("checkpoint"))
@click.option("--rho", required=True, help="Pruning ratio (0.5), or a sweep: list 0.3,0.5 or range 0.1:0.9:0.1.")
@click.option("-m", "--method", "methods", multiple=True, default=("structured",), show_default=True,
              type=click.Choice(["structured", "l1", "random"]),
              help="structured: remove channels (torch-pruning); l1/random: zero weights. Repeat to sweep several.")
@click.option("--importance", type=click.Choice(["l1", "l2"]), default="l1", show_default=True,
              help="structured: channel-group magnitude norm.")
@click.option("--scope", type=click.Choice(["global", "layer", "channel", "normalized"]), default="global",
              show_default=True,
              help="Rank across layers (global), prune rho of every layer, or (l1/random) of every output channel "
                   "(channel), or rank across layers relative to each output channel's norm (normalized).")
@click.option("--round-to", type=int, default=8, show_default=True,
              help="structured: keep channel counts multiples of this (odd counts run slower on CPU runtimes); "
                   "0 = no rounding.")
@click.option("--ignore", "ignored", multiple=True, help="Module name (or prefix) never pruned; repeatable.")
@click.option("--steps", type=int, default=1, show_default=True, help="structured: iterative pruning steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (random method).")
@click.option("--finetune-epochs", type=int, default=0, show_default=True,
              help="Recovery fine-tuning epochs (distillation loop) after pruning.")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Images root for recovery (and for SRCC in a sweep unless --eval-images).")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="Teacher labels CSV for recovery (default: distil from the unpruned model).")
@click.option("--kd", type=click.Choice(["online", "offline"]), default="online", show_default=True,
              help="Recovery without --labels: the unpruned model scores every augmented view (online) or the "
                   "original images once (offline, faster; flipped/shifted views then reuse the unflipped score).")
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Recovery learning rate.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Recovery batch size.")
@click.option("--eval-images", type=click.Path(file_okay=False), default=None,
              help="Sweep: held-out images for SRCC vs the unpruned model (and pAUC).")
@click.option("--max-eval-images", type=int, default=None, help="Sweep: score at most this many images.")
@click.option("--fr-model", type=click.Path(dir_okay=False), default=None,
              help="Sweep: FR model for pAUC (identities = first folder of each image path).")
@click.option("-o", "--output", "out", required=True, type=click.Path(),
              help="Output checkpoint (one ratio) or output folder (sweep).")
def prune(ckpt: str, rho: str, methods: tuple[str, ...], importance: str, scope: str, round_to: int | None,
          ignored: tuple[str, ...], steps: int, seed: int, finetune_epochs: int, images: str | None,
          labels: str | None, kd: str, lr: float, batch_size: int, eval_images: str | None, max_eval_images: int | None,
          fr_model: str | None, out: str) -> None:
    """Prune checkpoint CKPT: remove channels (structured) or zero weights (l1, random).

    One ratio writes OUT (an edgefiq checkpoint that reloads with its pruned shapes) and
    OUT.json (method, rho, sparsity, params/MACs before and after, recovery metrics).
    A ratio list or range writes OUT/sweep.json + OUT/sweep.md and prints the table:
    params, MACs, file and gzip sizes, onnxruntime latency at 1 thread, SRCC vs the
    unpruned model (with --eval-images or --images), pAUC (with --fr-model).

    \b
    Example:
      edgefiq prune runs/distill/best.pt --rho 0.5 -o pruned.pt
      edgefiq prune best.pt --rho 0.5 --finetune-epochs 3 --images faces/ -o pruned_ft.pt
      edgefiq prune best.pt --rho 0.1:0.9:0.1 -m structured -m l1 -m random --eval-images heldout/ -o sweep/
    """
    # imports torch (pruning): only when the verb runs, so `edgefiq prune --help` stays light
    from edgefiq.pipeline.pruning import prune_checkpoint
    from edgefiq.pipeline.recovery import RecoveryConfig
    from edgefiq.pipeline.sweep import SweepConfig, format_markdown, parse_rhos, sweep

    rhos = parse_rhos(rho)
    if finetune_epochs and not images:
        raise UsageError("--finetune-epochs needs --images (the recovery training images)")
    recovery = RecoveryConfig(epochs=finetune_epochs, images=images, labels=labels, lr=lr, batch_size=batch_size,
                              seed=seed, online_kd=kd == "online")
    opts = dict(importance=importance, scope=scope, round_to=round_to or None, ignored_layers=tuple(ignored),
                iterative_steps=steps, seed=seed)
    if len(rhos) == 1 and len(methods) == 1 and ":" not in rho:
        path = prune_checkpoint(ckpt, out, rho=rhos[0], method=methods[0], recovery=recovery, **opts)
        if json_mode():   # the record written beside the checkpoint; stdout stays JSON
            click.echo(Path(path).with_suffix(".json").read_text())
        echo_info(f"wrote {path} and {Path(path).with_suffix('.json')}")
        return
    cfg = SweepConfig(rhos=tuple(rhos), methods=tuple(dict.fromkeys(methods)), prune=opts, recovery=recovery,
                      eval_images=eval_images or images, max_eval_images=max_eval_images, fr_model=fr_model)
    rows = sweep(ckpt, out, cfg)

    echo_table(rows) if json_mode() else click.echo(format_markdown(rows))
    echo_info(f"wrote {Path(out) / 'sweep.json'} and {Path(out) / 'sweep.md'}")
