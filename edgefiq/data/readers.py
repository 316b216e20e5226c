"""Readers for the data layouts edgefiq accepts: image folders, identity trees, label CSVs, LFW pairs, insightface .bin.

- Image folder: any folder of ``.jpg/.jpeg/.png/.bmp/.webp`` files, searched
  recursively; hidden files and folders (names starting with ``.``) are ignored.
- Identity tree: ``<root>/<identity>/<image>``; the identity is the first path component.
- Label CSV: columns ``path,quality[,extra...]``; ``path`` relative to an images root
  (POSIX separators).
- LFW ``pairs.txt``: header ``folds n`` (or ``n``), then per fold ``n`` same-person
  lines ``name i j`` and ``n`` different-person lines ``name1 i name2 j``;
  image ``i`` of ``name`` is ``name/name_%04d.jpg``.
- insightface ``.bin``: see ``edgefiq.data.insightface`` (restricted unpickler).

Torch-free.

Example:
    >>> paths = list_images("../shared/data/lfw-dev/aligned112")     # doctest: +SKIP
    >>> identity_of("Aaron_Guiel/Aaron_Guiel_0001.jpg")
    'Aaron_Guiel'
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Sequence

import numpy as np

from edgefiq.data.images import is_image_name
from edgefiq.data.insightface import read_insightface_bin, write_insightface_bin
from edgefiq.data.pathtext import PATH_ERRORS, write_path_text
from edgefiq.errors import DataError

__all__ = ["list_images", "relpaths", "identity_of", "read_labels_csv", "read_lfw_pairs", "lfw_fold_identities", "lfw_relpath",
           "read_insightface_bin", "write_insightface_bin"]


def list_images(root: str | Path) -> list[Path]:
    """All image files under ``root`` (recursive), sorted by their path relative to ``root``.

    Raises:
        DataError: ``root`` is missing, not a folder, or holds no images.

    Example:
        >>> list_images("faces/")[:2]          # doctest: +SKIP
        [PosixPath('faces/Alice/Alice_0001.jpg'), PosixPath('faces/Alice/Alice_0002.jpg')]
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: folder not found")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (expected a folder of images)")
    rels: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink cycle: do not walk the same folder twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root)
        for f in filenames:
            if not f.startswith(".") and is_image_name(f):
                rels.append(f if rel_dir == "." else PurePosixPath(Path(rel_dir).as_posix(), f).as_posix())
    if not rels:
        raise DataError(f"{root}: no images found (looked for .jpg .jpeg .png .bmp .webp, recursively)")
    rels.sort()
    return [root / r for r in rels]


def relpaths(paths: list[Path], root: str | Path) -> list[str]:
    """POSIX paths of ``paths`` relative to ``root`` (the form label CSVs use)."""
    root = Path(root)
    return [Path(p).relative_to(root).as_posix() for p in paths]


def identity_of(relpath: str | Path) -> str:
    """Identity of an image in an identity tree: the first component of its relative path.

    Returns ``""`` for a file directly in the root (a flat folder has no identities).

    Example:
        >>> identity_of("George_W_Bush/George_W_Bush_0001.jpg")
        'George_W_Bush'
    """
    parts = PurePosixPath(Path(relpath).as_posix()).parts
    return parts[0] if len(parts) > 1 else ""


