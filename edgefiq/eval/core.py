"""``evaluate``: several quality sources on the same face comparisons -> EDC/pAUC + correlations.

Steps: (1) the image set is the images under ``images_root`` that every quality source
(and the embeddings index) covers; (2) embeddings come from an FR model
(``edgefiq.models.fr``, needs torch) or a precomputed ``.npy``; (3) comparisons are all
genuine/impostor pairs of the identity folders or the pairs of an LFW-style pairs file;
(4) per source, FMR and convention: the EDC curve and pAUC (x1e3, plain and normalised;
definitions in ``edgefiq.metrics.edc``); (5) SRCC/PLCC/KRCC between every two sources.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgefiq.errors import DataError, UsageError

log = logging.getLogger("edgefiq.eval")

RANDOM_NAME = "random"


@dataclass
class QualitySource:
    """One named per-image quality vector aligned with the evaluated image list."""

    name: str
    quality: np.ndarray
    origin: str


def _read_quality_csv(path: Path) -> dict[str, float]:
    """``{relpath: quality}`` from a ``path,quality[,...]`` CSV (NaN / missing values are errors)."""
    if not path.is_file():
        raise DataError(f"{path}: quality CSV not found")
    out: dict[str, float] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "path" not in reader.fieldnames or "quality" not in reader.fieldnames:
            raise DataError(f"{path}: expected columns path,quality (got {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            try:
                q = float(row["quality"])
            except (TypeError, ValueError):
                raise DataError(f"{path}:{line}: quality {row['quality']!r} is not a number") from None
            if not np.isfinite(q):
                raise DataError(f"{path}:{line}: quality is {q}; remove or fix the row")
            out[row["path"].replace("\\", "/")] = q
    if not out:
        raise DataError(f"{path}: no rows")
    return out


def _read_sources(path: Path) -> dict[str, str]:
    """``{relpath: source photo}`` from a ``path,source`` CSV."""
    if not path.is_file():
        raise DataError(f"{path}: same-source index not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"path", "source"} <= set(reader.fieldnames):
            raise DataError(f"{path}: expected columns path,source (got {reader.fieldnames})")
        return {r["path"].replace("\\", "/"): r["source"] for r in reader}


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


def _embed(fr_model: str | Path, paths: list[Path], batch_size: int) -> tuple[np.ndarray, str]:
    try:
        from edgefiq.models.fr import embed_paths, load_fr_model
    except ImportError as e:
        raise UsageError(f"--fr-model needs torch ({e}); pass precomputed --embeddings instead") from None
    fr = load_fr_model(fr_model)
    desc = f"{getattr(fr, 'arch', 'fr')} ({Path(fr_model).name})"
    return embed_paths(fr, paths, batch_size=batch_size), desc


def evaluate(images_root: str | Path, *, qualities: Sequence[tuple[str, str | Path]],
             identities_from_folders: bool = False, pairs: str | Path | None = None,
             fr_model: str | Path | None = None, embeddings: str | Path | None = None,
             embeddings_index: str | Path | None = None, reference: str | None = None,
             random_baseline: bool = False, fmrs: Sequence[float] = (1e-3,), limit: float = 0.3,
             conventions: Sequence[str] = ("fixed", "reestimate"), max_impostors: int | None = None,
             same_source_index: str | Path | None = None, save_embeddings: str | Path | None = None, seed: int = 0, batch_size: int = 64, out_dir: str | Path | None = None,
             reject_fractions: Sequence[float] | None = None) -> dict[str, Any]:
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
        seed: seed for the random baseline and impostor sampling.
        out_dir: write report.json, report.md, edc.png here.
        reject_fractions: image fractions of the threshold table (``report["thresholds"]``: per FMR
            and source, the quality threshold that rejects that fraction of the images and the FNMR
            it leaves; definitions in ``edgefiq.metrics.thresholds``). Default: 1, 2, 5, 10, 20, 30 %.

    Returns:
        The report dict (see ``edgefiq.eval.report``).

    Raises:
        UsageError: conflicting or missing options. DataError: unreadable inputs, no common images.

    Example:
        >>> evaluate("faces/", qualities=[("a", "a.csv")], embeddings="e.npy",   # doctest: +SKIP
        ...          identities_from_folders=True, random_baseline=True)["pauc"][0]
    """
    from edgefiq.data.readers import identity_of, list_images, relpaths
    from edgefiq.metrics import krcc, plcc, srcc
    from edgefiq.metrics.edc import comparisons_from_identities, comparisons_from_pairs, edc_curve, pauc, pauc_x1e3

    t_start = time.perf_counter()
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

    root = Path(images_root)
    all_rels = relpaths(list_images(root), root)
    tables = [(n, Path(p), _read_quality_csv(Path(p))) for n, p in qualities]
    keep = set(all_rels)
    for _, _, t in tables:
        keep &= set(t)
    emb_map = None
    if embeddings is not None:
        emb_map = read_embeddings(embeddings, embeddings_index, all_rels)
        keep &= set(emb_map)
    rels = sorted(keep)
    dropped = len(all_rels) - len(rels)
    if not rels:
        raise DataError(f"{root}: no image is covered by every quality CSV{' and the embeddings' if emb_map else ''}")
    if dropped:
        log.info("[eval] %d of %d images lack a score in some source (or an embedding) and are left out",
                 dropped, len(all_rels))

    if emb_map is not None:
        emb = np.stack([emb_map[r] for r in rels]).astype(np.float32)
        fr_desc = f"precomputed ({Path(embeddings).name})"  # type: ignore[arg-type]
        origin = Path(embeddings).with_suffix(".json")  # type: ignore[arg-type]
        if origin.is_file():  # written by --save-embeddings: name the FR model that made them
            fr_desc += f" from {json.loads(origin.read_text()).get('fr_model', '?')}"
    else:
        emb, fr_desc = _embed(fr_model, [root / r for r in rels], batch_size)  # type: ignore[arg-type]
        if save_embeddings is not None:
            _save_embeddings(Path(save_embeddings), emb, rels, fr_desc)

    if identities_from_folders:
        ids = [identity_of(r) for r in rels]
        if any(i == "" for i in ids):
            raise DataError(f"{root}: --identities-from-folders needs <identity>/<image> folders; found files in the root")
        comps = comparisons_from_identities(emb, ids, max_impostors=max_impostors, seed=seed)
        protocol = "identities-from-folders" + (f" (impostors sampled: {max_impostors})" if max_impostors else "")
    else:
        from edgefiq.data.readers import read_lfw_pairs

        index = {r: k for k, r in enumerate(rels)}
        plist = read_lfw_pairs(pairs)  # type: ignore[arg-type]
        idx = [(index[a], index[b], g) for a, b, g in plist if a in index and b in index]
        if len(idx) < len(plist):
            log.info("[eval] %d of %d pairs use an image outside the evaluated set and are dropped",
                     len(plist) - len(idx), len(plist))
        if not idx:
            raise DataError(f"{pairs}: no pair has both images in the evaluated set")
        comps = comparisons_from_pairs(emb, idx)
        protocol = f"pairs ({Path(pairs).name})"  # type: ignore[arg-type]
    if same_source_index is not None:
        src = _read_sources(Path(same_source_index))
        _, sid = np.unique(np.array([src.get(r, r) for r in rels]), return_inverse=True)  # int codes, not strings
        before = len(comps)
        comps = comps.select(sid[comps.i] != sid[comps.j])
        protocol += f", {before - len(comps)} same-source pairs left out"
    if comps.n_genuine == 0 or comps.n_impostor == 0:
        raise DataError(f"need genuine and impostor comparisons, got {comps.n_genuine} and {comps.n_impostor}")

    sources = [QualitySource(n, np.array([t[r] for r in rels]), str(p)) for n, p, t in tables]
    if random_baseline:
        sources.append(QualitySource(RANDOM_NAME, np.random.default_rng(seed).random(len(rels)), f"uniform random, seed {seed}"))

    rows, curves = [], []
    for fmr in fmrs:
        for conv in conventions:
            for s in sources:
                c = edc_curve(comps, s.quality, fmr=fmr, convention=conv, discard_limit=limit)  # type: ignore[arg-type]
                rows.append({"source": s.name, "fmr": fmr, "convention": conv,
                             "pauc_x1e3": pauc_x1e3(c, limit), "pauc_norm": _num(pauc(c, limit, normalise=True)),
                             "fnmr_at_0": float(c.fnmr[0]), "fnmr_at_limit": float(np.interp(limit, c.discard, c.fnmr)),
                             "threshold": float(c.threshold[0]), "fmr_resolvable": c.fmr_resolvable})
                curves.append({"source": s.name, "fmr": fmr, "convention": conv, "discard": c.discard.tolist(),
                               "fnmr": c.fnmr.tolist(), "oracle_fnmr": c.oracle_fnmr.tolist()})
    thresholds = threshold_rows(comps, sources, fmrs, reject_fractions)
    ref = reference or sources[0].name
    corr = []
    for a_i, a in enumerate(sources):
        for b in sources[a_i + 1:]:
            corr.append({"a": a.name, "b": b.name, "srcc": _num(srcc(a.quality, b.quality)),
                         "plcc": _num(plcc(a.quality, b.quality)), "krcc": _num(krcc(a.quality, b.quality)),
                         "vs_reference": ref in (a.name, b.name)})
    report = {
        "images_root": str(root), "n_images": len(rels), "n_images_left_out": dropped,
        "protocol": protocol, "fr_model": fr_desc, "n_genuine": comps.n_genuine, "n_impostor": comps.n_impostor,
        "fmrs": list(fmrs), "limit": limit, "conventions": list(conventions), "reference": ref, "seed": seed,
        "sources": [{"name": s.name, "origin": s.origin} for s in sources],
        "pauc": rows, "thresholds": thresholds, "correlations": corr, "curves": curves,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    if out_dir is not None:
        from edgefiq.eval.report import write_report

        write_report(report, out_dir)
    return report


def threshold_rows(comps: Any, sources: Sequence[QualitySource], fmrs: Sequence[float],
                   fractions: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Per FMR and source: the quality threshold rejecting each image fraction and the FNMR it leaves.

    Example:
        >>> threshold_rows(comps, [QualitySource("s", q, "s.csv")], [1e-3])[1]["fnmr"]   # doctest: +SKIP
        0.012
    """
    from edgefiq.metrics.thresholds import DEFAULT_FRACTIONS, discard_thresholds

    fr = DEFAULT_FRACTIONS if fractions is None else tuple(fractions)
    return [{"source": s.name, **r} for fmr in fmrs for s in sources
            for r in discard_thresholds(comps, s.quality, fmr, fr)]


def _num(v: float) -> float | None:
    """NaN (undefined, e.g. a constant source) becomes None so report.json stays strict JSON."""
    return None if v is None or not np.isfinite(v) else float(v)


def _save_embeddings(out: Path, emb: np.ndarray, rels: list[str], fr_desc: str) -> None:
    """Keep the embeddings so a re-run can use ``--embeddings`` (FR inference is the slow part)."""
    from edgefiq.utils import atomic_path, atomic_write_text, write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "embeddings.json", {"fr_model": fr_desc, "n": len(rels), "dim": int(emb.shape[1])})
    with atomic_path(out / "embeddings.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, emb)
    atomic_write_text(out / "embeddings_index.csv", "path\n" + "".join(f"{r}\n" for r in rels))
