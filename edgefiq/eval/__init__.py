"""``edgefiq eval``: compare quality sources by EDC/pAUC and correlation; report writers.

Example:
    >>> from edgefiq.eval import evaluate
    >>> evaluate("faces/", qualities=[("student", "s.csv")], embeddings="e.npy",   # doctest: +SKIP
    ...          identities_from_folders=True, random_baseline=True, out_dir="report/")
"""

from edgefiq.eval.core import evaluate, read_embeddings
from edgefiq.eval.report import format_markdown, plot_edc, write_report
from edgefiq.eval.sources import QualitySource, SourceEvaluation, build_comparisons, embed_images, evaluate_sources

__all__ = ["QualitySource", "SourceEvaluation", "build_comparisons", "embed_images", "evaluate", "evaluate_sources",
           "format_markdown", "plot_edc", "read_embeddings", "write_report"]
