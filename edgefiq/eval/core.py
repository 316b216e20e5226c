"""``evaluate``: several quality sources on the same face comparisons -> EDC/pAUC + correlations.

Steps: (1) the image set is the images under ``images_root`` that every quality source
(and the embeddings index) covers; (2) embeddings come from an FR model
(``edgefiq.models.fr``, needs torch) or a precomputed ``.npy``; (3) comparisons are all
genuine/impostor pairs of the identity folders or the pairs of an LFW-style pairs file,
without pairs of two copies of one photo when a same-source index is given; (4) per source,
FMR and convention: the EDC curve and pAUC (x1e3, plain and normalised; definitions in
``edgefiq.metrics.edc``); (5) SRCC/PLCC/KRCC between every two sources. Steps (3)-(5) are
the one evaluation every caller shares (``edgefiq.eval.sources``).
The report writer (``edgefiq.eval.report``) turns the result into report.json/.md/edc.png.

Example:
    >>> rep = evaluate("faces/", qualities=[("teacher", "t.csv"), ("student", "s.csv")],   # doctest: +SKIP
    ...                embeddings="emb.npy", identities_from_folders=True, out_dir="report/")
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgefiq.data.degrade import family_of
from edgefiq.data.readers import (list_images, read_kind_index, read_label_map, read_lfw_pairs, read_source_index,
                                  relpaths)
from edgefiq.errors import DataError, UsageError
from edgefiq.eval.report import write_report
from edgefiq.eval.sources import EvalSet, QualitySource, embed_images
from edgefiq.metrics.bootstrap import bootstrap_paucs, ratio_interval
from edgefiq.metrics.thresholds import DEFAULT_FRACTIONS, discard_thresholds
from edgefiq.utils import atomic_path, atomic_write_text, write_json

log = logging.getLogger("edgefiq.eval")

RANDOM_NAME = "random"


def read_embeddings(npy: str | Path, index_csv: str | Path | None, default_rels: Sequence[str]) -> dict[str, np.ndarray]:
    """Precomputed embeddings as ``{relpath: vector}``.

    Rows of ``npy`` follow ``index_csv`` (a CSV with a ``path`` column) or, without an index,
    the sorted image list of the images root.
    """
    p = Path(npy)
    if not p.is_file():
        raise DataError(f"{p}: embeddings file not found")
    emb = np.load(p, allow_pickle=False)
    if emb.ndim != 2:
        raise DataError(f"{p}: embeddings must be a 2-D array [N, D], got shape {emb.shape}")
    if index_csv is not None:
        with open(index_csv, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise DataError(f"{index_csv}: expected a 'path' column")
            rels = [r["path"].replace("\\", "/") for r in reader]
    else:
        rels = list(default_rels)
    if len(rels) != emb.shape[0]:
        raise DataError(f"{p}: {emb.shape[0]} rows but the index has {len(rels)} paths"
                        + ("" if index_csv else " (pass --embeddings-index)"))
    return dict(zip(rels, emb))


def evaluate(images_root: str | Path, *, qualities: Sequence[tuple[str, str | Path]],
             identities_from_folders: bool = False, pairs: str | Path | None = None,
             fr_model: str | Path | None = None, embeddings: str | Path | None = None,
             embeddings_index: str | Path | None = None, reference: str | None = None,
             random_baseline: bool = False, fmrs: Sequence[float] = (1e-3,), limit: float = 0.3,
             conventions: Sequence[str] = ("fixed", "reestimate"), max_impostors: int | None = None,
             same_source_index: str | Path | None = None, save_embeddings: str | Path | None = None, seed: int = 0, batch_size: int = 64, out_dir: str | Path | None = None,
             reject_fractions: Sequence[float] | None = None, by_degradation: str | Path | None = None,
             bootstrap: int = 0) -> dict[str, Any]:
    """Compare quality sources on the same comparisons; optionally write the report to ``out_dir``.

    Args:
        images_root: folder the quality CSV paths are relative to.
        qualities: ``(name, csv)`` per source.
        identities_from_folders: comparisons = all genuine and impostor pairs of ``<identity>/<image>``.
        pairs: LFW-style pairs file instead (pairs with an image outside the evaluated set are dropped).
        fr_model: FR model file (``.pt`` state dict or ``.onnx``) to embed the images.
        embeddings, embeddings_index: precomputed embeddings ``.npy`` and its ``path`` CSV.
        reference: source name every other source is correlated against (default: the first).
        random_baseline: add a seeded uniform random quality source named ``random``.
        fmrs: target FMRs; limit: pAUC discard limit; conventions: threshold conventions.
        max_impostors: sample this many impostor pairs (identity mode); None = all.
        same_source_index: CSV with ``path,source`` columns (e.g. the ``index.csv`` of
            ``edgefiq data degrade``): comparisons between two images of the same source photo
            (a clean image and its degraded copy) are left out.
        save_embeddings: folder to keep the FR embeddings in (``embeddings.npy`` +
            ``embeddings_index.csv``) for a later ``--embeddings`` run.
        seed: seed for the random baseline and impostor sampling. out_dir: write report.json, report.md, edc.png here.
        reject_fractions: image fractions of the threshold table (``report["thresholds"]``: per FMR
            and source, the quality threshold that rejects that fraction of the images and the FNMR
            it leaves; definitions in ``edgefiq.metrics.thresholds``). Default: 1, 2, 5, 10, 20, 30 %.
        by_degradation: the ``index.csv`` of ``edgefiq data degrade``: adds ``report["by_degradation"]``,
            pAUC on the clean images and per degradation family (:func:`by_family`).
        bootstrap: identity resamples for each family row's interval of pAUC relative to the reference
            (:func:`by_family`; 0 = none).

    Returns the report dict (see ``edgefiq.eval.report``).

    Raises:
        UsageError: conflicting or missing options. DataError: unreadable inputs, no common images.

    Example:
        >>> evaluate("faces/", qualities=[("a", "a.csv")], embeddings="e.npy", identities_from_folders=True)  # doctest: +SKIP
    """
    t_start = time.perf_counter()
    names = _check_options(qualities, identities_from_folders, pairs, fr_model, embeddings, random_baseline,
                           reference, fmrs, limit)
    root = Path(images_root)
    all_rels = relpaths(list_images(root), root)
    tables = [(n, Path(p), read_label_map(p)) for n, p in qualities]
    kinds = read_kind_index(by_degradation) if by_degradation is not None else None   # fail before embedding
    emb_map = read_embeddings(embeddings, embeddings_index, all_rels) if embeddings is not None else None
    rels = _covered(root, all_rels, [t for _, _, t in tables], emb_map)
    dropped = len(all_rels) - len(rels)
    emb, fr_desc = _embeddings(root, rels, emb_map, embeddings, fr_model, save_embeddings, batch_size)
    plist = _read_pairs(pairs, rels) if pairs is not None else None
    same_source = read_source_index(same_source_index) if same_source_index is not None else None
    es = EvalSet.build(emb, rels, pairs=plist, pairs_name=Path(pairs).name if pairs else "pairs",
                       same_source=same_source, max_impostors=max_impostors, seed=seed)
    sources = [QualitySource(n, np.array([t[r] for r in rels]), str(p)) for n, p, t in tables]
    if random_baseline:
        sources.append(QualitySource(RANDOM_NAME, np.random.default_rng(seed).random(len(rels)), f"uniform random, seed {seed}"))
    res = es.evaluate(sources, fmrs=fmrs, limit=limit, conventions=conventions, reference=reference or names[0])
    report = {
        "images_root": str(root), "n_images": len(rels), "n_images_left_out": dropped,
        "protocol": es.protocol, "fr_model": fr_desc, "n_genuine": es.n_genuine, "n_impostor": es.n_impostor,
        "fmrs": list(fmrs), "limit": limit, "conventions": list(conventions), "reference": res.reference, "seed": seed,
        "sources": [{"name": s.name, "origin": s.origin} for s in sources],
        "pauc": res.pauc, "thresholds": threshold_rows(es.comparisons, sources, fmrs, reject_fractions),
        "correlations": res.correlations, "curves": res.curves,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    if kinds is not None:
        ordered = sorted(sources, key=lambda s: s.name != res.reference)   # the reference first
        report["by_degradation"] = by_family(es, ordered, kinds, fmrs=fmrs, limit=limit, bootstrap=bootstrap)
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def _check_options(qualities: Sequence[tuple[str, str | Path]], identities_from_folders: bool,
                   pairs: str | Path | None, fr_model: str | Path | None, embeddings: str | Path | None,
                   random_baseline: bool, reference: str | None, fmrs: Sequence[float], limit: float) -> list[str]:
    """Validate ``evaluate``'s options; returns the source names in order."""
    if identities_from_folders == (pairs is not None):
        raise UsageError("give exactly one of --identities-from-folders or --pairs FILE")
    if (fr_model is None) == (embeddings is None):
        raise UsageError("give exactly one of --fr-model PATH or --embeddings NPY")
    if not qualities and not random_baseline:
        raise UsageError("nothing to evaluate: give --quality CSV (and/or --random-baseline)")
    names = [n for n, _ in qualities] + ([RANDOM_NAME] if random_baseline else [])
    if len(set(names)) != len(names):
        raise UsageError(f"quality source names must be unique, got {names}")
    if reference is not None and reference not in names:
        raise UsageError(f"--reference {reference!r} is not a source name; choose from {', '.join(names)}")
    for f in fmrs:
        if not 0 < f < 1:
            raise UsageError(f"FMR must be in (0, 1), got {f}")
    if not 0 < limit <= 1:
        raise UsageError(f"--limit must be in (0, 1], got {limit}")
    return names


