"""The quality gate of ``edgefiq score``: a threshold, given or derived from a reject fraction.

``--threshold T`` rejects every image scoring below ``T`` (``score < T``; ``score >= T`` is
accepted). ``--reject-fraction F`` turns ``F`` into a threshold: the ``F``-quantile of a
reference score distribution (``edgefiq.metrics.thresholds``), taken from, in this order:

1. ``--reference CSV``: a ``path,quality`` CSV of this model's scores on a set of images
   like the ones to be gated (e.g. ``edgefiq score`` on your own validation images);
2. the model's sidecar: the validation-set distribution a built-in model carries per artifact,
   of the clean images (``extra.score_distribution_clean``, the default: "reject the worst F of
   ordinary photos") or of all validation images, clean and degraded (``extra.score_distribution``,
   ``population="all"``, ``edgefiq score --distribution all``). A sidecar without the clean one
   uses the other, and says so;
3. otherwise the scores of the images being scored: exactly the lowest ``F`` of this run
   (relative to the run, not an absolute gate; logged as such).

Example:
    >>> gate_threshold({}, threshold=0.4)
    (0.4, 'given')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.data.readers import read_labels_csv
from edgefiq.errors import UsageError
from edgefiq.metrics.thresholds import accept_mask, score_distribution, threshold_for_fraction, to_0_100

DECISION_COLUMN = "decision"
SCALE_COLUMN = "quality_0_100"


POPULATIONS = ("clean", "all")


def sidecar_distribution(meta: dict[str, Any], population: str = "all") -> dict[str, Any] | None:
    """The validation score distribution stored in an artifact's sidecar dict, if any: of the clean images
    (``population="clean"``, when stored) or of all validation images.

    Example:
        >>> sidecar_distribution({"extra": {"score_distribution": {"n": 3}}}, "clean")
        {'n': 3}
    """
    extra = meta.get("extra") or {}
    if population == "clean" and extra.get("score_distribution_clean"):
        return extra["score_distribution_clean"]
    return extra.get("score_distribution") or meta.get("score_distribution")


def gate_threshold(meta: dict[str, Any], *, threshold: float | None = None, reject_fraction: float | None = None,
                   reference: str | Path | None = None, scores: np.ndarray | None = None,
                   population: str = "clean") -> tuple[float, str] | None:
    """The gate's threshold and where it came from, or None when no gate was asked for.

    Args:
        meta: the model's sidecar as a dict (``QualityModel.meta``).
        threshold: an absolute threshold.
        reject_fraction: a fraction in [0, 1) to reject (module docstring for the reference used).
        reference: optional ``path,quality`` CSV whose scores define the distribution.
        scores: this run's scores (the fallback reference).
        population: which stored distribution: ``clean`` (default) or ``all`` validation images.

    Raises:
        UsageError: both or invalid options, or a reference CSV that cannot be read.

    Example:
        >>> gate_threshold({}, reject_fraction=0.5, scores=np.array([1.0, 2.0, 3.0]))[0]
        2.0
    """
    check_gate(threshold, reject_fraction, reference)
    if population not in POPULATIONS:
        raise UsageError(f"distribution must be one of {', '.join(POPULATIONS)}, got {population!r}")
    if threshold is not None:
        return float(threshold), "given"
    if reject_fraction is None:
        return None
    if reference is not None:
        dist, how = score_distribution(_read_reference(Path(reference))), f"reference scores {reference}"
    elif sidecar_distribution(meta, population):
        dist = sidecar_distribution(meta, population)
        stored = "clean" if dist is (meta.get("extra") or {}).get("score_distribution_clean") else "all"
        which = {"clean": "clean validation photos", "all": "all validation images, clean and degraded"}[stored]
        how = f"the model's stored distribution of {which} (n={dist.get('n')})"  # type: ignore[union-attr]
        if stored != population:
            how += "; it stores no clean-photo distribution"
    else:
        dist, how = score_distribution(np.asarray(scores if scores is not None else [])), "the scored images themselves"
    return threshold_for_fraction(dist, reject_fraction), f"{reject_fraction:g}-quantile of {how}"  # type: ignore[arg-type]


def check_gate(threshold: float | None, reject_fraction: float | None, reference: str | Path | None) -> None:
    """Refuse contradictory gate options before any image is scored.

    Example:
        >>> check_gate(0.5, None, None)
    """
    if threshold is not None and reject_fraction is not None:
        raise UsageError("give --threshold or --reject-fraction, not both")
    if reference is not None and reject_fraction is None:
        raise UsageError("--reference only applies with --reject-fraction")
    if reject_fraction is not None and not 0.0 <= reject_fraction < 1.0:
        raise UsageError(f"--reject-fraction must be in [0, 1), got {reject_fraction}")


def _read_reference(path: Path) -> np.ndarray:
    return read_labels_csv(path, None)[1]


def decisions(scores: np.ndarray, threshold: float) -> list[str]:
    """``accept``/``reject`` per score (``score >= threshold`` is accepted).

    Example:
        >>> decisions(np.array([0.2, 0.7]), 0.5)
        ['reject', 'accept']
    """
    return ["accept" if a else "reject" for a in accept_mask(scores, threshold)]


def scaled_scores(meta: dict[str, Any], scores: Any) -> np.ndarray:
    """Scores on the ISO/IEC 29794-1 convention, 0-100 (higher is better): each score's percentile among the
    model's stored validation scores (all images, ``extra.score_distribution``; a monotone map).

    Raises:
        UsageError: the model stores no score distribution.

    Example:
        >>> scaled_scores({"extra": {"score_distribution": {"levels": [0, 1], "quantiles": [0.0, 2.0]}}}, [1.0])
        array([50])
    """
    dist = sidecar_distribution(meta, "all")
    if not dist:
        raise UsageError("--scale 0-100 maps scores through the validation distribution a model stores in its "
                         "sidecar (extra.score_distribution, e.g. the built-in models); this model has none")
    return to_0_100(dist, np.asarray(scores, dtype=np.float64))

