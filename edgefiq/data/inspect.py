"""Summarise a dataset: image folder, identity tree, LFW pairs file, label CSV or insightface .bin.

``inspect_path`` detects what ``path`` is and returns a JSON-friendly report:
counts of images and identities, image sizes, modes and formats, unreadable
files, and for pair files the genuine/impostor counts and missing images.
Headers only by default (fast: no pixel decode); ``verify=True`` decodes every
image fully, which also catches truncated files. Torch-free.

Example:
    >>> rep = inspect_path("../shared/data/lfw-dev/aligned112")     # doctest: +SKIP
    >>> rep["images"], rep["identities"]                             # doctest: +SKIP
    (9502, 4416)
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

from edgefiq.data.images import SkipLog, check_on_bad_image, image_info
from edgefiq.data.insightface import decode_image_bytes, read_insightface_bin
from edgefiq.data.readers import identity_of, list_images, read_labels_csv, read_lfw_pairs
from edgefiq.errors import BadImageError, DataError
from edgefiq.utils import progress

MAX_LISTED = 20


def _scan(paths: Iterable[Path], verify: bool, on_bad_image: str, skips: SkipLog) -> dict[str, Any]:
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    paths = list(paths)
    for p in progress(paths, desc="inspect", unit="img"):
        try:
            info = image_info(p, verify=verify)
        except BadImageError as e:
            skips.handle(e, on_bad_image)
            continue
        sizes[f"{info.width}x{info.height}"] += 1
        modes[info.mode] += 1
        formats[info.format] += 1
    return {"readable": sum(modes.values()), "sizes": dict(sizes.most_common()), "modes": dict(modes.most_common()),
            "formats": dict(formats.most_common())}


def _unreadable(skips: SkipLog) -> list[dict[str, str]]:
    return [{"path": p, "reason": r} for p, r in skips.entries]


def inspect_folder(root: Path, verify: bool, on_bad_image: str, skips: SkipLog) -> dict[str, Any]:
    """Report on an image folder or identity tree (``<identity>/<image>``)."""
    paths = list_images(root)
    ids = Counter(identity_of(p.relative_to(root)) for p in paths)
    tree = "" not in ids
    rep: dict[str, Any] = {"kind": "identity_tree" if tree else "image_folder", "path": str(root), "images": len(paths)}
    if tree:
        per = np.array(sorted(ids.values()))
        rep.update(identities=len(ids), per_identity={"min": int(per.min()), "median": float(np.median(per)),
                                                      "max": int(per.max())},
                   identities_with_2plus=int((per >= 2).sum()))
    else:
        rep["identities"] = None
    rep.update(_scan(paths, verify, on_bad_image, skips))
    return rep


def inspect_pairs(pairs_txt: Path, images_root: Path | None, verify: bool, on_bad_image: str,
                  skips: SkipLog) -> dict[str, Any]:
    """Report on an LFW ``pairs.txt``: pairs, genuine/impostor, and which referenced images are missing."""
    pairs = read_lfw_pairs(pairs_txt)
    root = images_root or pairs_txt.parent / "aligned112"
    if not root.is_dir():
        raise DataError(f"{root}: images root not found; pass --images-root DIR (the folder the pair paths are relative to)")
    rels = sorted({r for a, b, _ in pairs for r in (a, b)})
    missing = [r for r in rels if not (root / r).is_file()]
    present = [root / r for r in rels if (root / r).is_file()]
    gone = set(missing)
    genuine = sum(g for *_, g in pairs)
    header = pairs_txt.read_text().split("\n", 1)[0].split()
    rep: dict[str, Any] = {"kind": "lfw_pairs", "path": str(pairs_txt), "images_root": str(root), "pairs": len(pairs),
                           "genuine": genuine, "impostor": len(pairs) - genuine,
                           "folds": int(header[0]) if len(header) == 2 else 1, "images": len(rels),
                           "identities": len({r.split("/")[0] for r in rels}),
                           "missing": len(missing), "missing_files": missing,
                           "pairs_with_missing": sum((a in gone) or (b in gone) for a, b, _ in pairs)}
    rep.update(_scan(present, verify, on_bad_image, skips))
    return rep


def inspect_bin(path: Path, verify: bool, on_bad_image: str, skips: SkipLog) -> dict[str, Any]:
    """Report on an insightface ``.bin`` (read with the restricted unpickler)."""
    blobs, issame = read_insightface_bin(path, decode=False)
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    for i, b in enumerate(blobs):
        where = f"{path}[image {i}]"
        try:
            if verify:
                decode_image_bytes(b, where)
            with Image.open(io.BytesIO(b)) as im:
                sizes[f"{im.width}x{im.height}"] += 1
                modes[im.mode] += 1
                formats[im.format or "?"] += 1
        except BadImageError as e:
            skips.handle(e, on_bad_image)
        except Exception as e:  # noqa: BLE001 - any header failure is a bad image
            skips.handle(BadImageError(where, f"not an image ({type(e).__name__})"), on_bad_image)
    genuine = sum(issame)
    return {"kind": "insightface_bin", "path": str(path), "images": len(blobs), "pairs": len(issame),
            "genuine": genuine, "impostor": len(issame) - genuine, "identities": None,
            "readable": sum(modes.values()), "sizes": dict(sizes), "modes": dict(modes), "formats": dict(formats)}


def inspect_labels(csv_path: Path, images_root: Path | None, verify: bool, on_bad_image: str,
                   skips: SkipLog) -> dict[str, Any]:
    """Report on a label CSV (``path,quality``): rows, label statistics and the images they point to."""
    root = images_root or csv_path.parent
    paths, q = read_labels_csv(csv_path, root)
    ids = {identity_of(p.relative_to(root)) for p in paths} - {""}
    rep: dict[str, Any] = {"kind": "label_csv", "path": str(csv_path), "images_root": str(root), "images": len(paths),
                           "identities": len(ids) or None,
                           "quality": {"min": float(q.min()), "mean": float(q.mean()), "max": float(q.max()),
                                       "std": float(q.std())}}
    rep.update(_scan(paths, verify, on_bad_image, skips))
    return rep


def inspect_path(path: str | Path, *, images_root: str | Path | None = None, verify: bool = False,
                 on_bad_image: str = "error", skips: SkipLog | None = None) -> dict[str, Any]:
    """Inspect a folder, identity tree, LFW ``pairs.txt``, label ``.csv`` or insightface ``.bin``.

    Args:
        path: what to inspect (its type is detected).
        images_root: for pairs files and label CSVs, the folder their paths are relative to
            (default: ``aligned112`` next to a pairs file; the CSV's own folder for a CSV).
        verify: decode every image fully (slower; also catches truncated files).
        on_bad_image: ``error`` raises on the first unreadable image; ``skip`` lists them all in the report.
        skips: optional ``SkipLog`` that receives the unreadable files.

    Returns:
        A JSON-friendly dict (``kind``, ``images``, ``identities``, ``sizes``, ``modes``,
        ``unreadable``, and ``pairs``/``genuine``/``impostor``/``missing`` for pair files).

    Example:
        >>> inspect_path("../shared/data/insightface-bin/small_lfw.bin")["pairs"]   # doctest: +SKIP
        10
    """
    check_on_bad_image(on_bad_image)
    p = Path(path)
    root = Path(images_root) if images_root else None
    skips = skips if skips is not None else SkipLog()
    if not p.exists():
        raise DataError(f"{p}: not found")
    if p.is_dir():
        rep = inspect_folder(p, verify, on_bad_image, skips)
    elif p.suffix.lower() == ".bin":
        rep = inspect_bin(p, verify, on_bad_image, skips)
    elif p.suffix.lower() == ".txt":
        rep = inspect_pairs(p, root, verify, on_bad_image, skips)
    elif p.suffix.lower() == ".csv":
        rep = inspect_labels(p, root, verify, on_bad_image, skips)
    else:
        raise DataError(f"{p}: cannot inspect this file type; expected a folder, a pairs .txt, a label .csv or a .bin")
    rep["verified"] = verify
    rep["unreadable"] = _unreadable(skips)
    return rep


def format_report(rep: dict[str, Any]) -> str:
    """Human-readable summary of an ``inspect_path`` report (a headline, then details)."""
    lines: list[str] = []
    kind = rep["kind"]
    if kind in ("insightface_bin", "lfw_pairs"):
        lines.append(f"{rep['path']}: {rep['images']:,} images and {rep['pairs']:,} pairs "
                     f"({rep['genuine']:,} genuine, {rep['impostor']:,} impostor)")
        if kind == "lfw_pairs":
            lines.append(f"  folds: {rep['folds']}  identities: {rep['identities']:,}  images root: {rep['images_root']}")
            lines.append(f"  missing images: {rep['missing']:,} (in {rep['pairs_with_missing']:,} pairs)")
            lines += [f"    {m}" for m in rep["missing_files"][:MAX_LISTED]]
            if rep["missing"] > MAX_LISTED:
                lines.append(f"    ... and {rep['missing'] - MAX_LISTED} more (see --json)")
    elif rep.get("identities"):
        lines.append(f"{rep['path']}: {rep['images']:,} images of {rep['identities']:,} identities")
        if "per_identity" in rep:
            pi = rep["per_identity"]
            lines.append(f"  images per identity: min {pi['min']}, median {pi['median']:g}, max {pi['max']}; "
                         f"identities with >= 2 images: {rep['identities_with_2plus']:,}")
    else:
        lines.append(f"{rep['path']}: {rep['images']:,} images (flat folder, no identities)")
    if kind == "label_csv":
        q = rep["quality"]
        lines.append(f"  quality: min {q['min']:.4g}, mean {q['mean']:.4g}, max {q['max']:.4g}, std {q['std']:.4g}")

    def _fmt(d: dict[str, int]) -> str:
        items = list(d.items())
        s = ", ".join(f"{k} ({v:,})" for k, v in items[:6])
        return s + (f", ... {len(items) - 6} more" if len(items) > 6 else "")

    lines.append(f"  sizes: {_fmt(rep['sizes'])}")
    lines.append(f"  modes: {_fmt(rep['modes'])}   formats: {_fmt(rep['formats'])}")
    check = "fully decoded" if rep["verified"] else "headers only; --verify decodes every image"
    lines.append(f"  unreadable: {len(rep['unreadable']):,} ({check})")
    lines += [f"    {u['path']}: {u['reason']}" for u in rep["unreadable"][:MAX_LISTED]]
    if len(rep["unreadable"]) > MAX_LISTED:
        lines.append(f"    ... and {len(rep['unreadable']) - MAX_LISTED} more (see --json)")
    return "\n".join(lines)
