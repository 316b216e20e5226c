"""The one evaluation of quality sources: comparisons, EDC/pAUC and correlations.

Every evaluation in edgefiq goes through :class:`EvalSet`: ``edgefiq eval``
(``edgefiq.eval.core.evaluate``, per degradation family too), the eval stage of ``edgefiq run``
(``edgefiq.pipeline.evaluation``), the accuracy columns of ``edgefiq bench`` and the
rho sweep of ``edgefiq prune`` (``edgefiq.pipeline.sweep``). It is built once per run or
command (:meth:`EvalSet.build`, the one caller of :func:`build_comparisons`) and evaluates
any number of quality sources on the same comparisons (:meth:`EvalSet.evaluate`).

- :func:`build_comparisons`: genuine/impostor comparisons of embedded images, from the
  identity folders or an LFW-style pair list. Where the data records the source photo of
  each image (``same_source``, e.g. the ``source`` column of the ``index.csv`` that
  ``edgefiq data degrade`` writes), comparisons between two copies of one photo (a clean
  image and its own degraded copy) are left out: they are not verification attempts. The
  protocol text says how many.
- :func:`evaluate_sources`: per source, FMR and threshold convention the EDC curve and its
  pAUC (x1e3, definitions in ``edgefiq.metrics.edc``); SRCC/PLCC/KRCC between sources.

Example:
    >>> import numpy as np
    >>> emb = np.random.default_rng(0).normal(size=(12, 8)).astype(np.float32)
    >>> rels = [f"id{k // 3}/{k}.jpg" for k in range(12)]
    >>> es = EvalSet.build(emb, rels)
    >>> res = es.evaluate([QualitySource("q", np.arange(12.0), "demo")], fmrs=[0.1])
    >>> res.pauc[0]["source"], es.protocol
    ('q', 'identities-from-folders')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from edgefiq.data.readers import identity_of
from edgefiq.errors import DataError, UsageError
from edgefiq.metrics import krcc, plcc, srcc
from edgefiq.metrics.edc import comparisons_from_identities, comparisons_from_pairs, edc_curve, pauc, pauc_x1e3


@dataclass
class QualitySource:
    """One named per-image quality vector aligned with the evaluated image list."""

    name: str
    quality: np.ndarray
    origin: str = ""


@dataclass
class SourceEvaluation:
    """What :func:`evaluate_sources` measured.

    Attributes:
        pauc: one row per (fmr, convention, source): ``pauc_x1e3``, ``pauc_norm``, ``fnmr_at_0``,
            ``fnmr_at_limit``, ``threshold``, ``fmr_resolvable`` (None values for a source with
            non-finite scores).
        curves: the EDC curves of those rows (``discard``, ``fnmr``, ``oracle_fnmr`` lists).
        correlations: SRCC/PLCC/KRCC of every two sources (None where undefined).
        reference: the source every other source is compared against.
    """

    pauc: list[dict[str, Any]] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)
    correlations: list[dict[str, Any]] = field(default_factory=list)
    reference: str = ""

    def row(self, source: str, fmr: float, convention: str) -> dict[str, Any]:
        """The pAUC row of ``source`` at ``fmr`` and ``convention``."""
        return next(r for r in self.pauc if (r["source"], r["fmr"], r["convention"]) == (source, fmr, convention))

    def correlation(self, a: str, b: str, metric: str = "srcc") -> float | None:
        """``metric`` between sources ``a`` and ``b`` (1.0 for a source with itself)."""
        if a == b:
            return 1.0
        return next(c[metric] for c in self.correlations if {c["a"], c["b"]} == {a, b})


@dataclass
class EvalSet:
    """One evaluation's images, their FR embeddings and genuine/impostor comparisons.

    Attributes:
        rels: the evaluated images (``<identity>/<image>``); every quality vector is aligned with them.
        emb: their embeddings (``[N, D]``).
        comparisons: from :func:`build_comparisons`; None = no FR model (correlations only).
        protocol: how the comparisons were made (pairs or identity folders, what was left out).
        settings: the :func:`build_comparisons` options, reused by :meth:`subset`.
    """

    rels: list[str]
    emb: np.ndarray | None = None
    comparisons: Any = None
    protocol: str = "no comparisons (correlations only)"
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, emb: np.ndarray, rels: Sequence[str], *, pairs: Sequence[tuple[str, str, bool]] | None = None,
              pairs_name: str = "pairs", same_source: Mapping[str, str] | None = None,
              max_impostors: int | None = None, seed: int = 0) -> EvalSet:
        """Comparisons of the embedded images ``rels`` (options: :func:`build_comparisons`)."""
        settings = {"pairs": pairs, "pairs_name": pairs_name, "same_source": same_source,
                    "max_impostors": max_impostors, "seed": seed}
        comps, protocol = build_comparisons(emb, rels, **settings)
        return cls(list(rels), emb, comps, protocol, settings)

    @property
    def n_genuine(self) -> int | None:
        return None if self.comparisons is None else int(self.comparisons.n_genuine)

    @property
    def n_impostor(self) -> int | None:
        return None if self.comparisons is None else int(self.comparisons.n_impostor)

    def subset(self, keep: np.ndarray) -> EvalSet:
        """The same protocol on the images where ``keep`` is true (comparisons rebuilt among them).

        Raises:
            DataError: too few images left for genuine and impostor comparisons.
        """
        if self.emb is None:
            raise UsageError("EvalSet.subset needs embeddings")
        return EvalSet.build(self.emb[keep], [r for r, k in zip(self.rels, keep) if k], **self.settings)

    def evaluate(self, sources: Sequence[QualitySource], **options: Any) -> SourceEvaluation:
        """EDC/pAUC of every source on these comparisons and the correlations between the sources
        (``options``: :func:`evaluate_sources`'s ``fmrs``, ``limit``, ``conventions``, ``reference``,
        ``edc_sources``, ``all_pairs``)."""
        if any(len(s.quality) != len(self.rels) for s in sources):
            raise UsageError(f"every quality vector must have one score per evaluated image ({len(self.rels)})")
        return evaluate_sources(self.comparisons, sources, **options)


def embed_images(fr_model: str | Path, paths: Sequence[Path], batch_size: int = 64) -> tuple[np.ndarray, str]:
    """FR embeddings of image files with the model file ``fr_model`` and a one-line description of it.

    Raises:
        UsageError: torch is not installed (precomputed embeddings work without it).

    Example:
        >>> emb, desc = embed_images("mobilefacenet.pt", paths)   # doctest: +SKIP
    """
    try:
        # imports torch: only with --fr-model; eval imports torch-free
        from edgefiq.models.fr import embed_paths, load_fr_model
    except ImportError as e:
        raise UsageError(f"--fr-model needs torch ({e}); pass precomputed --embeddings instead") from None
    fr = load_fr_model(fr_model)
    desc = f"{getattr(fr, 'arch', 'fr')} ({Path(fr_model).name})"
    return embed_paths(fr, list(paths), batch_size=batch_size), desc


def build_comparisons(emb: np.ndarray, rels: Sequence[str], *, pairs: Sequence[tuple[str, str, bool]] | None = None,
                      pairs_name: str = "pairs", same_source: Mapping[str, str] | None = None,
                      max_impostors: int | None = None, seed: int = 0) -> tuple[Any, str]:
    """Genuine/impostor comparisons of the images ``rels`` (rows of ``emb``) and a protocol description.

    Args:
        emb: ``[N, D]`` embeddings, row ``k`` for ``rels[k]``.
        rels: relative paths ``<identity>/<image>`` (identities from the folders).
        pairs: ``(rel_a, rel_b, genuine)`` instead of all pairs of the identity folders (pairs
            with an image outside ``rels`` are dropped).
        pairs_name: how the protocol names the pair list.
        same_source: ``{rel: source photo}``; comparisons between two images of one source photo
            are left out (images missing from the mapping are their own source).
        max_impostors: sample this many impostor pairs (identity folders only); None = all.
        seed: seed of the impostor sample.

    Returns:
        ``(comparisons, protocol)``.

    Raises:
        DataError: no identity folders, no usable pair, or no genuine or no impostor comparison left.

    Example:
        >>> comps, protocol = build_comparisons(emb, rels, same_source={"a/1.jpg": "a/0.jpg"})   # doctest: +SKIP
    """
    if pairs is None:
        ids = [identity_of(r) for r in rels]
        if any(i == "" for i in ids):
            raise DataError("identities come from <identity>/<image> folders; found files directly in the images root")
        comps = comparisons_from_identities(emb, ids, max_impostors=max_impostors, seed=seed)
        protocol = "identities-from-folders" + (f" (impostors sampled: {max_impostors})" if max_impostors else "")
    else:
        index = {r: k for k, r in enumerate(rels)}
        idx = [(index[a], index[b], g) for a, b, g in pairs if a in index and b in index]
        if not idx:
            raise DataError(f"{pairs_name}: no pair has both images in the evaluated set")
        comps = comparisons_from_pairs(emb, idx)
        protocol = f"pairs ({pairs_name})"
    if same_source is not None:
        _, sid = np.unique(np.array([same_source.get(r, r) for r in rels]), return_inverse=True)
        before = len(comps)
        comps = comps.select(sid[comps.i] != sid[comps.j])
        protocol += f", {before - len(comps)} same-source pairs left out"
    if comps.n_genuine == 0 or comps.n_impostor == 0:
        raise DataError(f"need genuine and impostor comparisons, got {comps.n_genuine} and {comps.n_impostor}")
    return comps, protocol


def evaluate_sources(comps: Any | None, sources: Sequence[QualitySource], *, fmrs: Sequence[float] = (1e-3,),
                     limit: float = 0.3, conventions: Sequence[str] = ("fixed",), reference: str | None = None,
                     edc_sources: Collection[str] | None = None, all_pairs: bool = True) -> SourceEvaluation:
    """EDC/pAUC of every source on ``comps`` and the correlations between the sources.

    Args:
        comps: comparisons from :func:`build_comparisons` (None = correlations only).
        sources: the quality vectors, aligned with the images of ``comps``.
        fmrs: target FMRs; limit: pAUC discard limit; conventions: threshold conventions.
        reference: the source the others are compared against (default: the first).
        edc_sources: names of the sources to compute EDC curves for (default: all).
        all_pairs: correlate every two sources; False = each source with the reference only.

    Example:
        >>> res = evaluate_sources(comps, [QualitySource("teacher", t), QualitySource("student", s)])   # doctest: +SKIP
        >>> res.correlation("teacher", "student")                                                       # doctest: +SKIP
        0.91
    """
    if not sources:
        raise UsageError("nothing to evaluate: no quality source")
    res = SourceEvaluation(reference=reference or sources[0].name)
    finite = {s.name: bool(np.isfinite(s.quality).all()) for s in sources}
    for fmr in fmrs if comps is not None else ():
        for conv in conventions:
            for s in sources:
                if edc_sources is not None and s.name not in edc_sources:
                    continue
                row: dict[str, Any] = {"source": s.name, "fmr": fmr, "convention": conv}
                if not finite[s.name]:
                    res.pauc.append({**row, "pauc_x1e3": None, "pauc_norm": None, "fnmr_at_0": None,
                                     "fnmr_at_limit": None, "threshold": None, "fmr_resolvable": None})
                    continue
                c = edc_curve(comps, s.quality, fmr=fmr, convention=conv, discard_limit=limit)  # type: ignore[arg-type]
                res.pauc.append({**row, "pauc_x1e3": pauc_x1e3(c, limit), "pauc_norm": _num(pauc(c, limit, normalise=True)),
                                 "fnmr_at_0": float(c.fnmr[0]), "fnmr_at_limit": float(np.interp(limit, c.discard, c.fnmr)),
                                 "threshold": float(c.threshold[0]), "fmr_resolvable": c.fmr_resolvable})
                res.curves.append({**row, "discard": c.discard.tolist(), "fnmr": c.fnmr.tolist(),
                                   "oracle_fnmr": c.oracle_fnmr.tolist()})
    res.correlations = _correlations(sources, res.reference, finite, all_pairs)
    return res


def _correlations(sources: Sequence[QualitySource], ref: str, finite: Mapping[str, bool],
                  all_pairs: bool) -> list[dict[str, Any]]:
    out = []
    for k, a in enumerate(sources):
        for b in sources[k + 1:]:
            if not all_pairs and ref not in (a.name, b.name):
                continue
            ok = finite[a.name] and finite[b.name]
            out.append({"a": a.name, "b": b.name,
                        "srcc": _num(srcc(a.quality, b.quality)) if ok else None,
                        "plcc": _num(plcc(a.quality, b.quality)) if ok else None,
                        "krcc": _num(krcc(a.quality, b.quality)) if ok else None,
                        "vs_reference": ref in (a.name, b.name)})
    return out


def _num(v: float | None) -> float | None:
    """NaN (undefined, e.g. a constant source) becomes None so reports stay strict JSON."""
    return None if v is None or not np.isfinite(v) else float(v)
