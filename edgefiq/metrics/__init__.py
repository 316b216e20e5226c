"""Evaluation metrics in plain numpy: rank/linear correlations and EDC/pAUC.

``srcc``, ``plcc``, ``krcc`` live in :mod:`edgefiq.metrics.correlation`; the
Error-versus-Discard Characteristic and its partial area in :mod:`edgefiq.metrics.edc`
(definitions in that module's docstring).

Example:
    >>> from edgefiq.metrics import srcc
    >>> srcc([1, 2, 3], [1, 3, 2])
    0.5
"""

from edgefiq.metrics.correlation import krcc, plcc, srcc

__all__ = ["srcc", "plcc", "krcc"]