def _read_pairs(pairs: str | Path, rels: list[str]) -> list[tuple[str, str, bool]]:
    """The LFW-style pair list; logs how many pairs use an image outside the evaluated set."""
    plist = read_lfw_pairs(pairs)
    covered = set(rels)
    usable = sum(a in covered and b in covered for a, b, _ in plist)
    if usable < len(plist):
        log.info("[eval] %d of %d pairs use an image outside the evaluated set and are dropped",
                 len(plist) - usable, len(plist))
    return plist


def _covered(root: Path, all_rels: list[str], tables: list[dict[str, float]],
             emb_map: dict[str, np.ndarray] | None) -> list[str]:
    """The images under ``root`` that every quality table (and the embeddings) covers, sorted."""
    keep = set(all_rels)
    for t in tables:
        keep &= set(t)
    if emb_map is not None:
        keep &= set(emb_map)
    rels = sorted(keep)
    if not rels:
        raise DataError(f"{root}: no image is covered by every quality CSV{' and the embeddings' if emb_map else ''}")
    if len(rels) < len(all_rels):
        log.info("[eval] %d of %d images lack a score in some source (or an embedding) and are left out",
                 len(all_rels) - len(rels), len(all_rels))
    return rels


def _embeddings(root: Path, rels: list[str], emb_map: dict[str, np.ndarray] | None, embeddings: str | Path | None,
                fr_model: str | Path | None, save_embeddings: str | Path | None,
                batch_size: int) -> tuple[np.ndarray, str]:
    """Embeddings of ``rels`` (precomputed, or computed with ``fr_model`` and optionally kept) and their origin."""
    if emb_map is not None:
        fr_desc = f"precomputed ({Path(embeddings).name})"  # type: ignore[arg-type]
        origin = Path(embeddings).with_suffix(".json")  # type: ignore[arg-type]
        if origin.is_file():  # written by --save-embeddings: name the FR model that made them
            fr_desc += f" from {json.loads(origin.read_text()).get('fr_model', '?')}"
        return np.stack([emb_map[r] for r in rels]).astype(np.float32), fr_desc
    emb, fr_desc = embed_images(fr_model, [root / r for r in rels], batch_size)  # type: ignore[arg-type]
    if save_embeddings is not None:
        _save_embeddings(Path(save_embeddings), emb, rels, fr_desc)
    return emb, fr_desc


