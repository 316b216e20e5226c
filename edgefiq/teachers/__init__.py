"""Quality teachers (one registry, ``TEACHERS``) and the labelling engine.

Teachers: ``prefiqs`` (pruning agreement), ``norm`` (embedding norm), ``serfiq`` (dropout
robustness), ``severity`` (known degradation severity), ``model`` (your scalar model),
``csv`` (your labels), ``ensemble`` (weighted rank average). Importing this package
registers all of them.

Example:
    >>> from edgefiq.registry import TEACHERS
    >>> TEACHERS.names()
    ['csv', 'ensemble', 'model', 'norm', 'prefiqs', 'serfiq', 'severity']
"""

from edgefiq.teachers import ensemble, external, norm, prefiqs, serfiq, severity  # noqa: F401 - registration
from edgefiq.teachers.base import FRTeacher, Teacher, make_teacher
from edgefiq.teachers.label import label_images

__all__ = ["FRTeacher", "Teacher", "label_images", "make_teacher"]