def read_labels_csv(csv_path: str | Path, images_root: str | Path | None, *,
                    column: str = "quality") -> tuple[list[Path], np.ndarray]:
    """Read a label CSV (``path,quality[,extra...]``) and check every row: the one label-CSV reader.

    Args:
        csv_path: the CSV file.
        images_root: folder the paths are relative to (every file must exist), or None.
        column: the score column (default ``quality``).

    Raises:
        DataError: the file is missing or empty, a column is missing, or a row has an
            empty/non-numeric/NaN/inf quality, a path that is absolute or climbs out with
            ``..`` (paths must be relative to the images root), or a file that does not exist
            (the message names the CSV, the row number and the path).

    Returns:
        ``(paths, quality)``: image paths joined to ``images_root`` and float64 labels. With
        ``images_root=None`` the paths are returned as written and not checked (a CSV of scores
        whose images are elsewhere, e.g. ``edgefiq score --reference``).

    Example:
        >>> paths, q = read_labels_csv("labels.csv", "faces/")   # doctest: +SKIP
    """
    csv_path, root = Path(csv_path), Path(images_root or "")
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: label CSV not found")
    if images_root is not None and not root.is_dir():
        raise DataError(f"{root}: images root not found (needed by {csv_path.name})")
    with open(csv_path, newline="", encoding="utf-8-sig", errors=PATH_ERRORS) as f:  # any file name round-trips
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if not cols:
            raise DataError(f"{csv_path}: empty file (expected a header 'path,quality')")
        missing = [c for c in ("path", column) if c not in cols]
        if missing:
            raise DataError(f"{csv_path}: missing column(s) {', '.join(missing)} (found: {', '.join(cols)}); "
                            f"expected a header 'path,{column}'")
        reader.fieldnames = cols
        paths: list[Path] = []
        quality: list[float] = []
        problems: list[str] = []
        for row_no, row in enumerate(reader, start=2):  # row 1 is the header
            rel = (row.get("path") or "").strip().replace("\\", "/")
            raw = (row.get(column) or "").strip()
            where = f"{csv_path} row {row_no} ({rel or 'no path'})"
            if not rel:
                problems.append(f"{where}: empty path")
                continue
            if images_root is not None and not is_relative_inside(rel):
                problems.append(f"{where}: paths must be relative to the images root {root} "
                                f"(no leading '/', drive or '..')")
                continue
            try:
                q = float(raw)
            except ValueError:
                problems.append(f"{where}: {column} {raw!r} is not a number" if raw else f"{where}: {column} is missing")
                continue
            if not math.isfinite(q):
                problems.append(f"{where}: {column} is {raw} (labels must be finite)")
                continue
            p = root / rel
            if images_root is not None and not p.is_file():
                problems.append(f"{where}: image not found under {root}")
                continue
            paths.append(p)
            quality.append(q)
    if problems:
        more = f" (and {len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    if not paths:
        raise DataError(f"{csv_path}: no rows (expected 'path,quality' lines after the header)")
    return paths, np.asarray(quality, dtype=np.float64)


def is_relative_inside(rel: str) -> bool:
    """True if the POSIX path ``rel`` stays inside whatever root it is joined to (not absolute, no ``..``).

    Example:
        >>> is_relative_inside("a/1.jpg"), is_relative_inside("/etc/hostname"), is_relative_inside("../x.jpg")
        (True, False, False)
    """
    posix = PurePosixPath(rel)
    return not (posix.is_absolute() or PureWindowsPath(rel).drive or ".." in posix.parts)


def read_label_map(csv_path: str | Path, *, column: str = "quality") -> dict[str, float]:
    """``{relative POSIX path: score}`` of a label CSV (``read_labels_csv`` without an images root).

    Example:
        >>> read_label_map("scores.csv")["a/1.jpg"]   # doctest: +SKIP
        0.73
    """
    paths, q = read_labels_csv(csv_path, None, column=column)
    return {p.as_posix(): float(v) for p, v in zip(paths, q)}


