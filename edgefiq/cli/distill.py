"""``edgefiq distill``: train a student to score faces like a teacher (wraps ``edgefiq.distill.distill``)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click

from edgefiq.cli import echo_table, json_option
from edgefiq.errors import UsageError
from edgefiq.pipeline.recipe import distill_mapping, load_recipe
from edgefiq.recipe import apply_overrides, from_mapping, load_yaml
from edgefiq.registry import LOSSES, STUDENTS

HELP = """Train a small student to reproduce a teacher's quality scores.

Data: an images root plus a teacher label CSV (path,quality), or --teacher NAME
for an online teacher. The validation split is identity-disjoint by default.
Writes OUT/best.pt, last.pt, metrics.jsonl, recipe.yaml, model.json; --resume
continues an interrupted run exactly. Flags override the --recipe file; --set
overrides any recipe key (e.g. --set optim.schedule=step).

\b
Students: {students}
Weights:  {weights}
Losses:   {losses}
\b
Example:
  edgefiq distill --images faces/ --labels labels.csv \\
      --student mobilenetv3_small_100 --epochs 10 -o runs/distill
  edgefiq distill --recipe distill.yaml --loss plcc=1 --loss rank=0.5 -o runs/d --resume
  edgefiq distill --recipe quickstart.yaml --images faces/ --labels labels.csv -o runs/q
  torchrun --nproc_per_node 2 -m edgefiq distill --recipe distill.yaml -o runs/ddp
  edgefiq distill --recipe distill.yaml --feature-targets fr_emb.npz \\
      --feature-kd 1.0 -o runs/d-fkd
  edgefiq distill --images faces/ --labels labels.csv --student face_trunk \\
      --weights face --set finetune.trunk_lr_mult=0.5 -o runs/face
  edgefiq distill --images faces-degraded/ --labels severity.csv \\
      --index faces-degraded/index.csv --leave-out misalignment -o runs/no-misalignment
"""


def _build_config(recipe: str | None, flags: dict[str, Any], sets: tuple[str, ...]) -> Any:
    from edgefiq.distill.config import DistillConfig  # imports torch: only when a run is configured

    data: dict[str, Any] = {}
    if recipe:
        data = load_yaml(recipe) or {}
        if isinstance(data.get("distill"), dict):  # a pipeline recipe (edgefiq run): one student's settings
            data = _pipeline_student(recipe, flags.pop("student", None))
    cfg = from_mapping(DistillConfig, data, "distill" if recipe else "")

    losses = flags.pop("_losses", None)
    overrides = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]  # JSON is YAML: no re-typing
    cfg = apply_overrides(cfg, overrides + list(sets))
    if losses:
        parsed = {}
        for item in losses:
            name, _, w = item.partition("=")
            LOSSES.get(name)
            try:
                parsed[name] = float(w) if w else 1.0
            except ValueError:
                raise UsageError(f"--loss {item!r}: weight must be a number (e.g. --loss rank=0.5)") from None
        cfg = dataclasses.replace(cfg, losses=parsed)
    return cfg


def _pipeline_student(recipe: str, wanted: str | None) -> dict[str, Any]:
    """The ``DistillConfig`` mapping of one student of a pipeline recipe (``--student`` picks it by name or arch).

    Training settings come from ``distill.defaults`` and the student's own keys, exactly as ``edgefiq run``
    merges them; the data (images, labels or teacher) comes from the flags. A ``--student`` that is not in
    the recipe trains that architecture with the first student's settings.
    """
    run = load_recipe(recipe)
    students = run.distill.students
    chosen = next((s for s in students if wanted in (s.label, s.arch)), None) if wanted else students[0]
    if chosen is None:  # another architecture, with the first student's settings
        return {**distill_mapping(run.distill, students[0], run.seed), "student": wanted}
    return {**distill_mapping(run.distill, chosen, run.seed), "student": chosen.arch}


class _DistillCommand(click.Command):
    """Fills the student and loss lists into the help only when help is shown (they need torch)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        try:
            students, losses = ", ".join(STUDENTS.names()), ", ".join(LOSSES.names())
            from edgefiq.models.weights import WEIGHTS  # imports torch (the help lists the students by design)

            weights = "none, PATH, " + ", ".join(f"{n.split('.')[1]} ({n.split('.')[0]})" for n in WEIGHTS.names())
        except ImportError as e:   # torch-free install: the help still works
            students = losses = weights = f"(listed when {e.name or 'torch'} is installed: pip install edgefiq)"
        self.help = HELP.format(students=students, losses=losses, weights=weights)
        super().format_help_text(ctx, formatter)


