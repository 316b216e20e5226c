"""The eval stage of a run: every artifact, the teacher and a random baseline on the same comparisons.

On the validation identities (never seen in training), one FR model embeds every image
once; comparisons and scores come from the one evaluation, ``edgefiq.eval.sources``, so a
genuine pair made of a photo and its own degraded copy (the data stage's ``index.csv``
records the source photo) is left out, and the stage's ``protocol`` says how many. Each exported
artifact scores the images on its own runtime through ``edgefiq.runtime.score.score_paths`` (what
``edgefiq score`` runs), so the numbers are those of the file a device would run. Per source:
SRCC/PLCC against the teacher and the EDC pAUC (x1e3, discard up to ``eval.discard_limit``) at
every FMR of the recipe. Scores and curves are written to ``eval/`` for the report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.data.split import identity_subset
from edgefiq.eval.sources import EvalSet, QualitySource
from edgefiq.pipeline.recipe import EvalSection
from edgefiq.pipeline.records import EvalOutput, EvalRow, FamilyRow, score_file
from edgefiq.pipeline.runner import StageContext
from edgefiq.runtime.model import load_model
from edgefiq.runtime.score import score_paths

log = logging.getLogger("edgefiq.pipeline")


def evaluate_artifacts(ctx: StageContext, ev: EvalSection, seed: int = 0) -> EvalOutput:
    """Evaluate every exported artifact + teacher + random on the validation identities.

    Returns:
        the stage's record: one :class:`EvalRow` per source (SRCC/PLCC vs the teacher, pAUC and
        ``thresholds``, ``edgefiq.metrics.thresholds.discard_thresholds``, at every FMR), the
        per-family table, the protocol and the run-relative path of ``curves.json``.

    Example:
        >>> evaluate_artifacts(ctx, recipe.eval, recipe.seed).rows[0].source   # doctest: +SKIP
        'teacher'
    """
    from edgefiq.data.readers import identity_of, kind_index_of, read_labels_csv, source_index_of
    from edgefiq.utils import write_json

    images = ctx.path(ctx.outputs["data"].images)
    label_paths, teacher_q = read_labels_csv(ctx.path(ctx.outputs["label"].val), None)
    rels = [p.as_posix() for p in label_paths]
    if ev.max_images and len(rels) > ev.max_images:
        keep = identity_subset(rels, ev.max_images, seed)
        rels, teacher_q = [rels[k] for k in keep], teacher_q[keep]
    paths = [images / r for r in rels]
    ids = [identity_of(r) for r in rels]
    es, fr_desc = EvalSet(rels), None
    if ev.edc:
        from edgefiq.models.fr import embed_paths

        fr, fr_desc = load_eval_fr(ev)
        emb = embed_paths(fr, paths, batch_size=ev.batch_size)
        # the data stage's index.csv names each degraded copy's source photo: comparing a photo with
        # its own degraded copy is not a verification attempt, so those pairs are left out
        es = EvalSet.build(emb, rels, same_source=source_index_of(images), max_impostors=ev.max_impostors,
                           seed=seed)
        log.info("[eval] %d images, %d genuine / %d impostor comparisons (%s; %s)", len(paths), es.n_genuine,
                 es.n_impostor, es.protocol, fr_desc)

    sources: list[tuple[dict[str, Any], np.ndarray]] = [
        ({"source": "teacher", "kind": "teacher"}, teacher_q),
        ({"source": "random", "kind": "baseline"}, np.random.default_rng(seed).random(len(paths))),
    ]
    for art in ctx.outputs["export"].written:
        # the runtime's one scoring path (edgefiq.runtime.score): what `edgefiq score` and a device run
        _, scores = score_paths(load_model(ctx.path(art.path)), paths, batch_size=ev.batch_size, desc=art.key)
        _write_scores(ctx.stage_dir / "scores" / score_file(art.key), rels, scores)
        sources.append(({"source": art.key, "kind": "artifact", "path": art.path}, scores))

    rows, curves = source_rows(sources, es, ev)
    kinds = kind_index_of(images) if es.comparisons is not None else None
    by_degradation = family_rows(es, sources, kinds, ev) if kinds else None
    protocol = es.protocol if es.comparisons is not None else None
    write_json(ctx.stage_dir / "curves.json", curves)
    write_json(ctx.stage_dir / "eval.json", {"rows": rows, "fr_model": fr_desc, "protocol": protocol,
                                             "by_degradation": by_degradation})
    return EvalOutput([EvalRow.from_json(r) for r in rows],
                      [FamilyRow.from_json(r) for r in by_degradation] if by_degradation else None,
                      fr_desc, protocol, n_images=len(paths), n_identities=len(set(ids)), n_genuine=es.n_genuine,
                      n_impostor=es.n_impostor, curves=ctx.rel(ctx.stage_dir / "curves.json"))


def family_rows(es: EvalSet, sources: list[tuple[dict[str, Any], np.ndarray]], kinds: dict[str, str],
                ev: EvalSection) -> list[dict[str, Any]]:
    """pAUC per degradation family and on the clean images (``edgefiq.eval.core.by_family``) of the teacher,
    random and every artifact."""
    from edgefiq.eval.core import by_family

    picked = [QualitySource(info["source"], q) for info, q in sources]
    return by_family(es, picked, kinds, fmrs=ev.fmr, limit=ev.discard_limit, bootstrap=ev.bootstrap)


def source_rows(sources: list[tuple[dict[str, Any], np.ndarray]], es: EvalSet,
                ev: EvalSection) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One report row per source (``EvalSet.evaluate`` against the teacher) and the curves.

    A row has ``srcc``/``plcc`` vs the teacher, and per FMR ``pauc@<fmr>``, ``fmr_resolvable@<fmr>``
    and ``thresholds`` (the quality threshold that rejects each image fraction and the FNMR it leaves).
    """
    from edgefiq.metrics.thresholds import discard_thresholds

    comps = es.comparisons
    res = es.evaluate([QualitySource(info["source"], q) for info, q in sources], fmrs=ev.fmr,
                      limit=ev.discard_limit, conventions=(ev.convention,), reference="teacher", all_pairs=False)
    rows, curves = [], {}
    for info, q in sources:
        row, name = dict(info), info["source"]
        row["srcc"] = res.correlation("teacher", name)
        row["plcc"] = res.correlation("teacher", name, "plcc")
        for fmr in ev.fmr if comps is not None else ():
            r = res.row(name, fmr, ev.convention)
            row[f"pauc@{fmr:g}"] = r["pauc_x1e3"]
            if r["pauc_x1e3"] is None:   # non-finite scores
                continue
            row[f"fmr_resolvable@{fmr:g}"] = bool(r["fmr_resolvable"])
            row.setdefault("thresholds", []).extend(discard_thresholds(comps, q, fmr))
            c = next(c for c in res.curves if (c["source"], c["fmr"]) == (name, fmr))
            curves.setdefault(f"{fmr:g}", {})[name] = {"discard": c["discard"], "fnmr": c["fnmr"]}
        rows.append(row)
    return rows, curves