def format_labels_csv(relpaths: Sequence[str], quality: Sequence[float] | np.ndarray, *, fmt: str = ".8g") -> str:
    """The text of a label CSV: header ``path,quality``, one row per image, ``\\n`` line ends.

    Example:
        >>> format_labels_csv(["a/1.jpg"], [0.25])
        'path,quality\\na/1.jpg,0.25\\n'
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "quality"])
    w.writerows((r, format(float(v), fmt)) for r, v in zip(relpaths, quality))
    return buf.getvalue()


def write_labels_csv(csv_path: str | Path, relpaths: Sequence[str], quality: Sequence[float] | np.ndarray, *,
                     fmt: str = ".8g") -> Path:
    """Write a label CSV atomically (:func:`format_labels_csv`); the one writer for ``path,quality`` files.

    Any file name round-trips (``edgefiq.data.pathtext``).

    Example:
        >>> write_labels_csv("labels.csv", ["a/1.jpg"], [0.25])   # doctest: +SKIP
        PosixPath('labels.csv')
    """
    return write_path_text(csv_path, format_labels_csv(relpaths, quality, fmt=fmt))


def write_label_subsets(csv_path: str | Path, subsets: dict[Path, Sequence[str]]) -> int:
    """Copy the rows of a label CSV (every column, e.g. an ensemble's per-member scores) whose path is
    in ``subsets[out]`` to ``out``, in that order; any file name round-trips (``edgefiq.data.pathtext``).
    Returns the number of rows of ``csv_path``.

    Raises:
        DataError: a subset has no labelled row.

    Example:
        >>> write_label_subsets("labels.csv", {Path("train.csv"): ["a/1.jpg"], Path("val.csv"): ["b/1.jpg"]})  # doctest: +SKIP
    """
    with open(csv_path, newline="", encoding="utf-8", errors=PATH_ERRORS) as f:
        reader = csv.DictReader(f)
        header, by_path = list(reader.fieldnames or []), {r["path"]: r for r in reader}
    for out, wanted in subsets.items():
        rows = [by_path[p] for p in wanted if p in by_path]
        if not rows:
            raise DataError(f"{out}: no labelled images for this split")
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        write_path_text(out, buf.getvalue())
    return len(by_path)


def read_source_index(csv_path: str | Path) -> dict[str, str]:
    """``{relative path: source photo}`` from a CSV with ``path,source`` columns.

    The ``index.csv`` of ``edgefiq data degrade`` is one: every degraded copy names the clean
    image it was made from, so evaluations can leave out comparisons of two copies of one photo.

    Raises:
        DataError: the file is missing or lacks a ``path`` or ``source`` column.

    Example:
        >>> read_source_index("faces-degraded/index.csv")["A/a1_blur.jpg"]   # doctest: +SKIP
        'A/a1.jpg'
    """
    return {k: v.replace("\\", "/") for k, v in _index_column(csv_path, "source", "same-source index").items()}


def _index_column(csv_path: str | Path, column: str, what: str) -> dict[str, str]:
    """``{path: column}`` of an index CSV (paths with ``/``); a one-line ``DataError`` naming ``what`` otherwise."""
    p = Path(csv_path)
    if not p.is_file():
        raise DataError(f"{p}: {what} not found")
    with open(p, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"path", column} <= set(reader.fieldnames):
            raise DataError(f"{p}: expected columns path,{column} (got {reader.fieldnames})")
        return {r["path"].replace("\\", "/"): r[column] for r in reader}


def read_severity_index(csv_path: str | Path) -> dict[str, float]:
    """``{relative path: severity}`` (0 for clean copies) from the ``index.csv`` of ``edgefiq data degrade``.

    Raises:
        DataError: the file is missing, lacks a ``path`` or ``severity`` column, or a severity is not
            a finite number (the message names the row).

    Example:
        >>> read_severity_index("faces-degraded/index.csv")["A/a1__yaw_0.50.jpg"]   # doctest: +SKIP
        0.5
    """
    out = {}
    for row_no, (rel, text) in enumerate(_index_column(csv_path, "severity", "severity index (the index.csv that "
                                                       "edgefiq data degrade writes)").items(), start=2):
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise DataError(f"{csv_path}:{row_no}: severity {text!r} is not a number") from None
        if not np.isfinite(value):
            raise DataError(f"{csv_path}:{row_no}: severity is not finite")
        out[rel] = value
    return out


def read_kind_index(csv_path: str | Path) -> dict[str, str]:
    """``{relative path: degradation kind}`` (``clean`` for clean copies) from the ``index.csv`` of
    ``edgefiq data degrade``.

    Raises:
        DataError: the file is missing or lacks a ``path`` or ``kind`` column.

    Example:
        >>> read_kind_index("faces-degraded/index.csv")["A/a1__yaw_0.50.jpg"]   # doctest: +SKIP
        'yaw'
    """
    return _index_column(csv_path, "kind", "degradation index (the index.csv that edgefiq data degrade writes)")


def source_index_of(images_root: str | Path) -> dict[str, str] | None:
    """The source photos recorded next to an image folder (its ``index.csv``, as ``edgefiq data degrade``
    writes it), or None when the folder records none.

    Example:
        >>> source_index_of("faces/") is None   # doctest: +SKIP
        True
    """
    return _index_of(images_root, "source")


def kind_index_of(images_root: str | Path) -> dict[str, str] | None:
    """The degradation kind of every image recorded next to an image folder (its ``index.csv``), or None."""
    return _index_of(images_root, "kind")


def _index_of(images_root: str | Path, column: str) -> dict[str, str] | None:
    index = Path(images_root) / "index.csv"
    if not index.is_file():
        return None
    with open(index, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), [])
    if not {"path", column} <= {c.strip() for c in header}:
        return None
    return read_source_index(index) if column == "source" else read_kind_index(index)


def lfw_relpath(name: str, index: int | str) -> str:
    """LFW image ``index`` of ``name`` as a relative path: ``name/name_%04d.jpg``.

    Example:
        >>> lfw_relpath("Abel_Pacheco", 4)
        'Abel_Pacheco/Abel_Pacheco_0004.jpg'
    """
    return f"{name}/{name}_{int(index):04d}.jpg"


def read_lfw_pairs(pairs_txt: str | Path) -> list[tuple[str, str, bool]]:
    """Read an LFW ``pairs.txt`` into ``(relpath_a, relpath_b, genuine)`` tuples, in file order.

    Raises:
        DataError: missing file, bad header, a malformed line (named by line number),
            or a pair count that disagrees with the header.

    Example:
        >>> pairs = read_lfw_pairs("../shared/data/lfw-dev/pairs.txt")   # doctest: +SKIP
        >>> pairs[0]                                                      # doctest: +SKIP
        ('Abel_Pacheco/Abel_Pacheco_0001.jpg', 'Abel_Pacheco/Abel_Pacheco_0004.jpg', True)
    """
    p = Path(pairs_txt)
    if not p.is_file():
        raise DataError(f"{p}: pairs file not found")
    lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    lines = [(i, ln.split()) for i, ln in enumerate(lines, start=1) if ln.strip()]
    if not lines:
        raise DataError(f"{p}: empty pairs file")
    header = lines[0][1]
    try:
        nums = [int(x) for x in header]
    except ValueError:
        raise DataError(f"{p} line 1: expected a header 'folds n' or 'n', got {' '.join(header)!r}") from None
    if len(nums) not in (1, 2) or any(n <= 0 for n in nums):
        raise DataError(f"{p} line 1: expected a header 'folds n' or 'n', got {' '.join(header)!r}")
    expected = 2 * nums[0] * nums[1] if len(nums) == 2 else 2 * nums[0]
    pairs: list[tuple[str, str, bool]] = []
    for line_no, f in lines[1:]:
        try:
            if len(f) == 3:
                pairs.append((lfw_relpath(f[0], f[1]), lfw_relpath(f[0], f[2]), True))
            elif len(f) == 4:
                pairs.append((lfw_relpath(f[0], f[1]), lfw_relpath(f[2], f[3]), False))
            else:
                raise ValueError
        except ValueError:
            raise DataError(f"{p} line {line_no}: expected 'name i j' or 'name1 i name2 j', "
                            f"got {' '.join(f)!r}") from None
    if len(pairs) != expected:
        raise DataError(f"{p}: header {' '.join(header)!r} promises {expected} pairs, found {len(pairs)}")
    return pairs


def lfw_fold_identities(pairs_txt: str | Path, folds: Sequence[int]) -> set[str]:
    """Identities named in the given (1-based) folds of an LFW ``pairs.txt`` (10 folds in the standard file).

    The identity-disjoint validation split of the LFW recipes (``data.split.val_folds``) and of the
    benchmarks that evaluate on the same identities.

    Example:
        >>> len(lfw_fold_identities("../shared/data/lfw-dev/pairs.txt", [6, 7]))   # doctest: +SKIP
        862
    """
    pairs_txt = Path(pairs_txt)
    pairs = read_lfw_pairs(pairs_txt)
    head = pairs_txt.read_text().split("\n", 1)[0].split()
    per_fold = 2 * int(head[1]) if len(head) > 1 else len(pairs)
    out: set[str] = set()
    for k, (a, b, _) in enumerate(pairs):
        if (k // per_fold) + 1 in folds:
            out.add(a.split("/")[0])
            out.add(b.split("/")[0])
    return out
