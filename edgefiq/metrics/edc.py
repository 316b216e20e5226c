"""Error-versus-Discard Characteristic (EDC) and its partial area (pAUC), plain numpy.

Definitions used throughout (precise, because published numbers differ by convention):

Comparisons
    Similarity = cosine of the L2-normalised embeddings of images ``i`` and ``j``
    (higher = more similar). *Genuine* (mated) comparisons are two images of the same
    identity, *impostor* (non-mated) comparisons two different identities.
    ``comparisons_from_identities`` uses every genuine pair ``i < j`` and every impostor
    pair (or a seeded uniform sample without replacement of ``max_impostors`` of them).

Threshold at a target FMR
    With impostor similarities ``s_1..s_M`` sorted in decreasing order, the threshold is
    ``t = s_(k)`` with ``k = floor(fmr * M) + 1`` (1-based), and a comparison is a *match*
    iff ``similarity > t``. Hence the realised FMR ``#{s > t} / M <= fmr`` and it is the
    lowest threshold with that property. When ``M < 1 / fmr`` the target is not
    resolvable (``t`` = the largest impostor score, realised FMR 0); the curve records
    ``fmr_resolvable = False``.

FNMR
    Over the genuine comparisons that remain: ``#{genuine with similarity <= t} / #genuine``.

Pair quality and discarding
    The quality of a comparison is ``min(q_i, q_j)`` of its two images. Discarding a
    fraction ``x`` removes the comparisons with the lowest pair quality. Comparisons with
    equal pair quality are never split: they are discarded together, so the curve has a
    point only after each complete tie group, which makes it independent of input order
    (the Schlett et al. treatment). ``discard`` values are the realised fractions.

Conventions (``convention=``)
    ``"fixed"`` (ISO/IEC 29794-1 EDC, Schlett et al. 2023, "Considerations on the
    evaluation of biometric quality assessment algorithms"): ``t`` is computed once from
    all impostor comparisons before discarding; only genuine comparisons are ranked and
    discarded (the discard fraction is a fraction of the genuine comparisons,
    ``discard_over="genuine"``), since impostors cannot change an FNMR at a fixed ``t``.
    ``"reestimate"`` (CR-FIQA / SER-FIQ ERC code style): all comparisons, genuine and
    impostor, are ranked by pair quality and discarded together (``discard_over="all"``);
    after each discard step ``t`` is recomputed from the remaining impostors.
    ``discard_over`` can be given explicitly to mix (``fixed`` + ``"all"``).

Curve points (``step=``)
    ``step=None``: ``fixed`` is evaluated exactly after every tie group (all points);
    ``reestimate`` on a grid of ``0.01``. With a float ``step`` the grid ``0, step, 2 step,
    ... <= discard_limit`` is used; a grid value ``x`` maps to the largest complete tie
    group boundary ``<= floor(x * N)``. The first tie boundary at or beyond
    ``discard_limit`` is always included so the curve can be interpolated there.
    Points where no genuine comparison (or, for ``reestimate``, no impostor) remains are
    dropped.

pAUC
    ``pauc(curve, limit)`` is the trapezoid area under ``(discard, fnmr)`` from 0 to
    ``limit``, with the curve linearly interpolated at ``limit``. ``pauc_x1e3`` multiplies
    by 1000 (the unit of the PreFIQs tables). ``normalise=True`` returns
    ``(A - A_oracle) / (A_flat - A_oracle)`` where ``A_flat = fnmr(0) * limit`` (no
    improvement: the expected value for a random quality under ``fixed``) and
    ``A_oracle`` is the area of the ideal curve (the quality that discards false
    non-matches first: ``fnmr_oracle(k) = max(0, F - k) / (G - min(F, k))`` after
    discarding ``k`` comparisons, ``F`` false non-matches among ``G`` genuine at the start
    threshold). 0 = oracle, 1 = no better than discarding at random; ``nan`` if
    ``A_flat == A_oracle`` (e.g. FNMR already 0). If the curve ends before ``limit``
    (the next tie group would leave no genuine comparison, e.g. a constant quality), it
    is held constant at its last value.

Example:
    >>> import numpy as np
    >>> emb = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 2, 3]]
    >>> comps = comparisons_from_identities(emb, ["a", "a", "b", "b", "c", "d"])
    >>> int(comps.genuine.sum()), len(comps)
    (2, 15)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

Convention = Literal["fixed", "reestimate"]
CONVENTIONS: tuple[str, ...] = ("fixed", "reestimate")


@dataclass
class Comparisons:
    """Biometric comparisons: image indices, cosine similarity and the genuine flag.

    Attributes:
        i, j: int arrays [C] of image indices (into the embeddings / quality arrays).
        similarity: float array [C], cosine similarity.
        genuine: bool array [C], True for same-identity comparisons.
    """

    i: np.ndarray
    j: np.ndarray
    similarity: np.ndarray
    genuine: np.ndarray

    def __post_init__(self) -> None:
        self.i = np.asarray(self.i, dtype=np.int64)
        self.j = np.asarray(self.j, dtype=np.int64)
        self.similarity = np.asarray(self.similarity, dtype=np.float64)
        self.genuine = np.asarray(self.genuine, dtype=bool)
        n = self.i.shape[0]
        if not (self.j.shape[0] == self.similarity.shape[0] == self.genuine.shape[0] == n):
            raise ValueError("Comparisons arrays must have the same length")

    def __len__(self) -> int:
        return int(self.i.shape[0])

    @property
    def n_genuine(self) -> int:
        return int(self.genuine.sum())

    @property
    def n_impostor(self) -> int:
        return len(self) - self.n_genuine

    def select(self, mask: np.ndarray) -> "Comparisons":
        """The comparisons where ``mask`` is True (e.g. to drop pairs of copies of one photo)."""
        m = np.asarray(mask, dtype=bool)
        return Comparisons(i=self.i[m], j=self.j[m], similarity=self.similarity[m], genuine=self.genuine[m])

    def pair_quality(self, quality: np.ndarray) -> np.ndarray:
        """``min(quality[i], quality[j])`` per comparison."""
        q = np.asarray(quality, dtype=np.float64)
        if not np.isfinite(q).all():
            raise ValueError("quality contains NaN or infinite values")
        return np.minimum(q[self.i], q[self.j])


def _normalise(embeddings: np.ndarray) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float32)
    if e.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {e.shape}")
    n = np.linalg.norm(e, axis=1, keepdims=True)
    return e / np.maximum(n, 1e-12)


def comparisons_from_identities(embeddings: np.ndarray, identities: Sequence[Any], *,
                                max_impostors: int | None = None, seed: int = 0,
                                chunk: int = 2048) -> Comparisons:
    """All genuine pairs and all (or ``max_impostors`` sampled) impostor pairs of a labelled set.

    Args:
        embeddings: [N, D] embeddings (normalised here again).
        identities: N identity labels.
        max_impostors: keep a seeded uniform sample (without replacement) of this many
            impostor pairs; ``None`` keeps all ``i < j`` impostor pairs (memory ~20 bytes each).
        seed: sampling seed.
        chunk: rows per similarity block (bounds temporary memory to ``chunk * N`` floats).

    Returns:
        Comparisons with genuine pairs first, then impostors, each sorted by ``(i, j)``.

    Example:
        >>> emb = np.random.default_rng(0).normal(size=(6, 8))
        >>> c = comparisons_from_identities(emb, list("aabbcc"), max_impostors=5)
        >>> c.n_genuine, c.n_impostor
        (3, 5)
    """
    e = _normalise(embeddings)
    n = e.shape[0]
    ids = np.asarray([str(x) for x in identities])
    if ids.shape[0] != n:
        raise ValueError(f"{n} embeddings but {ids.shape[0]} identities")
    _, lab = np.unique(ids, return_inverse=True)
    # genuine: all pairs within each identity
    order = np.argsort(lab, kind="mergesort")
    bounds = np.flatnonzero(np.r_[True, lab[order][1:] != lab[order][:-1], True])
    gi, gj = [], []
    for s, t in zip(bounds[:-1], bounds[1:]):
        if t - s >= 2:
            members = np.sort(order[s:t])
            a, b = np.triu_indices(t - s, k=1)
            gi.append(members[a])
            gj.append(members[b])
    gi_a = np.concatenate(gi) if gi else np.zeros(0, np.int64)
    gj_a = np.concatenate(gj) if gj else np.zeros(0, np.int64)
    n_gen = gi_a.size
    total_imp = n * (n - 1) // 2 - n_gen
    if max_impostors is None or max_impostors >= total_imp:
        ii, jj, ss = [], [], []
        for r0 in range(0, n, chunk):
            r1 = min(n, r0 + chunk)
            sims = e[r0:r1] @ e.T
            rows = np.arange(r0, r1)[:, None]
            cols = np.arange(n)[None, :]
            mask = (cols > rows) & (lab[r0:r1, None] != lab[None, :])
            r, c = np.nonzero(mask)
            ii.append(r + r0)
            jj.append(c)
            ss.append(sims[r, c])
        ii_a, jj_a = np.concatenate(ii), np.concatenate(jj)
        ss_a = np.concatenate(ss)
    else:
        ii_a, jj_a = _sample_impostors(lab, int(max_impostors), seed)
        ss_a = _pair_cosine(e, ii_a, jj_a)
    gs = _pair_cosine(e, gi_a, gj_a)
    return Comparisons(i=np.r_[gi_a, ii_a], j=np.r_[gj_a, jj_a], similarity=np.r_[gs, ss_a],
                       genuine=np.r_[np.ones(n_gen, bool), np.zeros(ii_a.size, bool)])


def _pair_cosine(e: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """``e[i] . e[j]`` row-wise, in chunks so the gathered rows stay small."""
    out = np.empty(i.size, np.float32)
    for s in range(0, i.size, chunk):
        out[s:s + chunk] = np.einsum("ij,ij->i", e[i[s:s + chunk]], e[j[s:s + chunk]])
    return out


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort + diff: much faster than ``np.unique`` on large int arrays)."""
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if x.size else x


