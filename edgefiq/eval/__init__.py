"""``edgefiq eval``: compare quality sources by EDC/pAUC and correlation; report writers.

Example:
    >>> from edgefiq.eval import evaluate
    >>> evaluate("faces/", qualities=[("student", "s.csv")], embeddings="e.npy",   # doctest: +SKIP
    ...          identities_from_folders=True, random_baseline=True, out_dir="report/")
"""

from edgefiq.eval.core import evaluate, read_embeddings
from edgefiq.eval.report import format_markdown, plot_edc, write_report

__all__ = ["evaluate", "read_embeddings", "format_markdown", "plot_edc", "write_report"]
