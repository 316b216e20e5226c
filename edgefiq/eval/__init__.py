"""``edgefiq eval``: compare quality sources by EDC/pAUC and correlation; report writers.

Example:
    >>> from edgefiq.eval import evaluate
    >>> evaluate("faces/", qualities=[("student", "s.csv")], embeddings="e.npy",   # doctest: +SKIP
    ...          identities_from_folders=True, random_baseline=True, out_dir="report/")
"""

from edgefiq.eval.core import evaluate, read_embeddings
from edgefiq.eval.report import format_markdown, plot_edc, write_report
from edgefiq.eval.sources import EvalSet, QualitySource, SourceEvaluation, embed_images

__all__ = ["EvalSet", "QualitySource", "SourceEvaluation", "embed_images", "evaluate", "format_markdown", "plot_edc",
           "read_embeddings", "write_report"]
