"""Error hierarchy. The CLI turns each into a one-line message and an exit code.

Exit codes: 2 = usage (bad flags, bad recipe, unknown name), 1 = data or runtime
(unreadable image, failed parity gate, missing backend). Library code raises these;
it never calls ``sys.exit``.
"""

from __future__ import annotations


class EdgefiqError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code: int = 1


class UsageError(EdgefiqError):
    """The user asked for something invalid (flag, option value, unknown name)."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe file has an unknown key, a wrong type or an invalid value.

    ``key`` is the dotted recipe key the message is about (``distill.defaults.optim.lr``), when
    there is one: ``edgefiq recipe check`` reports it in ``--set`` spelling and checks the rest.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class DataError(EdgefiqError):
    """Input data is missing, empty or malformed."""


class BadImageError(DataError):
    """One image cannot be decoded or converted; ``path`` names it."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class UnsafeFileError(DataError):
    """A file would execute code when loaded (e.g. a malicious pickle)."""


class BackendUnavailableError(EdgefiqError):
    """An optional runtime or converter is not installed; the message names the pip command."""


class ExportError(EdgefiqError):
    """A model could not be converted or quantised for a target."""


class ParityError(ExportError):
    """An exported artifact does not score like the torch model it came from."""