def threshold_rows(comps: Any, sources: Sequence[QualitySource], fmrs: Sequence[float],
                   fractions: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Per FMR and source: the quality threshold rejecting each image fraction and the FNMR it leaves.

    Example:
        >>> threshold_rows(comps, [QualitySource("s", q, "s.csv")], [1e-3])[1]["fnmr"]   # doctest: +SKIP
        0.012
    """
    fr = DEFAULT_FRACTIONS if fractions is None else tuple(fractions)
    return [{"source": s.name, **r} for fmr in fmrs for s in sources
            for r in discard_thresholds(comps, s.quality, fmr, fr)]


def _save_embeddings(out: Path, emb: np.ndarray, rels: list[str], fr_desc: str) -> None:
    """Keep the embeddings so a re-run can use ``--embeddings`` (FR inference is the slow part)."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "embeddings.json", {"fr_model": fr_desc, "n": len(rels), "dim": int(emb.shape[1])})
    with atomic_path(out / "embeddings.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, emb)
    atomic_write_text(out / "embeddings_index.csv", "path\n" + "".join(f"{r}\n" for r in rels))


def _finite(values: Sequence[float]) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def by_family(es: EvalSet, sources: Sequence[QualitySource], kinds: Mapping[str, str], *,
              fmrs: Sequence[float], limit: float, bootstrap: int = 0) -> list[dict[str, Any]]:
    """pAUC (fixed threshold) of every source on the clean images, then per degradation family on its copies
    plus the clean images, and each source's SRCC with the first source (the teacher) on the same images:
    ``[{"family", "n_images", "pauc": {source: {fmr: pAUC x1e3}}, "srcc": {source: SRCC}}]``.

    With ``bootstrap`` resamples, a row also has ``"ratio_ci": {source: {fmr: [low, high]}}``: the 90%
    interval of the source's pAUC over the first source's, resampling identities
    (:func:`edgefiq.metrics.bootstrap.bootstrap_paucs`, seed 0).

    Each family is ``es.subset`` of its images (the same protocol); ``kinds`` maps an image to its kind
    (``clean`` or a degradation, ``edgefiq.data.degrade.family_of``); images missing from it are left out.
    The clean row's SRCC is the agreement on ordinary photos alone, which the all-image SRCC hides.
    """
    family = {r: family_of(kinds[r]) for r in es.rels if r in kinds}
    rows = []
    for fam in ["clean", *sorted({f for f in family.values() if f != "clean"})]:
        keep = np.array([family.get(r) in ("clean", fam) for r in es.rels])
        try:
            sub = es.subset(keep)
        except DataError:   # too few images in this family for genuine and impostor comparisons
            rows.append({"family": fam, "n_images": int(keep.sum()), "pauc": {s.name: {} for s in sources},
                         "srcc": {}})
            continue
        res = sub.evaluate([QualitySource(s.name, s.quality[keep], s.origin) for s in sources],
                           fmrs=fmrs, limit=limit, conventions=("fixed",), all_pairs=False)
        pauc: dict[str, dict[str, Any]] = {}
        for r in res.pauc:
            pauc.setdefault(r["source"], {})[f"{r['fmr']:g}"] = r["pauc_x1e3"]
        srcc = {s.name: res.correlation(sources[0].name, s.name) for s in sources}
        rows.append({"family": fam, "n_images": len(sub.rels), "pauc": pauc, "srcc": srcc})
        if bootstrap:   # one set of identity resamples (seed 0) for every source: paired ratios
            ids = [r.split("/", 1)[0] for r in sub.rels]
            rows[-1]["ratio_ci"] = {s.name: {} for s in sources[1:]}
            for f in fmrs:
                boot = bootstrap_paucs(sub.comparisons, [s.quality[keep] for s in sources], ids, fmr=f, limit=limit,
                                       resamples=bootstrap)
                for s, b in zip(sources[1:], boot[1:]):
                    rows[-1]["ratio_ci"][s.name][f"{f:g}"] = _finite(ratio_interval(b, boot[0]))
    return rows