def load_eval_fr(ev: EvalSection) -> tuple[Any, str]:
    """The FR model of the eval section and a one-line description of it.

    With ``fr_model`` a file, ``edgefiq.models.fr.load_fr_model``; with only ``fr_arch``, a
    randomly initialised network of that architecture (seeded), for the synthetic demo.
    """
    from edgefiq.errors import RecipeError

    if ev.fr_model:
        from edgefiq.models.fr import load_fr_model

        fr = load_fr_model(ev.fr_model, arch=ev.fr_arch)
        return fr, f"{getattr(fr, 'arch', ev.fr_arch)} ({Path(ev.fr_model).name})"
    if ev.fr_arch == "pixels":
        return PixelEmbedding(), ("pixel-thumbnail embedding (16x16 colour thumbnail, zero-mean): a stand-in for "
                                  "an FR model on the synthetic sample only")
    if ev.fr_arch:
        import torch

        from edgefiq.data.preprocess import Preprocess
        from edgefiq.models.fr import DEFAULT_PREPROCESS
        from edgefiq.registry import FR_MODELS

        torch.manual_seed(ev.fr_seed)
        fr = FR_MODELS.get(ev.fr_arch)()
        fr.eval()
        fr.preprocess = DEFAULT_PREPROCESS.get(ev.fr_arch, Preprocess())  # type: ignore[assignment]
        return fr, f"{ev.fr_arch} randomly initialised (seed {ev.fr_seed}; demo only, not a trained FR model)"
    raise RecipeError("eval: set eval.fr_model (a face recognition model file) or eval.fr_arch")


def _pixel_module() -> Any:
    import torch
    from torch import nn

    class _Pixels(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = nn.functional.adaptive_avg_pool2d(x, 16).flatten(1)
            return t - t.mean(dim=1, keepdim=True)

    return _Pixels


def PixelEmbedding() -> Any:  # noqa: N802 - behaves like a class for callers
    """A face-recognition stand-in for the synthetic sample: the zero-mean 16x16 colour thumbnail.

    Synthetic identities differ in geometry and colour, so thumbnails of one identity are
    closer than those of two; degradations move a thumbnail away from its identity. That
    makes the EDC computation demonstrable without shipping an FR model. Never use it on
    real faces.
    """
    from edgefiq.data.preprocess import Preprocess

    m = _pixel_module()()
    m.preprocess = Preprocess(size=(112, 112))
    m.eval()
    return m


def _write_scores(path: Path, rels: list[str], scores: np.ndarray) -> None:
    from edgefiq.data.readers import write_labels_csv

    path.parent.mkdir(parents=True, exist_ok=True)
    write_labels_csv(path, rels, scores, fmt=".8g")