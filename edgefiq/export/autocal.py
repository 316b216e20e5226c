"""``calibration_method="auto"``: try the backend's calibration methods, keep the one that ranks best.

No single way of setting int8 activation ranges suits every student. On the LFW-distilled
MobileNetV3-Small, onnxruntime's global min/max gives SRCC vs fp32 0.38 and the per-image
mean of min/max 0.997; on the quickstart's synthetic student it is the other way round (0.989
vs 0.943), and on OpenVINO that student needs asymmetric activations with global min/max.

``choose_calibration`` quantises the model with each method in the backend's
``auto_calibration`` list, in order, scores the calibration images with the backend's own
runner, and keeps the method whose scores rank them most like the torch fp32 model (SRCC, the
int8 parity metric). It stops early once a method reaches ``GOOD_ENOUGH``. The choice is made
on the calibration images; the parity gate then checks the chosen artifact on the verification
images, held out from the choice when the caller gives them.

Under accuracy control (``edgefiq.export.mixed.export_mixed`` with ``methods``) the methods are
compared inside the mixed-precision search instead, at its starting block count, so a method
that passes there ends the export in one trial.

Example:
    >>> method, path, trials = choose_calibration(backend, model, x[:1], Path("tmp/m.onnx"), opts)  # doctest: +SKIP
    >>> method, trials
    ('minmax', [{'method': 'mean-minmax', 'srcc_vs_fp32': 0.943}, {'method': 'minmax', 'srcc_vs_fp32': 0.989}])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from edgefiq.errors import EdgefiqError, ExportError
from edgefiq.export.mixed import _srcc, quantise_and_score
from edgefiq.export.parity import torch_scores

GOOD_ENOUGH = 0.995   # SRCC vs fp32 on the calibration images past which no other method is tried


def choose_calibration(backend: Any, model: Any, example: Any, out: Path, options: Any, *,
                       threads: int | None = None) -> tuple[str, Path, list[dict[str, Any]], dict[str, Any]]:
    """Quantise with each of ``backend.auto_calibration`` under ``out.parent/auto-<method>/``.

    Returns ``(method, artifact path, trials, quantization report)`` of the best method; every
    trial is ``{"method", "srcc_vs_fp32"}`` or ``{"method", "error"}``.

    Raises:
        ExportError: no method could quantise the model (each one's reason, one line).
    """
    calib = options.calibration
    reference = torch_scores(model, calib)

    def trial(method: str) -> tuple[float, tuple[Path, dict[str, Any]]]:
        path = Path(out).parent / f"auto-{method}" / Path(out).name
        scores, report = quantise_and_score(backend, model, example, path, options, calib, threads=threads,
                                            calibration_method=method)
        return _srcc(scores, reference), (path, report)

    method, _, (path, report), trials = try_methods(backend.auto_calibration, trial, GOOD_ENOUGH)
    return method, path, trials, report


def try_methods(methods: Sequence[str], trial: Callable[[str], tuple[float, Any]], stop: float,
                **record: Any) -> tuple[str, float, Any, list[dict[str, Any]]]:
    """``trial(method) -> (SRCC vs fp32, payload)`` for each method in order until one reaches ``stop``.

    Returns ``(best method, its SRCC, its payload, trials)``; a trial is ``{"method", **record,
    "srcc_vs_fp32"}`` or ``{"method", "error"}`` (a quantiser that fails is one failed trial).

    Raises:
        ExportError: no method could quantise the model (each one's reason, one line).
    """
    from edgefiq.export.api import explain_conversion_error  # cycle: export.api imports this module at its top

    trials: list[dict[str, Any]] = []
    best: tuple[float, str, Any] | None = None
    for method in methods:
        try:
            srcc, payload = trial(method)
        except EdgefiqError as e:
            trials.append({"method": method, "error": str(e)})
            continue
        except Exception as e:  # noqa: BLE001 - a quantiser that fails is one failed trial
            trials.append({"method": method, "error": explain_conversion_error(e)})
            continue
        trials.append({"method": method, **record, "srcc_vs_fp32": round(srcc, 5)})
        if best is None or srcc > best[0]:
            best = (srcc, method, payload)
        if srcc >= stop:
            break
    if best is None:
        raise ExportError("int8 calibration: no method could quantise the model: "
                          + "; ".join(f"{t['method']}: {t['error']}" for t in trials))
    return best[1], best[0], best[2], trials
