"""Built-in quality models shipped as package data: find, describe and pick an artifact, torch-free.

A built-in model is a folder ``edgefiq/runtime/builtin/<name>/`` (``EDGEFIQ_BUILTIN_DIR``
overrides the root, e.g. for tests) holding exported artifacts with their sidecars, a
``card.md`` for people and a ``card.json`` for programs. ``card.json`` lists the artifacts
(``key`` = ``<backend>-<precision>``, file, size, latency), the order to prefer them in,
the validation score distribution, and reference scores on generated images
(``reference_images``). ``tools/build_builtin_model.py`` writes the folder from a run.

Model specs (``edgefiq.load_model``, ``edgefiq score --model``):

- ``None`` or ``builtin``: the default built-in model (the name in ``<root>/DEFAULT``,
  else the only or first one), its first artifact in ``preferred`` order whose runtime
  is installed;
- ``builtin:NAME``: that model, same artifact choice;
- ``builtin:NAME/KEY``: one artifact, e.g. ``builtin:edgefiq-lfw/tflite-int8``.

Example:
    >>> builtin_names()                              # doctest: +SKIP
    ['edgefiq-lfw', 'edgefiq-lfw-edge']
    >>> resolve_builtin("builtin:edgefiq-lfw/onnx-fp32")   # doctest: +SKIP
    PosixPath('.../edgefiq/runtime/builtin/edgefiq-lfw/edgefiq-lfw_onnx_fp32.onnx')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.errors import DataError, UsageError
from edgefiq.registry import BACKENDS, suggest

PREFIX = "builtin"
ROOT_ENV = "EDGEFIQ_BUILTIN_DIR"
CARD_JSON = "card.json"
CARD_MD = "card.md"
DEFAULT_FILE = "DEFAULT"


def builtin_root() -> Path:
    """Folder holding the built-in models (``$EDGEFIQ_BUILTIN_DIR`` or the package's ``runtime/builtin``).

    Example:
        >>> builtin_root().name   # doctest: +SKIP
        'builtin'
    """
    env = os.environ.get(ROOT_ENV)
    return Path(env) if env else Path(__file__).resolve().parent / "builtin"


def builtin_names() -> list[str]:
    """Names of the installed built-in models (folders with a ``card.json``), sorted.

    Example:
        >>> isinstance(builtin_names(), list)
        True
    """
    root = builtin_root()
    return sorted(p.parent.name for p in root.glob(f"*/{CARD_JSON}")) if root.is_dir() else []


def default_builtin() -> str:
    """Name of the default built-in model.

    Raises:
        DataError: no built-in model is installed.

    Example:
        >>> default_builtin()   # doctest: +SKIP
        'edgefiq-lfw-edge'
    """
    names = builtin_names()
    if not names:
        raise DataError(f"no built-in quality model is installed (in {builtin_root()}); pass a MODEL file")
    marker = builtin_root() / DEFAULT_FILE
    chosen = marker.read_text().strip() if marker.is_file() else ""
    return chosen if chosen in names else names[0]


def read_card(name: str) -> dict[str, Any]:
    """The ``card.json`` of built-in model ``name`` (with ``folder`` added).

    Raises:
        UsageError: no such built-in model (names the installed ones).

    Example:
        >>> read_card(default_builtin())["artifacts"][0]["key"]   # doctest: +SKIP
        'onnx-fp32'
    """
    folder = builtin_root() / name
    if not (folder / CARD_JSON).is_file():
        names = builtin_names()
        hint = (suggest(name, names) or f" (installed: {', '.join(names)})") if names else \
            f"; none is installed in {builtin_root()}"
        raise UsageError(f"no built-in model {name!r}{hint}")
    card = json.loads((folder / CARD_JSON).read_text())
    card["folder"] = str(folder)
    return card


def is_builtin_spec(spec: str | Path | None) -> bool:
    """True for ``None``, ``builtin``, ``builtin:NAME`` and ``builtin:NAME/KEY``.

    Example:
        >>> is_builtin_spec("builtin:edgefiq-lfw"), is_builtin_spec("model.onnx")
        (True, False)
    """
    return spec is None or str(spec) == PREFIX or str(spec).startswith(PREFIX + ":")


def _available(backend: str) -> bool:
    # BACKENDS fills itself from edgefiq.export on first lookup
    try:
        return bool(BACKENDS.get(backend)().available())
    except Exception:  # an unknown or broken backend is simply not usable here
        return False


def resolve_builtin(spec: str | Path | None = None) -> Path:
    """The artifact file a built-in model spec names (module docstring).

    Raises:
        DataError: nothing installed, or no artifact of the model has its runtime installed.
        UsageError: unknown model name or artifact key.

    Example:
        >>> resolve_builtin()   # doctest: +SKIP
        PosixPath('.../builtin/edgefiq-lfw/edgefiq-lfw_onnx_fp32.onnx')
    """
    rest = "" if spec is None or str(spec) == PREFIX else str(spec)[len(PREFIX) + 1:]
    name, _, key = rest.partition("/")
    card = read_card(name or default_builtin())
    arts = {a["key"]: a for a in card["artifacts"]}
    if key:
        if key not in arts:
            raise UsageError(f"built-in model {card['name']!r} has no artifact {key!r} (has: {', '.join(arts)})")
        return Path(card["folder"]) / arts[key]["file"]
    for k in card.get("preferred") or list(arts):
        if k in arts and _available(arts[k]["backend"]):
            return Path(card["folder"]) / arts[k]["file"]
    raise DataError(f"built-in model {card['name']!r}: no runtime installed for any of its artifacts "
                    f"({', '.join(arts)}); `pip install onnxruntime`")


def list_builtins() -> list[dict[str, Any]]:
    """One summary per installed built-in model (name, default flag, artifacts, card paths, key numbers).

    Example:
        >>> [m["name"] for m in list_builtins()]   # doctest: +SKIP
        ['edgefiq-lfw', 'edgefiq-lfw-edge']
    """
    names = builtin_names()
    default = default_builtin() if names else None
    out = []
    for n in names:
        card = read_card(n)
        out.append({"name": n, "default": n == default, "card_md": str(Path(card["folder"]) / CARD_MD),
                    "summary": card.get("summary", ""), "card": card})
    return out


def reference_images(n: int = 8, size: tuple[int, int] = (112, 112), seed: int = 0) -> list[np.ndarray]:
    """Deterministic generated HxWx3 uint8 images (numpy only) for recording and checking reference scores.

    Each image is a smooth random colour field (a coarse random grid upsampled by pixel
    repetition and box blur), a brightness ramp and seeded noise: reproducible bit for bit
    on any machine, unlike decoded or resized files.

    Example:
        >>> [im.shape for im in reference_images(2, (32, 32))]
        [(32, 32, 3), (32, 32, 3)]
    """
    h, w = size
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        cells = rng.uniform(0, 255, size=(8, 8, 3))
        field = np.kron(cells, np.ones((-(-h // 8), -(-w // 8), 1)))[:h, :w]
        kernel = np.ones(5) / 5.0
        for axis in (0, 1):
            field = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, field)
        ramp = np.linspace(-40.0, 40.0, w)[None, :, None] * (1 if k % 2 else -1)
        noise = rng.normal(0.0, 4.0 + 6.0 * (k % 4), size=(h, w, 3))
        out.append(np.clip(np.rint(field + ramp + noise), 0, 255).astype(np.uint8))
    return out


def reference_mismatches(name: str, threads: int = 1) -> dict[str, float | str]:
    """Re-score the generated reference images with every artifact of ``name`` whose runtime is installed.

    Returns:
        ``{key: max abs difference}`` for artifacts outside their recorded tolerance, and
        ``{key: "runtime not installed"}`` for artifacts that could not be checked; empty = all match.

    Example:
        >>> reference_mismatches(default_builtin())   # doctest: +SKIP
        {}
    """
    from edgefiq.runtime.model import load_model  # cycle: edgefiq.runtime.model imports this module at its top

    card = read_card(name)
    ref = card["reference"]
    out: dict[str, float | str] = {}
    for a in card["artifacts"]:
        rec = ref["scores"][a["key"]]
        if not _available(a["backend"]):
            out[a["key"]] = "runtime not installed"
            continue
        qm = load_model(Path(card["folder"]) / a["file"], threads=threads)
        imgs = reference_images(ref["images"]["n"], tuple(qm.preprocess.size), ref["images"]["seed"])
        diff = float(np.abs(qm.score_arrays(imgs, batch_size=1) - np.asarray(rec["scores"])).max())
        if not diff <= rec["atol"]:
            out[a["key"]] = diff
    return out
