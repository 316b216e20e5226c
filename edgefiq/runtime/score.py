"""Score an image folder with any artifact or checkpoint and write ``path,quality`` CSV.

Torch-free for exported artifacts (see ``edgefiq.runtime.model``). Bad images follow the
``on_bad_image`` policy: ``error`` stops with a one-line message naming the file, ``skip``
leaves the file out of the CSV and lists it in ``<csv stem>.skipped.txt`` next to the CSV
(``edgefiq.data.images.SkipLog.write_for``). Any file name round-trips through the CSV.

Example:
    >>> score_folder("export/student.onnx", "faces/", "scores.csv")   # doctest: +SKIP
    PosixPath('scores.csv')
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from edgefiq.data.align import read_landmarks_tsv
from edgefiq.data.images import SkipLog, check_on_bad_image, image_info, load_or_skip
from edgefiq.data.pathtext import write_path_text
from edgefiq.data.readers import list_images, relpaths
from edgefiq.errors import BadImageError, DataError, UsageError
from edgefiq.runtime.gate import SCALE_COLUMN, check_gate, decisions, gate_threshold, scaled_scores
from edgefiq.runtime.inputs import SizeCheck
from edgefiq.runtime.model import QualityModel, landmarks_for, load_model
from edgefiq.utils import progress

log = logging.getLogger("edgefiq.score")


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
    check_on_bad_image(on_bad_image)
    skips = skips if skips is not None else SkipLog()
    keys = list(relpaths) if relpaths is not None else [str(p) for p in paths]
    marks = landmarks_for(keys, landmarks)
    kept: list[int] = []
    scores: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    batch_idx: list[int] = []
    bar = progress(total=len(paths), desc=desc)
    sizes = SizeCheck(tuple(model.preprocess.size))

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
            mark = marks[k] if marks is not None else None
            if mark is None:
                sizes.add(keys[k], img.shape[:2])
            batch.append(model.prepare(img, mark))
            batch_idx.append(k)
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()
    sizes.warn()
    return kept, (np.concatenate(scores) if scores else np.zeros(0, np.float32))


def write_scores_csv(out_csv: str | Path, relpaths: Sequence[str], scores: np.ndarray,
                     decision: Sequence[str] | None = None, scaled: Sequence[int] | None = None) -> Path:
    """Write ``path,quality`` rows atomically (the label CSV format of every edgefiq command); ``-`` = stdout.

    Paths that are not valid UTF-8 are kept byte for byte (``edgefiq.data.pathtext``).

    Example:
        >>> write_scores_csv("q.csv", ["a/1.jpg"], np.array([0.5]))   # doctest: +SKIP
        PosixPath('q.csv')
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "quality", *([SCALE_COLUMN] if scaled is not None else []),
                *(["decision"] if decision is not None else [])])  # decision: the quality gate
    for k, (r, s) in enumerate(zip(relpaths, np.asarray(scores, dtype=np.float64).tolist())):
        w.writerow([r, repr(float(s)), *([int(scaled[k])] if scaled is not None else []),
                    *([decision[k]] if decision is not None else [])])
    return write_path_text(out_csv, buf.getvalue())


