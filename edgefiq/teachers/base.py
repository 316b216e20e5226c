"""The teacher interface, option checking, and the shared machinery of FR-model-based teachers.

A teacher maps images to quality scores (higher = better). The labelling engine calls
``score_table(root, relpaths)`` chunk by chunk (rows with NaN quality are skipped bad
images) and ``finalize(table)`` once over the whole set (set-level steps such as batch
statistics or rank averaging). ``score_paths`` is the one-call convenience API.

Example:
    >>> from edgefiq.teachers import make_teacher                              # doctest: +SKIP
    >>> t = make_teacher("norm", {"fr_model": "mobilefacenet.pt"})              # doctest: +SKIP
    >>> t.score_paths(["a.jpg", "b.jpg"])                                        # doctest: +SKIP
    array([23.1, 17.9], dtype=float32)
"""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from edgefiq.data.dataset import iter_image_batches
from edgefiq.data.images import check_on_bad_image
from edgefiq.errors import UsageError
from edgefiq.models.fr import flip_sum, load_fr_model
from edgefiq.registry import TEACHERS
from edgefiq.teachers.cache import EmbeddingCache, fingerprint
from edgefiq.teachers.fr_runtime import PRECISIONS, default_threads, full_runner, onnxruntime_available

Table = dict[str, np.ndarray]
ENGINE_OPTIONS = ("batch_size", "device", "workers", "cache_dir")


class Teacher:
    """Base class: subclasses implement ``score_table`` and ``config`` (and ``finalize`` if set-level)."""

    name: str = "teacher"

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Refuse option values the constructor would refuse, without loading anything (``UsageError``).

        ``edgefiq recipe check`` calls it on ``teacher.options``; the constructor calls it too, so
        the two cannot disagree. Default: nothing to check.
        """

    def score_table(self, root: Path, relpaths: Sequence[str], *, on_bad_image: str = "error") -> Table:
        """Score ``root/relpath`` images: ``{"quality": float array, ...extra columns}``; NaN = skipped."""
        raise NotImplementedError

    def finalize(self, table: Table) -> Table:
        """Set-level post-processing over all labelled rows (default: none)."""
        return table

    def config(self) -> dict[str, Any]:
        """The full configuration (JSON-friendly) written to the label sidecar."""
        return {"teacher": self.name}

    def score_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Quality of in-memory uint8 HWC RGB images (e.g. the augmented views of online distillation).

        Default: lossless PNG copies in a temporary folder through ``score_paths`` (exact pixels, so
        any teacher works); teachers that can take arrays directly override it.
        """
        with tempfile.TemporaryDirectory(prefix="edgefiq-views-") as tmp:
            paths = []
            for i, im in enumerate(images):
                paths.append(Path(tmp) / f"view_{i:05d}.png")
                Image.fromarray(np.ascontiguousarray(im)).save(paths[-1], compress_level=1)
            return np.asarray(self.score_paths(paths), np.float64)

    def networks(self) -> list[tuple[str, Any]]:
        """``(label, torch module)`` per network pass this teacher makes for one image, for latency
        (``edgefiq.bench.teacher``). Default: none (a teacher without a network, e.g. ``severity``)."""
        return []

    def score_paths(self, paths: Sequence[str | Path], root: str | Path | None = None) -> np.ndarray:
        """Quality of each image (relative to ``root`` if given, else as given).

        Example:
            >>> q = teacher.score_paths(["Alice/Alice_0001.jpg"], root="faces/")   # doctest: +SKIP
        """
        base = Path(root) if root is not None else Path()
        rels = []
        for p in paths:
            p = Path(p)
            if root is not None and p.is_absolute() and p.is_relative_to(base.resolve()):
                p = p.relative_to(base.resolve())
            rels.append(p.as_posix())
        return self.finalize(self.score_table(base, rels))["quality"]


def make_teacher(name: str, options: dict[str, Any] | None = None, **engine: Any) -> Teacher:
    """Build ``TEACHERS.get(name)`` from user ``options`` (checked) and engine settings (passed if accepted).

    Raises:
        UsageError: unknown teacher, or an option the teacher does not take.

    Example:
        >>> t = make_teacher("prefiqs", {"fr_model": "mfn.pt", "rho": 0.4}, batch_size=32)   # doctest: +SKIP
    """
    cls = TEACHERS.get(name)
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = [k for k in options if k not in params and not takes_any]
    if unknown:
        opts = ", ".join("--" + k.replace("_", "-") for k in unknown)
        accepted = [k for k in params if k not in ("self", *ENGINE_OPTIONS) and params[k].kind is not inspect.Parameter.VAR_KEYWORD]
        raise UsageError(f"teacher {name!r} does not take {opts} (it takes: "
                         f"{', '.join('--' + a.replace('_', '-') for a in accepted) or 'no options'})")
    kw = dict(options)
    for k, v in engine.items():
        if v is not None and (k in params or takes_any) and k not in kw:
            kw[k] = v
    try:
        return cls(**kw)
    except TypeError as e:
        raise UsageError(f"teacher {name!r}: {e}") from None


