"""``export_model`` / ``export_checkpoint``: convert, verify against torch, then publish atomically.

Every export runs in a temporary folder next to the output: the backend writes the
artifact there, the sidecar is written, the artifact is loaded with its own runner and
scored on the verification set, and only when the parity gate passes are the files moved
into place (artifact files first, sidecar last). A failed conversion or gate leaves
nothing behind. Converter exceptions become one-line ``ExportError``s naming the
unsupported operator when the message reveals it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefiq.data.preprocess import Preprocess
from edgefiq.errors import BackendUnavailableError, EdgefiqError, ExportError, ParityError, UsageError
from edgefiq.export.autocal import choose_calibration
from edgefiq.export.base import (AdvancedExportOptions, ArtifactMeta, ExportOptions, artifact_files, meta_path,
                                 package_versions, write_meta)
from edgefiq.export.calibration import MIN_INT8_CALIBRATION, load_calibration
from edgefiq.export.mixed import export_mixed
from edgefiq.export.parity import describe_failure, parity_report, runner_scores, torch_scores
from edgefiq.models.checkpoint import load_checkpoint
from edgefiq.registry import BACKENDS
from edgefiq.utils import sha256_file

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
RANDOM_VERIFY_IMAGES = 32


@dataclass
class ExportResult:
    """A published artifact: its main file and its metadata (``files`` lists every file written)."""

    path: Path
    meta: ArtifactMeta
    files: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------- error messages

_OP_PATTERNS = (
    r"[Oo]perator '?((?:aten|prim|onnx)::[\w.]+)'?",
    r"No (?:translator|conversion rule|lowering) (?:found |registered )?for (?:operations?:\s*)?'?([\w:.]+)",
    r"Could not find an implementation for (\w+\(\d+\))",
    r"\b((?:aten|prim)::\w+(?:\.\w+)?)",
    r"\b(aten\.\w+(?:\.\w+)?)",
    r"torch\.ops\.([\w.]+)",
)
_NOISE = re.compile(r"^(Traceback|\s*File \"|\s+\^|During handling|The above exception|\s*$|-{3,}|\[)")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen and len(seen) < 8:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def explain_conversion_error(exc: BaseException) -> str:
    """One line from a converter exception: the unsupported operator if named, else the first meaningful line.

    Example:
        >>> explain_conversion_error(RuntimeError("Exporting the operator 'aten::fft_rfft2' to ONNX "
        ...                                       "opset version 17 is not supported."))
        "unsupported operator aten::fft_rfft2: Exporting the operator 'aten::fft_rfft2' to ONNX opset version 17 is not supported."
    """
    texts = [str(e) for e in _chain(exc)]
    full = "\n".join(texts)
    op = next((m.group(1) for pat in _OP_PATTERNS for m in [re.search(pat, full)] if m), None)
    first = ""
    if op:  # the line that names the operator says the most
        first = next((ln.strip(" -") for ln in full.splitlines() if op in ln and not _NOISE.match(ln)), "")
    for text in texts if not first else ():
        for line in text.splitlines():
            if not _NOISE.match(line) and len(line.strip()) > 3:
                first = line.strip()
                break
        if first:
            break
    first = first or type(exc).__name__
    if len(first) > 220:
        first = first[:217] + "..."
    return f"unsupported operator {op}: {first}" if op else first


# ----------------------------------------------------------------------------- library API

def _state_sha256(model: Any) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _pruning_summary(pruning: dict[str, Any] | None) -> dict[str, Any] | None:
    if not pruning:
        return None
    return {k: v for k, v in pruning.items() if k != "structure" and isinstance(v, (str, int, float, bool, type(None)))}


def _as_batch(src: Any, preprocess: Preprocess, *, limit: int | None, min_images: int = 1) -> np.ndarray:
    return load_calibration(src, preprocess, limit=limit, min_images=min_images)


def export_model(model: Any, preprocess: Preprocess, target: str, out_dir: str | Path, *,
                 precision: str = "fp32", calibration: Any = None, verify: Any = None,
                 accuracy_control: float | None = None, channels_last: bool = False, no_verify: bool = False,
                 arch: str = "model", name: str | None = None, pruning: dict[str, Any] | None = None,
                 source_sha256: str = "", calibration_method: str = "default", calibration_limit: int | None = 300,
                 verify_limit: int | None = 500, threads: int | None = None,
                 advanced: AdvancedExportOptions | None = None, overwrite: bool = False) -> ExportResult:
    """Export a torch ``model`` to one ``target`` backend, verify it, and publish it atomically.

    Args:
        preprocess: the model's preprocessing (written to the sidecar).
        calibration: image folder, calibration ``.npz`` or float32 NCHW array (required for int8).
        calibration_method: int8 activation ranges: ``default`` (the backend's first method), one of
            the backend's ``calibration_methods``, or ``auto``: each of its ``auto_calibration`` methods
            is tried and the best SRCC vs fp32 on the calibration images is kept
            (``edgefiq.export.autocal``; the sidecar's ``quantization.calibration_auto`` lists the trials).
        verify: verification images (folder/``.npz``/array); default: the calibration set, else random inputs.
        accuracy_control: int8 only, every target: largest SRCC drop vs fp32 allowed on the calibration
            images; the fewest blocks needed stay float (``edgefiq.export.mixed``; the sidecar's
            ``quantization.mixed_precision`` lists them and every trial). ``advanced``: rarely changed
            settings (``AdvancedExportOptions``); its ``float_units_hint`` and ``calibration_method_hint``,
            what passed elsewhere, are tried first under accuracy control.
        channels_last: NHWC model input (TFLite only).
        no_verify: skip the parity gate (parity is then recorded as not verified).
        overwrite: replace an artifact of the same name in ``out_dir`` (otherwise that is an error).

    Raises:
        UsageError: unknown target/precision, int8 without calibration, unsupported option for the target,
            an artifact of that name already in ``out_dir`` (without ``overwrite``).
        ExportError: the converter or quantiser rejected the model (one line naming the operator or reason).
        ParityError: the artifact does not score like the torch model; nothing is written.

    Example:
        >>> res = export_model(model, Preprocess(size=(112, 112)), "onnx", "out/", precision="int8",   # doctest: +SKIP
        ...                    calibration="calib.npz", verify="heldout/")
        >>> res.meta.parity["srcc_vs_fp32"]                                                            # doctest: +SKIP
        0.998
    """
    # heavy (torch): lazy, so importing edgefiq.export stays cheap and torch-free
    import torch

    backend = BACKENDS.get(target)()
    _check_request(backend, precision, channels_last, accuracy_control)
    fname = artifact_filename(backend, name or arch, precision, channels_last)
    refuse_overwrite(Path(out_dir) / fname, overwrite)
    started = time.perf_counter()
    log.info("export %s %s: %s", target, precision, _plan(precision, calibration_method, accuracy_control))
    calib, vx, vsource = _input_batches(preprocess, precision, calibration, verify, calibration_limit, verify_limit)
    model = model.eval()
    example = torch.from_numpy(np.ascontiguousarray(vx[:1]))
    ref = torch_scores(model, vx)
    calibration_method, auto = _calibration_method(backend, precision, calibration_method)
    adv = dataclasses.replace(advanced or AdvancedExportOptions(), calibration_method=calibration_method)
    options = ExportOptions(precision=precision, calibration=calib, channels_last=channels_last, advanced=adv)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pp = dataclasses.replace(preprocess, layout="NHWC" if channels_last else "NCHW")
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".export-{fname}-", dir=out_dir))
    try:
        try:
            conv = _convert(backend, model, example, tmp_dir / fname, options, auto=auto,
                            accuracy_control=accuracy_control, threads=threads)
        except EdgefiqError:
            raise
        except Exception as e:  # converters raise anything; the user gets one line
            what = "quantise" if precision == "int8" else "convert"
            raise ExportError(f"cannot {what} {arch} for {target} {precision}: {explain_conversion_error(e)}") from e
        tmp_art = conv.path
        quant = _quantization_record(backend, conv, calib, accuracy_control)
        meta = ArtifactMeta(backend=target, precision=precision, preprocess=pp, arch=arch,
                            pruning=_pruning_summary(pruning), source_sha256=source_sha256 or _state_sha256(model),
                            quantization=quant, versions={**package_versions(*backend.packages), "numpy": np.__version__})
        write_meta(tmp_art, meta)
        meta.parity = _parity(backend, tmp_art, ref, vx, vsource, precision, no_verify=no_verify, threads=threads)
        done = _publish(backend, tmp_art, out_dir / fname, meta)
        log.info("export %s %s: wrote %s in %.1f s", target, precision, done.path, time.perf_counter() - started)
        return done
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def artifact_filename(backend: Any, stem: str, precision: str, channels_last: bool = False) -> str:
    """The artifact's file name: ``<stem>_<precision>[_nhwc]<suffix>`` (e.g. ``face_trunk_int8.tflite``).

    Example:
        >>> from edgefiq.registry import BACKENDS
        >>> artifact_filename(BACKENDS.get("onnx")(), "face_trunk", "int8")
        'face_trunk_int8.onnx'
    """
    return f"{stem}_{precision}{'_nhwc' if channels_last else ''}{backend.suffix}"


def refuse_overwrite(path: Path, overwrite: bool = False) -> None:
    """A one-line ``UsageError`` when an artifact (or its sidecar) is already at ``path``, unless ``overwrite``.

    Example:
        >>> refuse_overwrite(Path("no/such/model.onnx"))
    """
    if not overwrite and (path.exists() or meta_path(path).exists()):
        raise UsageError(f"{path} already exists: pass --force to replace it, or --name to write another file "
                         "beside it")


def _plan(precision: str, calibration_method: str, accuracy_control: float | None) -> str:
    """What an export is about to do, for its progress line."""
    if precision != "int8":
        return "convert, then check parity against torch"
    steps = ["calibrate (" + ("trying each method" if calibration_method == "auto" else calibration_method) + ")"]
    if accuracy_control is not None:
        steps.append(f"search the fewest float blocks for an SRCC drop <= {accuracy_control:g}")
    return ", ".join(steps) + ", then check parity against torch"


def _check_request(backend: Any, precision: str, channels_last: bool, accuracy_control: float | None) -> None:
    """Refuse what ``backend`` cannot do before any work (one-line ``UsageError``/``BackendUnavailableError``)."""
    target = backend.name
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision not in backend.precisions:
        raise UsageError(f"{target} backend does not support {precision} (supports {', '.join(backend.precisions)})")
    if channels_last and not backend.supports_channels_last:
        supported = [n for n in BACKENDS.names() if BACKENDS.get(n).supports_channels_last]
        raise UsageError(f"--channels-last is supported by {', '.join(supported) or 'no backend'} only, not {target}")
    if accuracy_control is not None and precision != "int8":
        raise UsageError(f"--accuracy-control needs --precision int8, not {precision}")
    if accuracy_control is not None and not 0 < accuracy_control < 1:
        raise UsageError(f"--accuracy-control is the largest SRCC drop vs fp32 allowed, in (0, 1); got {accuracy_control}")
    if not backend.can_export():
        pkgs = [p for p in backend.packages if p != "torch"] or ["torch"]
        raise BackendUnavailableError(f"{target} backend is not installed: `pip install {' '.join(pkgs)}`")


def _input_batches(preprocess: Preprocess, precision: str, calibration: Any, verify: Any,
                   calibration_limit: int | None, verify_limit: int | None) -> tuple[np.ndarray | None, np.ndarray, str]:
    """``(calibration batch or None, verification batch, where the verification images come from)``."""
    calib = None
    if precision == "int8":
        if calibration is None:
            raise UsageError("int8 needs calibration images: --calibration DIR|FILE.npz (see calibration/README.md)")
        calib = _as_batch(calibration, preprocess, limit=calibration_limit, min_images=MIN_INT8_CALIBRATION)
    if verify is not None:
        return calib, _as_batch(verify, preprocess, limit=verify_limit), "verify"
    if calib is not None or calibration is not None:
        vx = calib if calib is not None else _as_batch(calibration, preprocess, limit=calibration_limit)
        return calib, vx, "calibration (not held out)"
    g = np.random.default_rng(0)
    return calib, g.standard_normal((RANDOM_VERIFY_IMAGES, 3, *preprocess.size)).astype(np.float32), "random"


def _calibration_method(backend: Any, precision: str, method: str) -> tuple[str, bool]:
    """The int8 calibration method to use on ``backend`` and whether ``auto`` trials run."""
    methods = tuple(backend.calibration_methods)
    auto = precision == "int8" and method == "auto" and bool(backend.auto_calibration)
    if precision == "int8" and method in ("default", "auto") and not auto:
        method = methods[0] if methods else "default"
    elif precision == "int8" and not auto and method not in methods:   # a choice this backend cannot honour
        raise UsageError(f"{backend.name} int8 calibration method {method!r} is not supported "
                         f"(supports {', '.join(methods) or 'only its own'})")
    return method, auto


@dataclasses.dataclass(frozen=True)
class _Converted:
    """What ``_convert`` wrote and how (the sidecar's ``quantization`` record is made from it)."""

    path: Path
    options: ExportOptions              # with the calibration method that was used
    quantization: dict[str, Any]        # the quantiser's report (empty for float exports)
    mixed: dict[str, Any] | None = None                 # the mixed-precision record
    trials: list[dict[str, Any]] | None = None          # auto-calibration trials


def _convert(backend: Any, model: Any, example: Any, tmp_art: Path, options: ExportOptions, *, auto: bool,
             accuracy_control: float | None, threads: int | None) -> _Converted:
    """Write the artifact: mixed precision (with the auto calibration trials inside its search), auto
    calibration trials or a plain export."""
    if accuracy_control is not None:   # method trials at the hinted float units, then the bisection
        mixed, report, method, trials = export_mixed(
            backend, model, example, tmp_art, options, max_drop=float(accuracy_control), threads=threads,
            start=options.advanced.float_units_hint, methods=_auto_methods(backend, options) if auto else ())
        options = options.with_advanced(calibration_method=method)
        return _Converted(tmp_art, options, report, mixed=mixed, trials=trials if auto else None)
    if auto:   # every candidate method is a real quantisation; the best on the calibration images stays
        method, chosen, trials, report = choose_calibration(backend, model, example, tmp_art, options, threads=threads)
        options = options.with_advanced(calibration_method=method)
        return _Converted(chosen, options, report, trials=trials)
    done = backend.export(model, example, tmp_art, options)
    return _Converted(Path(done.path), options, dict(done.quantization))


def _auto_methods(backend: Any, options: ExportOptions) -> tuple[str, ...]:
    """The backend's ``auto_calibration`` methods, ``advanced.calibration_method_hint`` (it passed on
    another model) first."""
    hint = options.advanced.calibration_method_hint
    return tuple(sorted(backend.auto_calibration, key=lambda m: m != hint))


def _quantization_record(backend: Any, conv: _Converted, calib: np.ndarray | None,
                         accuracy_control: float | None) -> dict[str, Any]:
    """The sidecar's ``quantization``: the backend's I/O info plus how int8 was calibrated."""
    quant = dict(backend.quantization_info(conv.path))
    if conv.options.precision == "int8":
        quant.update(calibration_images=int(len(calib)),  # type: ignore[arg-type]
                     calibration_method=conv.options.advanced.calibration_method)
        if conv.trials is not None:
            quant["calibration_auto"] = {"metric": "srcc_vs_fp32 on the calibration images", "trials": conv.trials}
        quant.update(conv.quantization)
    if conv.mixed is not None:
        quant["accuracy_control"] = {"metric": "srcc_vs_fp32", "max_drop": float(accuracy_control)}  # type: ignore[arg-type]
        quant["mixed_precision"] = conv.mixed
    return quant


def _parity(backend: Any, art: Path, ref: np.ndarray, vx: np.ndarray, vsource: str, precision: str, *,
            no_verify: bool, threads: int | None) -> dict[str, Any]:
    """The parity gate: the artifact on its own runtime against the torch scores (``ParityError`` if it fails)."""
    if no_verify:
        return {"verified": False, "reason": "--no-verify"}
    rep = parity_report(ref, runner_scores(backend.load(art, threads), vx), precision)
    rep.update(verified=True, verify_source=vsource)
    if not rep["passed"]:
        raise ParityError(f"parity gate failed for {backend.name} {precision}: {describe_failure(rep)}; "
                          "artifact not written (use --no-verify to keep it anyway)")
    return rep


def _publish(backend: Any, tmp_art: Path, final: Path, meta: ArtifactMeta) -> ExportResult:
    """Move the verified artifact's files next to ``final`` and write its sidecar last."""
    files = []
    for f in artifact_files(backend, tmp_art):
        os.replace(f, final.parent / f.name)
        files.append(final.parent / f.name)
    write_meta(final, meta)
    files.append(meta_path(final))
    return ExportResult(path=final, meta=meta, files=files)


def export_checkpoint(ckpt: str | Path, target: str, out_dir: str | Path, *, precision: str = "fp32",
                      calibration: Any = None, verify: Any = None, accuracy_control: float | None = None,
                      channels_last: bool = False, no_verify: bool = False, name: str | None = None,
                      **kwargs: Any) -> ExportResult | list[ExportResult]:
    """Export an edgefiq checkpoint; ``target="all"`` exports every registered backend.

    With ``"all"``, backends that lack ``precision`` (e.g. torch for int8) are skipped,
    target-specific options apply where supported, and a list is returned; if some
    targets fail the others are still published and an ``ExportError`` lists the failures.

    Example:
        >>> res = export_checkpoint("runs/distill/best.pt", "onnx", "export/", precision="int8",   # doctest: +SKIP
        ...                         calibration="calib.npz")
        >>> res.path                                                                             # doctest: +SKIP
        PosixPath('export/mobilenetv3_small_100_int8.onnx')
    """
    ck = load_checkpoint(ckpt)
    common = dict(arch=ck.arch, name=name, pruning=ck.pruning, source_sha256=sha256_file(ckpt), **kwargs)
    if target == "all":   # refuse before the first target is written
        for t in BACKENDS.names():
            b = BACKENDS.get(t)()
            if precision in b.precisions:
                refuse_overwrite(Path(out_dir) / artifact_filename(b, name or ck.arch, precision,
                                                                   channels_last and b.supports_channels_last),
                                 bool(kwargs.get("overwrite")))
    if target != "all":
        return export_model(ck.model, ck.preprocess, target, out_dir, precision=precision, calibration=calibration,
                            verify=verify, accuracy_control=accuracy_control, channels_last=channels_last,
                            no_verify=no_verify, **common)
    results, failures = [], []
    method = common.pop("calibration_method", "default")
    for t in BACKENDS.names():
        b = BACKENDS.get(t)()
        if precision not in b.precisions:
            log.info("skip %s: no %s", t, precision)
            continue
        try:
            results.append(export_model(
                ck.model, ck.preprocess, t, out_dir, precision=precision, calibration=calibration, verify=verify,
                calibration_method=method if method == "auto" or method in b.calibration_methods else "default",
                accuracy_control=accuracy_control,
                channels_last=channels_last and b.supports_channels_last,
                no_verify=no_verify, **common))
        except EdgefiqError as e:
            failures.append(f"{t}: {e}")
    if failures:
        raise ExportError(f"{len(failures)} target(s) failed ({len(results)} written): " + " | ".join(failures))
    return results
