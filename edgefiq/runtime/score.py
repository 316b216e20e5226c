"""Score an image folder with any artifact or checkpoint and write ``path,quality`` CSV.

Torch-free for exported artifacts (see ``edgefiq.runtime.model``). Bad images follow the
``on_bad_image`` policy: ``error`` stops with a one-line message naming the file, ``skip``
leaves the file out of the CSV and lists it in ``skipped.txt`` next to the CSV.

Example:
    >>> score_folder("export/student.onnx", "faces/", "scores.csv")   # doctest: +SKIP
    PosixPath('scores.csv')
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from edgefiq.runtime.model import QualityModel, landmarks_for, load_model


def score_paths(model: QualityModel, paths: Sequence[Path], *, relpaths: Sequence[str] | None = None,
                batch_size: int = 32, on_bad_image: str = "error", skips: object | None = None,
                landmarks: dict[str, np.ndarray] | None = None, desc: str = "score") -> tuple[list[int], np.ndarray]:
    """Score image files in batches with a progress bar.

    Args:
        model: from ``load_model``.
        paths: image files.
        relpaths: keys into ``landmarks`` (default: the paths as given).
        batch_size: images per runner call.
        on_bad_image: ``error`` or ``skip`` (skipped files are recorded in ``skips``, a ``SkipLog``).
        landmarks: optional ``{relpath: (5, 2)}`` to align each image before scoring.

    Returns:
        ``(kept_indices, scores)``: positions in ``paths`` that were scored and their scores.

    Example:
        >>> idx, q = score_paths(load_model("m.onnx"), paths, batch_size=16)   # doctest: +SKIP
    """
    from edgefiq.data.images import SkipLog, check_on_bad_image, load_or_skip
    from edgefiq.utils import progress

    check_on_bad_image(on_bad_image)
    skips = skips if skips is not None else SkipLog()
    keys = list(relpaths) if relpaths is not None else [str(p) for p in paths]
    marks = landmarks_for(keys, landmarks)
    kept: list[int] = []
    scores: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    batch_idx: list[int] = []
    bar = progress(total=len(paths), desc=desc)

    def flush() -> None:
        if batch:
            scores.append(model.score_batch(np.stack(batch)))
            kept.extend(batch_idx)
            bar.update(len(batch))
            batch.clear()
            batch_idx.clear()

    try:
        for k, p in enumerate(paths):
            img = load_or_skip(p, on_bad_image, skips)
            if img is None:
                bar.update(1)
                continue
            batch.append(model.prepare(img, marks[k] if marks is not None else None))
            batch_idx.append(k)
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()
    return kept, (np.concatenate(scores) if scores else np.zeros(0, np.float32))


def write_scores_csv(out_csv: str | Path, relpaths: Sequence[str], scores: np.ndarray) -> Path:
    """Write ``path,quality`` rows atomically (the label CSV format of every edgefiq command)."""
    from edgefiq.utils import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "quality"])
    for r, s in zip(relpaths, np.asarray(scores, dtype=np.float64).tolist()):
        w.writerow([r, repr(float(s))])
    return atomic_write_text(out_csv, buf.getvalue())


def score_folder(model_path: str | Path, images: str | Path, out_csv: str | Path, *, batch_size: int = 32,
                 threads: int | None = None, on_bad_image: str = "error",
                 landmarks_tsv: str | Path | None = None, mirror_average: bool = False) -> Path:
    """Score every image under ``images`` and write ``out_csv`` (``path`` relative to ``images``).

    Args:
        model_path: exported artifact (with sidecar) or edgefiq ``.pt`` checkpoint.
        images: folder (searched recursively) or a single image file.
        out_csv: output CSV; ``skipped.txt`` is written next to it when images were skipped.
        batch_size: images per runner call.
        threads: runtime intra-op threads.
        on_bad_image: ``error`` or ``skip``.
        landmarks_tsv: optional ``relpath<TAB>x1 y1 .. x5 y5`` file: align each image first.
        mirror_average: score each image as the mean over it and its mirror image (2x compute).

    Returns:
        The CSV path.

    Example:
        >>> score_folder("student.onnx", "../shared/data/lfw-dev/aligned112", "q.csv")   # doctest: +SKIP
    """
    from edgefiq.data.images import SkipLog
    from edgefiq.data.readers import list_images, relpaths

    root = Path(images)
    if root.is_file():
        paths, rels = [root], [root.name]
    else:
        paths = list_images(root)
        rels = relpaths(paths, root)
    marks = None
    if landmarks_tsv is not None:
        from edgefiq.data.align import read_landmarks_tsv

        marks = read_landmarks_tsv(landmarks_tsv)
    model = load_model(model_path, threads=threads, mirror_average=mirror_average)
    skips = SkipLog()
    kept, scores = score_paths(model, paths, relpaths=rels, batch_size=batch_size, on_bad_image=on_bad_image,
                               skips=skips, landmarks=marks)
    out = write_scores_csv(out_csv, [rels[k] for k in kept], scores)
    skips.write(Path(out_csv).parent)
    return out
