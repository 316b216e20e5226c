"""Text files that list file names (label and score CSVs, skip files): every name round-trips.

On Linux a file name is bytes; one that is not valid UTF-8 (``b"\\xff\\xfe.jpg"``) reaches
Python as a str with surrogate escapes, which a plain UTF-8 write refuses with a
``UnicodeEncodeError`` (and the whole run's scores are lost). These files are written and
read as UTF-8 with ``errors="surrogateescape"``: valid names are ordinary UTF-8, any other
name is written as its original bytes and reads back as the same str, so
``os.fsencode(root / path)`` is the file again. Torch-free.

Example:
    >>> write_path_text("-", "path,quality\\n")   # doctest: +SKIP
    PosixPath('-')
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgefiq.utils import atomic_path

#: ``open(..., encoding=PATH_ENCODING, errors=PATH_ERRORS)`` reads what ``write_path_text`` wrote.
PATH_ENCODING = "utf-8"
PATH_ERRORS = "surrogateescape"


def write_path_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (``-`` = stdout) so that any file name in it round-trips.

    Example:
        >>> write_path_text("scores.csv", "path,quality\\na.jpg,0.5\\n")   # doctest: +SKIP
        PosixPath('scores.csv')
    """
    data = text.encode(PATH_ENCODING, PATH_ERRORS)
    if str(path) == "-":
        out = getattr(sys.stdout, "buffer", None)
        if out is None:  # a text-only stream (no bytes underneath): show odd bytes escaped
            sys.stdout.write(data.decode(PATH_ENCODING, "backslashreplace"))
        else:
            sys.stdout.flush()
            out.write(data)
            out.flush()
        sys.stdout.flush()
        return Path("-")
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)
