"""One ``Registry`` helper for every pluggable family (students, teachers, losses, backends, FR models).

Registries are filled when the module that defines an entry is imported. Each registry
names the package that holds its entries (``populate``) and imports it on first lookup,
so ``BACKENDS.names()`` is complete no matter what the caller imported before.

Example:
    >>> from edgefiq.registry import Registry
    >>> COLORS = Registry("color")
    >>> @COLORS.register("red")
    ... def red():
    ...     return "#f00"
    >>> COLORS.get("red")()
    '#f00'
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Iterator, TypeVar

from edgefiq.errors import UsageError

T = TypeVar("T")


class Registry:
    """Name -> object mapping with helpful errors for unknown names."""

    def __init__(self, kind: str, populate: str | None = None) -> None:
        self.kind = kind
        self._populate = populate
        self._populated = populate is None
        self._entries: dict[str, Any] = {}

    def _ensure(self) -> None:
        if not self._populated:
            self._populated = True
            importlib.import_module(self._populate)  # type: ignore[arg-type]

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name`` (names are unique)."""

        def deco(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = obj
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. an entry a test or a plugin registered for a while); unknown names are ignored."""
        self._entries.pop(name, None)

    def get(self, name: str) -> Any:
        """Return the entry for ``name`` or raise ``UsageError`` with the closest names."""
        self._ensure()
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(f"unknown {self.kind} {name!r}{suggest(name, self.names())}") from None

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._ensure()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A ``"; did you mean 'x'?"`` suffix (or the valid choices) for error messages."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; choose from {', '.join(choices)}" if choices else ""


# The project's registries. Entries live next to their code; see each package's __init__.
STUDENTS = Registry("student", populate="edgefiq.models.students")
FR_MODELS = Registry("face recognition architecture", populate="edgefiq.models.fr")
TEACHERS = Registry("teacher", populate="edgefiq.teachers")
LOSSES = Registry("loss", populate="edgefiq.losses")
BACKENDS = Registry("backend", populate="edgefiq.export")
# ``path, threads -> (runner, preprocess, meta)`` for model files that are not exported artifacts
# (edgefiq ``.pt`` checkpoints): the torch-free runtime reaches the models layer through it.
CHECKPOINT_RUNNERS = Registry("checkpoint format", populate="edgefiq.models.checkpoint")