def score_folder(model_path: str | Path | None, images: str | Path, out_csv: str | Path, *, batch_size: int = 32,
                 threads: int | None = None, on_bad_image: str = "error",
                 landmarks_tsv: str | Path | None = None, mirror_average: bool = False,
                 threshold: float | None = None, reject_fraction: float | None = None,
                 reference: str | Path | None = None, strict: bool = False, population: str = "clean",
                 scale: bool = False) -> Path:
    """Score every image under ``images`` and write ``out_csv`` (``path`` relative to ``images``).

    Args:
        model_path: exported artifact (with sidecar), edgefiq ``.pt`` checkpoint, or a built-in model
            (``None`` = the default one, ``builtin:NAME``; ``edgefiq.runtime.builtin_models``).
        images: folder (searched recursively) or a single image file.
        out_csv: output CSV; ``<stem>.skipped.txt`` is written next to it when images were skipped
            (paths relative to ``images``), with a console warning.
        batch_size: images per runner call.
        threads: runtime intra-op threads.
        on_bad_image: ``error`` or ``skip``.
        landmarks_tsv: optional ``relpath<TAB>x1 y1 .. x5 y5`` file: align each image first.
        mirror_average: score each image as the mean over it and its mirror image (2x compute).
        threshold: quality gate: a ``decision`` column, ``reject`` for scores below it.
        reject_fraction: quality gate from a fraction to reject: the threshold is that quantile of
            ``reference`` scores, else of the model's stored validation distribution, else of this
            run's scores (``edgefiq.runtime.gate``).
        reference: ``path,quality`` CSV of reference scores for ``reject_fraction``.
        population: the stored distribution ``reject_fraction`` reads: ``clean`` photos or ``all`` images.
        scale: add ``quality_0_100`` (``edgefiq.runtime.gate.scaled_scores``).
        strict: refuse (``UsageError``, before scoring) when an image without landmarks is not of the
            model's input size, instead of warning after scoring.

    Returns:
        The CSV path.

    Example:
        >>> score_folder("student.onnx", "../shared/data/lfw-dev/aligned112", "q.csv")   # doctest: +SKIP
    """
    check_gate(threshold, reject_fraction, reference)
    root = Path(images)
    if root.is_file():
        paths, rels = [root], [root.name]
    else:
        paths = list_images(root)
        rels = relpaths(paths, root)
    marks = None
    if landmarks_tsv is not None:
        marks = _landmarks_for_images(landmarks_tsv, rels)
    model = load_model(model_path, threads=threads, mirror_average=mirror_average)
    if scale:
        scaled_scores(model.meta, [])   # a model without a stored distribution is refused before scoring
    if strict:
        require_aligned(paths, rels, marks, tuple(model.preprocess.size))
    skips = SkipLog(root=root.parent if root.is_file() else root)
    kept, scores = score_paths(model, paths, relpaths=rels, batch_size=batch_size, on_bad_image=on_bad_image,
                               skips=skips, landmarks=marks)
    decision = _gate(model, scores, threshold, reject_fraction, reference, population=population)
    scaled = scaled_scores(model.meta, scores) if scale else None
    out = write_scores_csv(out_csv, [rels[k] for k in kept], scores, decision, scaled)
    skips.write_for(out_csv)
    return out


def require_aligned(paths: Sequence[Path], rels: Sequence[str], marks: dict[str, np.ndarray] | None,
                    size: tuple[int, ...]) -> None:
    """Refuse images that have no landmarks and are not of the model's input size (header reads only).

    Raises:
        UsageError: with the count and an example; unreadable files are left to the bad-image policy.

    Example:
        >>> require_aligned([Path("raw/a.jpg")], ["a.jpg"], None, (112, 112))   # doctest: +SKIP
    """
    sizes = SizeCheck(size)
    for p, rel in zip(paths, rels):
        if marks is None or rel not in marks:
            try:
                info = image_info(p)
            except BadImageError:
                continue
            sizes.add(rel, (info.height, info.width))
    if sizes.n_other and sizes.example is not None:
        name, (h, w) = sizes.example
        raise UsageError(f"{sizes.n_other} image(s) are not {sizes.expected()} aligned face crops "
                         f"(e.g. {name} is {h}x{w}): use --detect or --landmarks, or drop --strict")


def _gate(model: QualityModel, scores: np.ndarray, threshold: float | None, reject_fraction: float | None,
          reference: str | Path | None, unit: str = "images", population: str = "clean") -> list[str] | None:
    """``accept``/``reject`` per score under the gate asked for (``edgefiq.runtime.gate``), or None.

    ``unit`` names what the scores are of in the console line (``images``, or ``faces`` for ``--detect``).
    """
    gate = gate_threshold(model.meta, threshold=threshold, reject_fraction=reject_fraction, reference=reference,
                          scores=scores, population=population)
    if gate is None:
        return None
    out = decisions(scores, gate[0])
    log.info("quality gate: threshold %.6g (%s): %d of %d %s rejected", gate[0], gate[1], out.count("reject"),
             len(out), unit)
    return out


def _landmarks_for_images(landmarks_tsv: str | Path, rels: Sequence[str]) -> dict[str, np.ndarray]:
    """Read the landmarks TSV; error if none of its paths is an image under the folder, warn if some miss."""
    marks = read_landmarks_tsv(landmarks_tsv)
    missing = [r for r in rels if r not in marks]
    if rels and len(missing) == len(rels):
        raise DataError(f"{landmarks_tsv}: none of its {len(marks)} paths matches an image under the folder "
                        f"(e.g. {next(iter(marks))!r} vs {rels[0]!r}); paths must be relative to IMAGES")
    if missing:
        log.warning("warning: %d of %d images have no line in %s and are scored unaligned (e.g. %s)",
                    len(missing), len(rels), landmarks_tsv, missing[0])
    return marks