def _sample_impostors(lab: np.ndarray, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded uniform sample of ``m`` distinct impostor pairs ``(i < j)``, sorted by (i, j)."""
    rng = np.random.default_rng(seed)
    n = lab.size
    keys = np.zeros(0, np.int64)
    while keys.size < m:
        k = int((m - keys.size) * 1.2) + 64
        a = rng.integers(0, n, size=k)
        b = rng.integers(0, n, size=k)
        ok = (a != b) & (lab[a] != lab[b])
        lo, hi = np.minimum(a[ok], b[ok]), np.maximum(a[ok], b[ok])
        keys = _sorted_unique(np.r_[keys, lo.astype(np.int64) * n + hi])
    if keys.size > m:
        keys = np.sort(rng.choice(keys, size=m, replace=False))
    return keys // n, keys % n


def comparisons_from_pairs(embeddings: np.ndarray, pairs_idx: Sequence[tuple[int, int, bool]] | np.ndarray) -> Comparisons:
    """Comparisons for an explicit pair list, e.g. LFW ``pairs.txt`` mapped to image indices.

    Args:
        embeddings: [N, D] embeddings.
        pairs_idx: sequence of ``(i, j, genuine)`` or an int array [P, 3].

    Example:
        >>> emb = np.eye(3)
        >>> comparisons_from_pairs(emb, [(0, 1, True), (0, 2, False)]).similarity.tolist()
        [0.0, 0.0]
    """
    e = _normalise(embeddings)
    p = np.asarray(pairs_idx, dtype=np.int64).reshape(-1, 3)
    if p.size and (p[:, :2].min() < 0 or p[:, :2].max() >= e.shape[0]):
        raise ValueError("pair index out of range")
    sims = _pair_cosine(e, p[:, 0], p[:, 1])
    return Comparisons(i=p[:, 0], j=p[:, 1], similarity=sims, genuine=p[:, 2].astype(bool))


def threshold_at_fmr(impostor_similarity: np.ndarray, fmr: float) -> float:
    """Threshold ``t`` (match iff ``similarity > t``) with realised FMR <= ``fmr``; see module doc.

    Example:
        >>> threshold_at_fmr(np.array([0.1, 0.2, 0.3, 0.4]), 0.25)
        0.3
    """
    s = np.asarray(impostor_similarity, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no impostor comparisons: cannot set a threshold")
    k = min(int(math.floor(fmr * s.size + 1e-9)), s.size - 1)  # 0-based index in decreasing order
    a = s.size - 1 - k                                          # the same element in increasing order
    return float(np.partition(s, a)[a])


def verification_rate(genuine_similarity: np.ndarray, impostor_similarity: np.ndarray, fmr: float = 1e-3) -> float:
    """Fraction of genuine comparisons that match at the threshold ``threshold_at_fmr`` sets (1 - FNMR).

    Example:
        >>> verification_rate(np.array([0.5, 0.9]), np.array([0.1, 0.2, 0.3, 0.6]), 0.25)
        0.5
    """
    t = threshold_at_fmr(impostor_similarity, fmr)
    return float(np.mean(np.asarray(genuine_similarity, np.float64) > t))


@dataclass
class EdcCurve:
    """One EDC curve. ``discard``, ``fnmr``, ``threshold``, ``oracle_fnmr`` are aligned arrays."""

    discard: np.ndarray
    fnmr: np.ndarray
    threshold: np.ndarray
    oracle_fnmr: np.ndarray
    fmr: float
    convention: str
    discard_over: str
    n_genuine: int
    n_impostor: int
    fmr_resolvable: bool
    discard_limit: float = 1.0
    n_pool: int = 0            # comparisons ranked for discarding (genuine or all)
    false_nonmatches: int = 0  # F: genuine comparisons rejected at the start threshold
    extra: dict[str, Any] = field(default_factory=dict)

    def oracle_at(self, discard: np.ndarray) -> np.ndarray:
        """FNMR of the ideal quality (false non-matches discarded first) at discard fractions."""
        k = np.asarray(discard, dtype=np.float64) * self.n_pool
        f, g = self.false_nonmatches, self.n_genuine
        rem = g - np.minimum(f, k)
        return np.where(rem > 0, np.maximum(0.0, f - k) / np.maximum(rem, 1e-300), 0.0)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("discard", "fnmr", "threshold", "oracle_fnmr"):
            d[k] = np.asarray(d[k]).tolist()
        return d


def _tie_boundaries(sorted_q: np.ndarray) -> np.ndarray:
    """Counts ``k`` (0..N) at which a complete tie group of sorted qualities has been discarded."""
    n = sorted_q.size
    inner = np.flatnonzero(sorted_q[1:] != sorted_q[:-1]) + 1
    return np.r_[0, inner, n].astype(np.int64)


def _select_counts(bounds: np.ndarray, n: int, discard_limit: float, step: float | None) -> np.ndarray:
    lim = discard_limit * n
    first_beyond = bounds[np.searchsorted(bounds, lim - 1e-9)] if lim <= n else bounds[-1]
    if step is None:
        counts = bounds[bounds <= first_beyond]
    else:
        grid = np.arange(0.0, discard_limit + 1e-12, step)
        want = np.floor(grid * n + 1e-9).astype(np.int64)
        counts = bounds[np.searchsorted(bounds, want, side="right") - 1]
        counts = np.unique(np.r_[counts, first_beyond])
    return counts


def edc_curve(comparisons: Comparisons, quality: np.ndarray, *, fmr: float = 1e-3,
              convention: Convention = "fixed", discard_limit: float = 0.3,
              discard_over: Literal["genuine", "all"] | None = None,
              step: float | None = None) -> EdcCurve:
    """FNMR at a target FMR against the fraction of lowest-quality comparisons discarded.

    Args:
        comparisons: from ``comparisons_from_identities`` / ``comparisons_from_pairs``.
        quality: per-image quality (higher = better), indexed by ``comparisons.i/j``.
        fmr: target false match rate for the threshold.
        convention: ``"fixed"`` or ``"reestimate"`` (module docstring).
        discard_limit: compute the curve up to this discard fraction (the first point at or
            beyond it is included).
        discard_over: ``"genuine"`` (default for fixed) or ``"all"`` (default for reestimate).
        step: grid step, or ``None`` for the default resolution (module docstring).

    Returns:
        EdcCurve.

    Example:
        >>> c = Comparisons(i=[0, 1, 0], j=[1, 2, 2], similarity=[0.2, 0.9, 0.1],
        ...                 genuine=[True, True, False])
        >>> edc_curve(c, np.array([0.1, 0.5, 0.9]), fmr=0.5, discard_limit=1.0).fnmr.tolist()
        [0.0, 0.0]
    """
    over, step = _edc_settings(fmr, convention, discard_limit, discard_over, step)
    pq = comparisons.pair_quality(quality)
    gen = comparisons.genuine
    sim = comparisons.similarity
    n_gen, n_imp = int(gen.sum()), int((~gen).sum())
    if n_gen == 0 or n_imp == 0:
        raise ValueError(f"need genuine and impostor comparisons, got {n_gen} and {n_imp}")
    t0 = threshold_at_fmr(sim[~gen], fmr)
    resolvable = n_imp * fmr >= 1.0

    pool = np.flatnonzero(gen) if over == "genuine" else np.arange(len(comparisons))
    # ascending pair quality; ties broken by index only inside a group, which is never split
    order = pool[np.lexsort((pool, pq[pool]))]
    n = order.size
    bounds = _tie_boundaries(pq[order])
    counts = _select_counts(bounds, n, discard_limit, step)

    g_sorted = gen[order]
    s_sorted = sim[order]
    rej0 = g_sorted & (s_sorted <= t0)          # false non-matches at the start threshold
    cum_gen = np.r_[0, np.cumsum(g_sorted)]
    cum_rej0 = np.r_[0, np.cumsum(rej0)]
    f_total = int(rej0.sum())
    fnmr, thr, xs = [], [], []
    if convention == "reestimate":
        imp_sorted = s_sorted[~g_sorted]
        gen_sorted = s_sorted[g_sorted]
        cum_imp = np.r_[0, np.cumsum(~g_sorted)]
    for k in counts.tolist():
        g_rem = n_gen - int(cum_gen[k]) if over == "all" else n - k
        if g_rem <= 0:
            continue
        if convention == "fixed":
            t = t0
            f = f_total - int(cum_rej0[k])
        else:
            if n_imp - int(cum_imp[k]) <= 0:
                continue
            t = threshold_at_fmr(imp_sorted[int(cum_imp[k]):], fmr)
            f = int((gen_sorted[int(cum_gen[k]):] <= t).sum())
        xs.append(k / n)
        fnmr.append(f / g_rem)
        thr.append(t)
        # ideal quality: discards false non-matches first (counted at the start threshold)
    curve = EdcCurve(discard=np.asarray(xs), fnmr=np.asarray(fnmr), threshold=np.asarray(thr),
                     oracle_fnmr=np.zeros(len(xs)), fmr=float(fmr), convention=convention,
                     discard_over=over, n_genuine=n_gen, n_impostor=n_imp, fmr_resolvable=bool(resolvable),
                     discard_limit=float(discard_limit), n_pool=n, false_nonmatches=f_total)
    curve.oracle_fnmr = curve.oracle_at(curve.discard)
    return curve


def _edc_settings(fmr: float, convention: str, discard_limit: float, discard_over: str | None,
                  step: float | None) -> tuple[str, float | None]:
    """Check ``edc_curve``'s settings; returns the discard pool (``genuine``/``all``) and the step."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if not 0 < fmr < 1:
        raise ValueError(f"fmr must be in (0, 1), got {fmr}")
    if not 0 < discard_limit <= 1:
        raise ValueError(f"discard_limit must be in (0, 1], got {discard_limit}")
    over = discard_over or ("genuine" if convention == "fixed" else "all")
    if convention == "reestimate" and over != "all":
        raise ValueError("convention='reestimate' needs discard_over='all' (with genuine-only discarding it equals 'fixed')")
    if step is None and convention == "reestimate":
        step = 0.01
    return over, step


def _area(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    if x.size == 0:
        raise ValueError("empty EDC curve")
    if x[-1] < limit:  # the next tie group would empty the genuine set: hold the last value
        x, y = np.r_[x, limit], np.r_[y, y[-1]]
    yl = float(np.interp(limit, x, y))
    keep = x < limit
    xx = np.r_[x[keep], limit]
    yy = np.r_[y[keep], yl]
    return float(np.sum((xx[1:] - xx[:-1]) * (yy[1:] + yy[:-1]) / 2.0))


def pauc(curve: EdcCurve, limit: float = 0.3, normalise: bool = False) -> float:
    """Partial area under the EDC curve from discard 0 to ``limit`` (see module docstring).

    Example:
        >>> c = EdcCurve(np.array([0, .5]), np.array([.2, .0]), np.zeros(2), np.zeros(2),
        ...              1e-3, "fixed", "genuine", 10, 10, True, 0.5, 10, 2)
        >>> round(pauc(c, limit=0.5), 6)
        0.05
    """
    if limit > curve.discard_limit + 1e-12:
        raise ValueError(f"curve computed up to discard {curve.discard_limit}; recompute it with discard_limit >= {limit}")
    a = _area(curve.discard, curve.fnmr, limit)
    if not normalise:
        return a
    # the oracle is not bound to tie groups: evaluate it at every discard count up to F
    n = max(curve.n_pool, 1)
    ks = np.arange(0, min(curve.false_nonmatches, int(math.ceil(limit * n))) + 1)
    xo = np.unique(np.r_[ks / n, limit])
    a_or = _area(xo, curve.oracle_at(xo), limit)
    a_flat = float(curve.fnmr[0]) * limit
    den = a_flat - a_or
    return float((a - a_or) / den) if den > 1e-12 else float("nan")


def pauc_x1e3(curve: EdcCurve, limit: float = 0.3, normalise: bool = False) -> float:
    """``pauc`` times 1000 (the unit of the PreFIQs tables); normalised values are not scaled."""
    v = pauc(curve, limit, normalise)
    return v if normalise else v * 1e3


def edc_pauc(comparisons: Comparisons, quality: np.ndarray, fmr: float = 1e-3, limit: float = 0.3,
             convention: Convention = "fixed") -> float:
    """One-liner: pAUC x1e3 of the EDC of ``quality`` on ``comparisons``.

    Example:
        >>> emb = np.random.default_rng(0).normal(size=(40, 16))
        >>> c = comparisons_from_identities(emb, [k // 4 for k in range(40)])
        >>> v = edc_pauc(c, np.arange(40.0), fmr=1e-2)
        >>> v >= 0
        True
    """
    return pauc_x1e3(edc_curve(comparisons, quality, fmr=fmr, convention=convention, discard_limit=limit), limit)