@click.command(cls=_DistillCommand, help=HELP)
@click.option("--recipe", type=click.Path(dir_okay=False), help="YAML recipe: DistillConfig keys, or a pipeline "
              "recipe (edgefiq run), whose first student's settings (distill.defaults + its own keys; --student "
              "picks another) are used with the data given by the flags.")
@click.option("--images", help="Images root (label CSV paths are relative to it).")
@click.option("--labels", help="Teacher label CSV (path,quality).")
@click.option("--teacher", help="Online teacher name (labels computed on the fly).")
@click.option("--student", help="Student architecture (see list above).")
@click.option("--weights", help="Pretrained initialisation: none, imagenet, face or a state-dict PATH (see "
              "Weights above; files are hash-verified, nothing downloads).")
@click.option("--epochs", type=click.IntRange(min=1), help="Training epochs (recipe: optim.epochs).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per training step (optim.batch_size).")
@click.option("--lr", type=float, help="Peak learning rate (optim.lr).")
@click.option("--loss", "losses", multiple=True, metavar="NAME=WEIGHT", help="Loss term (repeatable); replaces "
              "the recipe's losses.")
@click.option("--val-identities", help="Text file of validation identities (one per line).")
@click.option("--val-labels", help="Explicit validation label CSV.")
@click.option("--feature-targets", type=click.Path(dir_okay=False), help="Feature distillation targets: .npz "
              "with paths + vectors (one vector per training image, e.g. FR embeddings).")
@click.option("--feature-kd", "feature_kd", type=float, metavar="WEIGHT", help="Weight of the feature "
              "distillation term (student's pooled features -> targets through a training-only projection).")
@click.option("--index", "index", metavar="CSV", help="Degradation index of the images (the index.csv of "
              "edgefiq data degrade): each image's source photo, kind and severity.")
@click.option("--leave-out", "leave_out", multiple=True, metavar="KIND", help="Keep this degradation kind, family "
              "or group out of training (repeatable; needs --index); validation keeps it.")
@click.option("--device", help="cpu, cuda or auto.")
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads (default: the recipe's, else torch's choice).")
@click.option("--seed", type=int, help="Random seed: same seed, data and thread count = same weights.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any recipe key.")
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="Run folder (best.pt, last.pt, metrics.jsonl, ...).")
@click.option("--resume", is_flag=True, help="Continue the run in OUT from last.pt.")
@json_option
def distill(recipe: str | None, images: str | None, labels: str | None, teacher: str | None, student: str | None,
            weights: str | None, epochs: int | None, batch_size: int | None, lr: float | None, losses: tuple[str, ...],
            val_identities: str | None, val_labels: str | None, feature_targets: str | None,
            feature_kd: float | None, index: str | None, leave_out: tuple[str, ...], device: str | None,
            threads: int | None,
            seed: int | None, sets: tuple[str, ...], out: str, resume: bool) -> None:
    from edgefiq.distill import distill as run  # imports torch: only when training starts

    flags = {"data.images": images, "data.labels": labels, "data.teacher": teacher, "student": student,
             "weights": weights,
             "optim.epochs": epochs, "optim.batch_size": batch_size, "optim.lr": lr,
             "data.val_identities": val_identities, "data.val_labels": val_labels,
             "feature_kd.targets": feature_targets, "feature_kd.weight": feature_kd, "data.index": index,
             "data.leave_out": list(leave_out) or None, "device": device,
             "threads": threads, "seed": seed}
    cfg = _build_config(recipe, {**flags, "_losses": losses}, sets)
    res = run(cfg, out, resume=resume)
    m = res.metrics
    echo_table([{"epoch": m.get("epoch"), "val_srcc": m.get("val_srcc"), "val_plcc": m.get("val_plcc"),
                 "val_krcc": m.get("val_krcc"), "best": str(res.best)}], title="best epoch")
