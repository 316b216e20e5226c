"""``edgefiq bestshot``: run ``BestShot`` over a decoded source and write what it chose.

``run_bestshot(source, out_dir)`` decodes (``VideoSource``), feeds every frame to ``BestShot`` and
writes into ``out_dir``:

- ``tracks.csv``: one row per tracked face and frame (track, frame, timestamp, box, landmarks,
  det_score, quality, chosen, rank);
- ``tracks.json``: the same per track (status, best crops), plus the settings, the summary and
  the per-stage speed;
- ``<track>/<rank>.png``: the aligned 112x112 best crops, ready for face recognition;
- ``sheets/<track>.png``: a contact sheet per track, its crops in time order with their quality,
  the chosen ones framed in green.

An existing ``tracks.json`` is not overwritten unless ``force=True`` (which first removes the
earlier run's outputs). Torch-free.

Example:
    >>> run = run_bestshot("door.mp4", "best/")   # doctest: +SKIP
    >>> run.summary_line()                        # doctest: +SKIP
    '250 frames, 412 faces, 2 tracks, 6 crops kept; 61.3 frames/s'
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgefiq.errors import UsageError
from edgefiq.utils import atomic_write_text, progress, write_json
from edgefiq.video.bestshot import THUMB_SIZE, BestShot, Track, stage_rates
from edgefiq.video.source import VideoSource

CSV_COLUMNS = ("track", "frame", "timestamp", "x1", "y1", "x2", "y2",
               *(f"{p}_{c}" for p in ("leye", "reye", "nose", "lmouth", "rmouth") for c in "xy"),
               "det_score", "quality", "chosen", "rank")
_SHEET_COLUMNS = 10


@dataclass
class BestShotRun:
    """What ``run_bestshot`` did: the tracks, the counts and the time per stage."""

    out_dir: Path
    tracks: list[Track]
    frames: int
    faces: int
    dropped: int
    seconds: dict[str, float]

    @property
    def kept(self) -> int:
        return sum(len(t.best) for t in self.tracks)

    def rates(self) -> dict[str, Any]:
        """Per-stage ms/frame and frames/s (decode, detect, track, align, score, total)."""
        return stage_rates(self.seconds, self.frames)

    def summary(self) -> dict[str, Any]:
        return {"frames": self.frames, "faces": self.faces, "tracks": len(self.tracks),
                "dropped_short_tracks": self.dropped, "kept_crops": self.kept,
                "no_usable_frame": sum(t.status != "ok" for t in self.tracks),
                "fps": self.rates()["total"]["fps"]}

    def summary_line(self) -> str:
        """One console line: frames, faces, tracks, kept crops, frames/s."""
        s = self.summary()
        unusable = f" ({s['no_usable_frame']} with no usable frame)" if s["no_usable_frame"] else ""
        return (f"{s['frames']} frames, {s['faces']} faces, {s['tracks']} tracks{unusable}, "
                f"{s['kept_crops']} crops kept; {s['fps']} frames/s")

    def stage_table(self) -> str:
        """The per-stage speed as a small Markdown table (``edgefiq bench`` style)."""
        lines = ["| stage | ms/frame | frames/s |", "|---|---:|---:|"]
        for stage, row in self.rates().items():
            lines.append(f"| {stage} | {row['ms_per_frame']:.2f} | {row['fps'] if row['fps'] is not None else '-'} |")
        return "\n".join(lines)


def run_bestshot(source: str | int | Path, out_dir: str | Path, *, fps: float | None = None, force: bool = False,
                 settings: dict[str, Any] | None = None, **options: Any) -> BestShotRun:
    """Best shots of every person in ``source``, written to ``out_dir`` (module docstring).

    Args:
        source: video file, stream URL, camera index or folder of frames (``VideoSource``).
        out_dir: output folder.
        fps: frame rate (default: the video's; 25 for a folder of frames).
        force: replace an earlier run's outputs in ``out_dir``.
        settings: extra entries for ``tracks.json``'s settings (e.g. how the CLI set the threshold).
        options: ``BestShot`` keyword arguments (model, top_k, every, min_face_size, ...).

    Raises:
        UsageError: ``out_dir`` holds an earlier run and ``force`` is not set.

    Example:
        >>> run_bestshot("door.mp4", "best/", top_k=1, every=3).tracks[0].best[0].frame   # doctest: +SKIP
        41
    """
    out = Path(out_dir)
    if (out / "tracks.json").exists() and not force:
        raise UsageError(f"{out} already holds a bestshot run (tracks.json): give --force to replace it")
    with VideoSource(source, fps) as src:
        bs = BestShot(fps=src.fps, **options)
        decode, frames = 0.0, iter(src)
        with progress(total=src.frames, desc="bestshot", unit="frame") as bar:
            while True:
                t = perf_counter()
                frame = next(frames, None)
                decode += perf_counter() - t
                if frame is None:
                    break
                bs.update(frame.image, frame.timestamp)
                bar.update(1)
    tracks = bs.finish()
    run = BestShotRun(out, tracks, bs.frames, bs.detections, bs.dropped, {"decode": decode, **bs.seconds})
    if force:
        _clear(out)
    write_outputs(run, {"source": str(source), "fps": src.fps, **_settings(bs), **(settings or {})})
    return run


def _settings(bs: BestShot) -> dict[str, Any]:
    return {"model": str(bs.model.path), "top_k": bs.top_k, "every": bs.every,
            "min_face_size": bs.detector.options.min_face_size, "max_faces": bs.max_faces,
            "min_track": bs.min_track, "threshold": bs.threshold, "tracker": bs.tracker.name,
            "lost_frames": bs.lost_frames}


def _clear(out: Path) -> None:
    """Remove an earlier run's files (only the names this module writes)."""
    for name in ("tracks.csv", "tracks.json"):
        (out / name).unlink(missing_ok=True)
    if (out / "sheets").is_dir():
        shutil.rmtree(out / "sheets")
    for d in out.iterdir() if out.is_dir() else []:
        if d.is_dir() and d.name.isdigit():
            shutil.rmtree(d)


def write_outputs(run: BestShotRun, settings: dict[str, Any]) -> None:
    """Write crops, contact sheets, ``tracks.csv`` and ``tracks.json`` (the JSON last: it marks a finished run)."""
    out = run.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for tr in run.tracks:
        for shot in tr.best:
            (out / str(tr.id)).mkdir(exist_ok=True)
            Image.fromarray(shot.crop).save(out / str(tr.id) / f"{shot.rank}.png")
        (out / "sheets").mkdir(exist_ok=True)
        contact_sheet(tr).save(out / "sheets" / f"{tr.id}.png")
    atomic_write_text(out / "tracks.csv", _csv_text(run.tracks))
    write_json(out / "tracks.json", {"settings": settings, "summary": run.summary(), "stages": run.rates(),
                                     "tracks": [_track_json(tr) for tr in run.tracks]})


def _csv_text(tracks: list[Track]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for tr in tracks:
        ranks = {shot.frame: shot.rank for shot in tr.best}
        for s in tr.sightings:
            rank = ranks.get(s.frame)
            w.writerow([tr.id, s.frame, f"{s.timestamp:.3f}", *(f"{v:.1f}" for v in s.box),
                        *(f"{v:.1f}" for v in s.landmarks.reshape(-1)), f"{s.det_score:.4f}", f"{s.quality:.5f}",
                        int(rank is not None), rank or ""])
    return buf.getvalue()


def _track_json(tr: Track) -> dict[str, Any]:
    ranks = {shot.frame: shot.rank for shot in tr.best}
    return {"track": tr.id, "status": tr.status, "frames": len(tr.sightings),
            "first_frame": tr.sightings[0].frame, "last_frame": tr.last.frame,
            "best": [{"rank": b.rank, "frame": b.frame, "timestamp": round(b.sighting.timestamp, 3),
                      "quality": round(b.quality, 5), "crop": f"{tr.id}/{b.rank}.png"} for b in tr.best],
            "sheet": f"sheets/{tr.id}.png",
            "sightings": [{"frame": s.frame, "timestamp": round(s.timestamp, 3),
                           "box": [round(float(v), 1) for v in s.box],
                           "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in s.landmarks],
                           "det_score": round(s.det_score, 4), "quality": round(s.quality, 5),
                           "chosen": ranks.get(s.frame)} for s in tr.sightings]}


def contact_sheet(tr: Track, columns: int = _SHEET_COLUMNS) -> Image.Image:
    """A track's crops in time order, each with its frame and quality; the chosen ones framed in green.

    Example:
        >>> contact_sheet(track).save("sheet.png")   # doctest: +SKIP
    """
    chosen = {b.frame: b for b in tr.best}
    quality = {s.frame: s.quality for s in tr.sightings}
    thumbs = dict(tr.thumbs)
    for b in tr.best:  # a chosen crop is always on its sheet, even where a long track was thinned
        thumbs.setdefault(b.frame, np.asarray(Image.fromarray(b.crop).resize((THUMB_SIZE, THUMB_SIZE))))
    frames = sorted(thumbs)
    font = ImageFont.load_default()
    tile, caption, header = THUMB_SIZE + 8, 22, 20
    rows = max(1, -(-len(frames) // columns))
    sheet = Image.new("RGB", (columns * tile, header + rows * (tile + caption)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    best = tr.best[0] if tr.best else None
    title = f"track {tr.id}: {len(tr.sightings)} frames, " + (
        f"best frame {best.frame} (quality {best.quality:.2f})" if best else tr.status)
    draw.text((4, 4), title, fill=(235, 235, 235), font=font)
    for n, f in enumerate(frames):
        x, y = (n % columns) * tile, header + (n // columns) * (tile + caption)
        if f in chosen:
            draw.rectangle([x + 1, y + 1, x + tile - 2, y + tile - 2], outline=(60, 220, 90), width=3)
        sheet.paste(Image.fromarray(thumbs[f]), (x + 4, y + 4))
        label = f"#{chosen[f].rank} " if f in chosen else ""
        draw.text((x + 4, y + tile), f"{label}f{f}", fill=(60, 220, 90) if f in chosen else (200, 200, 200), font=font)
        draw.text((x + 4, y + tile + 10), f"q {quality[f]:.2f}", fill=(200, 200, 200), font=font)
    return sheet
