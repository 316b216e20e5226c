"""Frames from a video file, a stream URL, a camera or a folder of images, decoded by PyAV (FFmpeg).

``open_frames(source)`` yields ``Frame(index, timestamp, image)`` with ``image`` an ``HxWx3`` uint8
RGB array. A source is:

- a video file (anything FFmpeg reads: MP4, MKV, AVI, ...) or an ``rtsp://``/``http(s)://`` URL;
- a camera index (``0`` = ``/dev/video0`` through V4L2 on Linux);
- a folder of frames (sorted by name; timestamps from ``fps``).

PyAV is the decoder because it is FFmpeg itself, in wheels with no system library to install, and
gives each frame's presentation time. ``write_video`` encodes frames to H.264 MP4 (tests, tools).

Example:
    >>> for frame in open_frames("door.mp4"):   # doctest: +SKIP
    ...     print(frame.index, frame.timestamp, frame.image.shape)
    0 0.0 (480, 640, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edgefiq.data.images import load_image
from edgefiq.data.readers import list_images
from edgefiq.errors import BackendUnavailableError, DataError, UsageError

_PIP = "pip install 'edgefiq[video]'"
_URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the source, presentation time in seconds, RGB pixels."""

    index: int
    timestamp: float
    image: np.ndarray


def _av() -> Any:
    try:
        import av  # FFmpeg bindings: an optional dependency (edgefiq[video])
    except ImportError:
        raise BackendUnavailableError(f"decoding video needs PyAV: `{_PIP}`") from None
    return av


def describe_source(source: str | int | Path) -> str:
    """What kind of source ``source`` is: ``camera``, ``stream``, ``folder`` or ``file``.

    Example:
        >>> describe_source("rtsp://cam/1"), describe_source("0")
        ('stream', 'camera')
    """
    s = str(source)
    if s.isdigit():
        return "camera"
    if s.lower().startswith(_URL_SCHEMES):
        return "stream"
    if Path(s).is_dir():
        return "folder"
    if not Path(s).exists():
        raise UsageError(f"{s}: no such video file, folder, camera index or stream URL")
    return "file"


class VideoSource:
    """An opened source: its kind, frame rate, expected frame count (``None`` if unknown) and frames.

    Opening checks the source at once (a missing file or an unreadable stream fails here, not at
    the first frame). Iterate it for ``Frame`` records; use it as a context manager to close it.

    Example:
        >>> with VideoSource("door.mp4") as src:        # doctest: +SKIP
        ...     print(src.kind, src.fps, src.frames)
        file 25.0 60
    """

    def __init__(self, source: str | int | Path, fps: float | None = None) -> None:
        self.source, self.kind = str(source), describe_source(source)
        self._container: Any = None
        self._paths: list[Path] = []
        if self.kind == "folder":
            self._paths = list_images(source)
            self.fps, self.frames = float(fps or 25.0), len(self._paths)
            return
        av = _av()
        target, options = self.source, {}
        if self.kind == "camera":
            target, options = f"/dev/video{int(self.source)}", {"format": "v4l2"}
        try:
            self._container = av.open(target, **options)
        except (av.FFmpegError, OSError) as e:
            raise DataError(f"{target}: cannot open the video ({e})") from None
        if not self._container.streams.video:
            self._container.close()
            raise DataError(f"{target}: has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(fps or (float(rate) if rate else 25.0))
        self.frames = int(self._stream.frames) or None

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "folder":
            for k, path in enumerate(self._paths):
                yield Frame(k, k / self.fps, load_image(path))
            return
        av, k = _av(), 0
        try:
            for k, frame in enumerate(self._container.decode(self._stream)):
                t = float(frame.time) if frame.time is not None else k / self.fps
                yield Frame(k, t, frame.to_ndarray(format="rgb24"))
        except av.FFmpegError as e:
            raise DataError(f"{self.source}: decoding failed at frame {k + 1} ({e})") from None

    def close(self) -> None:
        """Close the container (a no-op for folders)."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_frames(source: str | int | Path, fps: float | None = None) -> Iterator[Frame]:
    """Decode ``source`` frame by frame (see the module docstring for what a source can be).

    Args:
        source: video file, stream URL, camera index, or folder of frames.
        fps: frame rate of a folder of frames (its timestamps are ``index / fps``; default 25).

    Raises:
        UsageError: the source does not exist.
        DataError: FFmpeg cannot open or decode it (its message, one line).

    Example:
        >>> next(open_frames("frames/")).timestamp   # doctest: +SKIP
        0.0
    """
    with VideoSource(source, fps) as src:
        yield from src


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: int = 25, crf: int = 20) -> Path:
    """Encode ``HxWx3`` uint8 RGB frames as an H.264 MP4 (yuv420p; even sizes).

    Example:
        >>> write_video([np.zeros((48, 64, 3), np.uint8)] * 5, "clip.mp4")   # doctest: +SKIP
        PosixPath('clip.mp4')
    """
    av = _av()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = None
        for img in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "veryfast"})
                stream.height, stream.width = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
                stream.pix_fmt = "yuv420p"
            img = np.ascontiguousarray(img[: stream.height, : stream.width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        if stream is None:
            raise UsageError("write_video: no frames given")
        container.mux(stream.encode())
    tmp.replace(out)
    return out