def default_cache_dir() -> Path:
    """``$EDGEFIQ_CACHE`` or ``$XDG_CACHE_HOME/edgefiq`` (``~/.cache/edgefiq``)."""
    if os.environ.get("EDGEFIQ_CACHE"):
        return Path(os.environ["EDGEFIQ_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgefiq"


_FR_CACHE: dict[tuple[str, str | None, str], Any] = {}


class FRTeacher(Teacher):
    """Teachers built on a face recognition model: model loading, image batches, embedding cache.

    Args:
        fr_model: FR weights (``.pt`` state dict or ``.onnx``), see ``edgefiq.models.fr.load_fr_model``.
        arch: force the FR architecture (default: inferred).
        flip: flip-sum test-time augmentation for the embeddings.
        batch_size, device, workers: engine settings (images per forward pass, torch device,
            image-decoding worker processes).
        precision: ``fp32`` (onnxruntime or torch) or ``bf16`` (the FR passes run by OpenVINO in
            bfloat16 on CPUs with native support: 1.4-1.6x the fp32 throughput, scores within bfloat16
            rounding of fp32; see ``edgefiq.teachers.onnx_graph.OvBf16Runner``).
        cache_dir: where the embedding cache lives (default ``~/.cache/edgefiq``).
        cache: use the on-disk embedding cache (keyed by weights hash, precision, image relpath, flip).
    """

    def __init__(self, fr_model: str | Path | None = None, arch: str | None = None, flip: bool = False,
                 precision: str = "fp32", *, batch_size: int = 64, device: str = "cpu", workers: int = 0,
                 cache_dir: str | Path | None = None, cache: bool = True) -> None:
        if not fr_model:
            raise UsageError(f"teacher {self.name!r} needs --fr-model (a face recognition .pt or .onnx)")
        if precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision != "fp32" and device != "cpu":
            raise UsageError(f"--precision {precision} runs the FR passes with OpenVINO on the CPU; use --device cpu")
        self.precision = precision
        self.fr_path, self.arch, self.flip = Path(fr_model), arch, bool(flip)
        self.batch_size, self.device, self.workers = int(batch_size), device, int(workers)
        if self.batch_size < 1:
            raise UsageError(f"batch size must be >= 1, got {batch_size}")
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.use_cache = bool(cache)
        self._fr: Any = None
        self._cache: Any = None

    @property
    def fr(self) -> Any:
        """The FR model (loaded once per process and path)."""
        if self._fr is None:
            key = (str(self.fr_path.resolve()), self.arch, self.device)
            if key not in _FR_CACHE:
                _FR_CACHE[key] = load_fr_model(self.fr_path, arch=self.arch, device=self.device)
            self._fr = _FR_CACHE[key]
        return self._fr

    @property
    def embedding_cache(self) -> Any:
        if self._cache is None and self.use_cache:
            self._cache = EmbeddingCache(self.cache_dir, self.fr.weights_sha256,
                                         variant="" if self.precision == "fp32" else self.precision)
        return self._cache

    def networks(self) -> list[tuple[str, Any]]:
        """The FR model once per image (twice with ``flip``)."""
        return [("fr", self.fr)] * (2 if self.flip else 1)

    def fr_config(self) -> dict[str, Any]:
        return {"fr_model": str(self.fr_path), "fr_arch": self.fr.arch, "fr_sha256": self.fr.weights_sha256,
                "flip": self.flip, "precision": self.precision, "preprocess": self.fr.preprocess.to_dict(),
                "batch_size": self.batch_size, "device": self.device}

    def batches(self, root: Path, relpaths: Sequence[str], on_bad_image: str) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        """``(x on device, ok mask, indices)`` batches of the images, in order."""
        skip = check_on_bad_image(on_bad_image) == "skip"
        for x, ok, idx in iter_image_batches([root / r for r in relpaths], self.fr.preprocess,
                                             batch_size=self.batch_size, workers=self.workers, skip_bad=skip):
            yield x.to(self.device), ok, idx

    def embed(self, x: Any, model: Any = None) -> Any:
        """Raw embeddings of a batch with ``model`` (default the FR model), flip-summed if ``flip``."""
        m = model if model is not None else self.fr
        return flip_sum(m, x) if self.flip else m(x)

    def fast_embed(self) -> Any:
        """``embed`` for the full model, run by onnxruntime on CPU when it is installed (graph exported or made
        batchable once, cached by hash; about 7x less CPU than torch eager for MobileFaceNet), or by
        OpenVINO in bfloat16 with ``precision="bf16"``.

        Example:
            >>> e = teacher.fast_embed()(x)   # doctest: +SKIP
        """
        if self.precision == "fp32" and (self.device != "cpu" or not onnxruntime_available()):
            return self.embed

        runner = full_runner(self.fr, self.cache_dir, default_threads(), self.precision)

        def run(x: Any) -> Any:
            xn = x.cpu().numpy()
            return torch.from_numpy(runner(xn) + runner(np.ascontiguousarray(xn[..., ::-1])) if self.flip else runner(xn))

        return run

    def cached_full(self, root: Path, relpaths: Sequence[str]) -> tuple[np.ndarray | None, list[str] | None]:
        """Cached raw full-model embeddings for all ``relpaths`` (or ``None`` if any is missing), and fingerprints."""
        cache = self.embedding_cache
        if cache is None:
            return None, None

        fps = [fingerprint(root / r) for r in relpaths]
        return cache.get_all(relpaths, self.flip, fps), fps

    def store_full(self, relpaths: Sequence[str], fps: list[str] | None, emb: np.ndarray) -> None:
        """Store raw full-model embeddings (rows of NaN, i.e. skipped images, are not stored)."""
        cache = self.embedding_cache
        if cache is None or fps is None:
            return
        keep = [i for i in range(len(relpaths)) if np.isfinite(emb[i]).all()]
        cache.put_many([relpaths[i] for i in keep], self.flip, [fps[i] for i in keep], emb[keep])
