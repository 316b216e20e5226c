"""The labelling engine: run a teacher over an images folder, chunked, cached, resumable, shardable.

``label_images`` lists the images (sorted relative paths), splits them into fixed chunks
and scores each chunk with the teacher. Every finished chunk is written atomically to
``<out>.parts/`` together with a manifest of the run (teacher configuration, image list
hash, batch/chunk size): an interrupted run, started again with the same settings,
skips the finished chunks, and because chunks are fixed the final CSV is byte-identical
to an uninterrupted run. Under ``torchrun`` (``WORLD_SIZE > 1``) rank ``r`` scores chunks
``r, r + W, ...`` and rank 0 merges; the result equals a single-process run.

Outputs: ``<out>`` (CSV ``path,quality[,teacher columns]``, atomic), ``<out>.json`` (teacher
configuration, counts, throughput, versions) and, if images were skipped,
``<out stem>.skipped.txt`` (``path<TAB>reason``, paths relative to the images root; the one
naming rule of every verb, ``edgefiq.data.images.SkipLog.write_for``).

Example:
    >>> label_images("faces/", "prefiqs", {"fr_model": "mobilefacenet.pt", "rho": 0.4},
    ...              "labels.csv", batch_size=64)                         # doctest: +SKIP
    PosixPath('labels.csv')
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist

from edgefiq import __version__
from edgefiq.data.images import SkipLog, check_on_bad_image, load_image
from edgefiq.data.readers import list_images
from edgefiq.errors import BadImageError, DataError, UsageError
from edgefiq.teachers.base import Table, Teacher, make_teacher
from edgefiq.utils import atomic_path, atomic_write_text, progress, write_json

log = logging.getLogger(__name__)
DEFAULT_CHUNK = 256


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def _init_dist(device: str) -> tuple[Any, bool]:
    """``torch.distributed`` with a process group, and whether this call created it (and so must destroy it:
    a gloo group left alive at exit aborts the process, ``terminate called without an active exception``)."""
    if dist.is_initialized():
        return dist, False
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(hours=24))
    return dist, True


def _fmt(v: float) -> str:
    return repr(float(v))


def _write_chunk(path: Path, table: Table) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v, np.float64) for k, v in table.items()})


def _read_chunk(path: Path) -> Table:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _manifest(teacher: Teacher, rels: Sequence[str], chunk: int, on_bad_image: str) -> dict[str, Any]:
    h = hashlib.sha256("\n".join(rels).encode()).hexdigest()
    return {"teacher": teacher.config(), "images_sha256": h, "n_images": len(rels), "chunk_size": chunk,
            "on_bad_image": on_bad_image}


def label_images(images_root: str | Path, teacher_name: str, options: dict[str, Any] | None, out_csv: str | Path, *,
                 batch_size: int = 64, device: str = "cpu", on_bad_image: str = "error", resume: bool = True,
                 workers: int = 0, chunk_size: int = DEFAULT_CHUNK, cache_dir: str | Path | None = None,
                 relpaths: Sequence[str] | None = None) -> Path:
    """Label every image under ``images_root`` with a teacher and write ``out_csv``.

    Args:
        images_root: folder of images (searched recursively).
        teacher_name: a name in ``TEACHERS`` (``prefiqs``, ``norm``, ``serfiq``, ``severity``,
            ``model``, ``csv``, ``ensemble``).
        options: the teacher's options (e.g. ``{"fr_model": ..., "method": "l1", "rho": 0.4}``).
        out_csv: output CSV path.
        batch_size: images per forward pass.
        device: ``cpu`` or ``cuda[:i]``.
        on_bad_image: ``error`` (stop, naming the file) or ``skip`` (leave it out, list it in
            ``<out stem>.skipped.txt``, with a console warning).
        resume: continue from finished chunks of an interrupted run with the same settings.
        workers: image-decoding worker processes.
        chunk_size: images per resumable unit.
        cache_dir: embedding / pruned-model cache (default ``~/.cache/edgefiq``).
        relpaths: label only these images (relative to ``images_root``) instead of all.

    Returns:
        ``out_csv``.

    Raises:
        UsageError: bad teacher or option; DataError: unreadable images/labels.

    Example:
        >>> label_images("faces/", "norm", {"fr_model": "mfn.pt"}, "norm.csv")   # doctest: +SKIP
    """
    check_on_bad_image(on_bad_image)
    if chunk_size < 1 or batch_size < 1:
        raise UsageError("batch size and chunk size must be >= 1")
    root, out = Path(images_root), Path(out_csv)
    rels = _image_list(root, relpaths)
    teacher = make_teacher(teacher_name, options, batch_size=batch_size, device=device, workers=workers,
                           cache_dir=cache_dir)
    rank, world = _dist_info()
    dist, own_group = _init_dist(device) if world > 1 else (None, False)
    try:
        return _label(root, rels, out, teacher, teacher_name, rank, world, dist, chunk_size, on_bad_image, resume)
    finally:
        if own_group:
            dist.destroy_process_group()


def _label(root: Path, rels: list[str], out: Path, teacher: Teacher, teacher_name: str, rank: int, world: int,
           dist: Any, chunk_size: int, on_bad_image: str, resume: bool) -> Path:
    """The chunked, resumable labelling of ``label_images`` (every rank runs it; rank 0 assembles)."""
    parts = out.with_name(out.name + ".parts")
    manifest = _manifest(teacher, rels, chunk_size, on_bad_image)
    if rank == 0:
        _prepare_parts(parts, manifest, resume)
    if dist is not None:
        dist.barrier()
    n_chunks = (len(rels) + chunk_size - 1) // chunk_size
    mine = [k for k in range(n_chunks) if k % world == rank]
    todo = [k for k in mine if not (parts / f"chunk-{k:06d}.npz").is_file()]
    n_mine = sum(min(chunk_size, len(rels) - k * chunk_size) for k in mine)
    n_todo = sum(min(chunk_size, len(rels) - k * chunk_size) for k in todo)
    if len(todo) < len(mine):
        log.info("resuming: %d of %d chunks already labelled", len(mine) - len(todo), len(mine))
    t0 = time.perf_counter()
    bar = progress(total=n_mine, desc=f"label {teacher_name}" + (f" [rank {rank}]" if world > 1 else ""), unit="img")
    bar.update(n_mine - n_todo)
    try:
        for k in todo:
            chunk = rels[k * chunk_size:(k + 1) * chunk_size]
            table = teacher.score_table(root, chunk, on_bad_image=on_bad_image)
            if len(table["quality"]) != len(chunk):
                raise DataError(f"teacher {teacher_name!r} returned {len(table['quality'])} scores for {len(chunk)} images")
            _write_chunk(parts / f"chunk-{k:06d}.npz", table)
            bar.update(len(chunk))
    finally:
        bar.close()
    n_done, elapsed = _gather_stats(dist, world, n_todo, time.perf_counter() - t0)
    if rank == 0:
        kept, table, skipped = _assemble(root, rels, parts, n_chunks, teacher, on_bad_image)
        _write_outputs(out, kept, table, teacher, manifest, skipped, n_done, elapsed, world)
        shutil.rmtree(parts, ignore_errors=True)
    if dist is not None:
        dist.barrier()
    return out


def _image_list(root: Path, relpaths: Sequence[str] | None) -> list[str]:
    """The images to label: every image under ``root``, or ``relpaths`` (sorted, POSIX)."""
    if relpaths is None:
        return [p.relative_to(root).as_posix() for p in list_images(root)]
    rels = sorted(Path(r).as_posix() for r in relpaths)
    if not rels:
        raise DataError("no images to label")
    return rels


def _prepare_parts(parts: Path, manifest: dict[str, Any], resume: bool) -> None:
    """Keep the finished chunks of an interrupted run with the same settings; otherwise start over."""
    mfile = parts / "manifest.json"
    old = json.loads(mfile.read_text()) if mfile.is_file() else None
    if old is not None and (not resume or old != json.loads(json.dumps(manifest, default=str))):
        if resume:
            log.warning("%s: settings changed since the interrupted run; starting over", parts)
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    write_json(mfile, manifest)


def _gather_stats(dist: Any, world: int, n_todo: int, elapsed: float) -> tuple[int, float]:
    """Images labelled and wall time over every process (the slowest one's time)."""
    if dist is None:
        return n_todo, elapsed

    stats = torch.tensor([float(n_todo), elapsed], dtype=torch.float64)
    gathered = [torch.zeros_like(stats) for _ in range(world)]
    dist.all_gather(gathered, stats)
    dist.barrier()
    return int(sum(float(g[0]) for g in gathered)), max(float(g[1]) for g in gathered)


def _assemble(root: Path, rels: list[str], parts: Path, n_chunks: int, teacher: Teacher,
              on_bad_image: str) -> tuple[list[str], Table, list[tuple[str, str]]]:
    """Join the chunks; drop (``skip``) or refuse (``error``) images without a finite score.

    Returns ``(kept relative paths, the teacher's finalised table, skipped (path, reason))``.
    """
    tables = [_read_chunk(parts / f"chunk-{k:06d}.npz") for k in range(n_chunks)]
    table = {c: np.concatenate([t[c] for t in tables]) for c in tables[0]}
    bad = ~np.isfinite(table["quality"])
    skipped: list[tuple[str, str]] = []
    for i in np.flatnonzero(bad):
        try:
            load_image(root / rels[i])
            reason = "teacher returned a non-finite score"
        except BadImageError as e:
            reason = e.reason
        if on_bad_image == "error":
            raise DataError(f"{root / rels[i]}: {reason}")
        skipped.append((rels[i], reason))
    keep = np.flatnonzero(~bad)
    if len(keep) == 0:
        raise DataError(f"{root}: every image was skipped; nothing to label")
    return [rels[i] for i in keep], teacher.finalize({c: v[keep] for c, v in table.items()}), skipped


def _write_outputs(out: Path, rels: list[str], table: Table, teacher: Teacher, manifest: dict[str, Any],
                   skipped: list[tuple[str, str]], n_done: int, elapsed: float, world: int) -> None:
    cols = ["quality"] + [c for c in table if c != "quality"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", *cols])
    for i, r in enumerate(rels):
        w.writerow([r, *(_fmt(table[c][i]) for c in cols)])
    atomic_write_text(out, buf.getvalue())
    SkipLog(entries=list(skipped)).write_for(out)  # <out stem>.skipped.txt + console warning, or no file
    q = table["quality"]
    write_json(out.with_name(out.name + ".json"), {
        "teacher": manifest["teacher"], "images_sha256": manifest["images_sha256"], "n_images": manifest["n_images"],
        "n_labelled": len(rels), "n_skipped": len(skipped), "columns": ["path", *cols],
        "quality_stats": {"min": float(q.min()), "max": float(q.max()), "mean": float(q.mean())},
        "chunk_size": manifest["chunk_size"], "on_bad_image": manifest["on_bad_image"], "world_size": world,
        "labelled_this_run": n_done, "seconds_this_run": elapsed,
        "images_per_second": (n_done / elapsed) if elapsed > 0 and n_done else None,
        "versions": {"edgefiq": __version__, "torch": torch.__version__, "python": platform.python_version()},
    })
    log.info("labelled %d images (%d skipped) -> %s", len(rels), len(skipped), out)
