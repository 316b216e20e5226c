"""Decode any image a user may hand us into an RGB uint8 array, or fail with one clear line.

Handles grayscale, palette, RGBA/LA (composited on black), CMYK, 16-bit, EXIF
orientation; rejects zero-byte, truncated, corrupt and non-image files with
``BadImageError`` naming the file. Torch-free (numpy + pillow).

Bad-image policy (use it in every verb that reads images)::

    from edgefiq.data.images import SkipLog, load_or_skip, read_images, check_on_bad_image

    check_on_bad_image(on_bad_image)          # "error" | "skip", else UsageError
    skips = SkipLog(root=images_root)
    for i, path, img in read_images(paths, on_bad_image, skips):
        ...                                   # img: HxWx3 RGB uint8; bad files are skipped
    skips.write_for(out_csv)                  # out.csv -> out.skipped.txt + "skipped N images (listed in ...)"

- ``on_bad_image="error"`` (default): the first bad file raises ``BadImageError``
  (a ``DataError``: the CLI prints ``Error: <path>: <reason>`` and exits 1).
- ``on_bad_image="skip"``: bad files are recorded in the ``SkipLog`` (path relative to its
  ``root`` + reason) and left out. A verb writing one output file calls
  ``SkipLog.write_for(output)``: ``<output stem>.skipped.txt`` next to the output
  (``skipped_file_for``; ``path<TAB>reason`` lines, so two runs into one folder keep their
  own), and a console warning ``skipped N images (listed in PATH)``. A verb writing a
  folder calls ``SkipLog.write(dir)`` (``dir/skipped.txt``). Both return the file, or
  ``None`` when nothing was skipped.
- ``load_or_skip(path, on_bad_image, skips)`` is the one-image form (returns ``None``
  when skipped); ``SkipLog.handle(err, on_bad_image)`` applies the policy to a
  ``BadImageError`` you caught yourself.
- ``image_info(path, verify=False)`` reads only the header (size, mode, format) for
  fast inspection; ``verify=True`` decodes fully.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgefiq.data.pathtext import write_path_text
from edgefiq.errors import BadImageError, UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ON_BAD_IMAGE = ("error", "skip")
SKIPPED_FILE = "skipped.txt"
SKIPPED_SUFFIX = ".skipped.txt"
log = logging.getLogger("edgefiq.images")


def is_image_name(path: str | Path) -> bool:
    """True if ``path`` has an image file extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def load_image(path: str | Path) -> np.ndarray:
    """Read ``path`` as an ``HxWx3`` RGB ``uint8`` array with EXIF orientation applied.

    Raises:
        BadImageError: the file is missing, empty, truncated, corrupt or not an image.

    Example:
        >>> img = load_image("face.jpg")   # doctest: +SKIP
        >>> img.shape, img.dtype           # doctest: +SKIP
        ((112, 112, 3), dtype('uint8'))
    """
    p = _existing_nonempty(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                im.load()  # forces a full decode: truncated files fail here
                try:
                    im = ImageOps.exif_transpose(im)
                except Exception:  # noqa: BLE001 - malformed EXIF: keep the stored orientation
                    pass
                return to_rgb_array(im)
    except UnidentifiedImageError:
        raise BadImageError(p, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise BadImageError(p, f"cannot decode image ({_short(e)})") from None


def to_rgb_array(im: "object") -> np.ndarray:
    """Convert an opened PIL image of any mode to an ``HxWx3`` RGB uint8 array."""
    assert isinstance(im, Image.Image)
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr8[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr8 = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr8[..., None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        im = Image.alpha_composite(background, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return np.asarray(im, dtype=np.uint8).copy()


def _existing_nonempty(path: str | Path) -> Path:
    """``path`` as a Path, or ``BadImageError`` if it is missing or has zero bytes."""
    p = Path(path)
    if not p.is_file():
        raise BadImageError(p, "file not found")
    if p.stat().st_size == 0:
        raise BadImageError(p, "empty file (0 bytes)")
    return p


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:120]


# ----------------------------------------------------------------------------- bad-image policy


def check_on_bad_image(value: str) -> str:
    """Validate an ``on_bad_image`` policy value (``error`` or ``skip``)."""
    if value not in ON_BAD_IMAGE:
        raise UsageError(f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}, got {value!r}")
    return value


def skipped_file_for(output: str | Path) -> Path:
    """The skip file of an output file: ``<output stem>.skipped.txt`` next to it (the one naming rule).

    Example:
        >>> skipped_file_for("runs/q.csv").as_posix()
        'runs/q.skipped.txt'
    """
    p = Path(output)
    return p.with_name(f"{p.stem or p.name}{SKIPPED_SUFFIX}")


@dataclass
class SkipLog:
    """Records images skipped under ``on_bad_image="skip"``; writes them to a skip file.

    ``root`` is the input root: paths under it are recorded relative to it (as in the CSVs).
    A verb writing one output file calls ``write_for(output)``: the skipped images go to
    ``<output stem>.skipped.txt`` next to it (``skipped_file_for``), a stale one from an
    earlier run is removed, and a console warning says how many were skipped and where.

    Example:
        >>> log = SkipLog(root=Path("faces"))
        >>> log.add("faces/a/b.jpg", "empty file (0 bytes)")
        >>> log.entries
        [('a/b.jpg', 'empty file (0 bytes)')]
    """

    entries: list[tuple[str, str]] = field(default_factory=list)
    root: Path | None = None

    def add(self, path: str | Path, reason: str) -> None:
        """Record one skipped file and why (relative to ``root`` when it is under it)."""
        self.entries.append((self.relative(path), reason))

    def relative(self, path: str | Path) -> str:
        """``path`` relative to ``root`` (POSIX) if it lies under it, else as given."""
        if self.root is not None:
            try:
                return Path(path).relative_to(self.root).as_posix()
            except ValueError:
                pass
        return str(path)

    def handle(self, err: BadImageError, on_bad_image: str) -> None:
        """Apply the policy to a caught ``BadImageError``: re-raise (``error``) or record (``skip``)."""
        if check_on_bad_image(on_bad_image) == "error":
            raise err
        self.add(err.path, err.reason)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def paths(self) -> list[str]:
        """The skipped paths, in the order they were met."""
        return [p for p, _ in self.entries]

    def text(self) -> str:
        """The skip file's text: ``path<TAB>reason`` per line."""
        return "".join(f"{p}\t{r}\n" for p, r in self.entries)

    def write(self, out_dir: str | Path) -> Path | None:
        """Write ``out_dir/skipped.txt`` (``path<TAB>reason`` per line) if anything was skipped.

        For verbs whose output is a folder; a verb writing one output file uses ``write_for``.
        """
        if not self.entries:
            return None
        return write_path_text(Path(out_dir) / SKIPPED_FILE, self.text())

    def write_for(self, output: str | Path, what: str = "images") -> Path | None:
        """Write ``<output stem>.skipped.txt`` next to ``output`` and warn on the console; the one
        convention of every verb writing one output file.

        Nothing skipped: no file, and a stale skip file from an earlier run into ``output`` is
        removed. ``output="-"`` (stdout): each skipped file is logged instead.

        Returns:
            The skip file, or ``None`` when nothing was skipped (or the output is stdout).

        Example:
            >>> SkipLog().write_for("q.csv") is None   # doctest: +SKIP
            True
        """
        if str(output) == "-":
            for p, reason in self.entries:
                log.warning("skipped %s: %s", p, reason)
            if self.entries:
                log.warning("skipped %d %s (listed above)", len(self.entries), what)
            return None
        path = skipped_file_for(output)
        if not self.entries:
            path.unlink(missing_ok=True)
            return None
        write_path_text(path, self.text())
        log.warning("skipped %d %s (listed in %s)", len(self.entries), what, path)
        return path


def load_or_skip(path: str | Path, on_bad_image: str = "error", skips: SkipLog | None = None) -> np.ndarray | None:
    """``load_image`` under a bad-image policy: returns ``None`` (and records it) when skipped.

    Example:
        >>> img = load_or_skip("maybe_broken.jpg", "skip", SkipLog())   # doctest: +SKIP
    """
    try:
        return load_image(path)
    except BadImageError as e:
        (skips if skips is not None else SkipLog()).handle(e, on_bad_image)
        return None


def read_images(paths: Iterable[str | Path], on_bad_image: str = "error",
                skips: SkipLog | None = None) -> Iterator[tuple[int, Path, np.ndarray]]:
    """Yield ``(index, path, image)`` for each readable image; bad ones raise or are skipped.

    ``index`` is the position in ``paths``, so callers can keep labels aligned.

    Example:
        >>> skips = SkipLog()
        >>> for i, p, img in read_images(["a.jpg", "b.png"], "skip", skips):   # doctest: +SKIP
        ...     pass
    """
    check_on_bad_image(on_bad_image)
    for i, p in enumerate(paths):
        img = load_or_skip(p, on_bad_image, skips)
        if img is not None:
            yield i, Path(p), img


@dataclass(frozen=True)
class ImageInfo:
    """Header facts about one image file."""

    width: int
    height: int
    mode: str
    format: str


def image_info(path: str | Path, verify: bool = False) -> ImageInfo:
    """Read an image's size, mode and format from its header (fast); ``verify=True`` decodes fully.

    Raises:
        BadImageError: missing, empty, unrecognised, or (with ``verify``) undecodable.

    Example:
        >>> image_info("face.jpg")   # doctest: +SKIP
        ImageInfo(width=112, height=112, mode='RGB', format='JPEG')
    """
    p = _existing_nonempty(path)
    try:
        with Image.open(p) as im:
            info = ImageInfo(im.width, im.height, im.mode, im.format or "?")
    except UnidentifiedImageError:
        raise BadImageError(p, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImageError(p, f"cannot read image header ({_short(e)})") from None
    if verify:
        load_image(p)
    return info
