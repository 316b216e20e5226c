"""Export round trip (every registered backend x precision x student), parity gate, converter errors.

The round trip uses the real runtimes (onnxruntime, OpenVINO, ai-edge-litert): export ->
load the artifact with its runner through the public ``load_runner`` (which reads the
sidecar) -> compare with the torch model. ``tiny_cnn`` runs by default; every other
registered student is ``slow``. The parametrisation is built from the registries, and
``test_every_backend_is_covered`` fails if a backend module registers a backend that the
package does not import or the parametrisation misses.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefiq.data.preprocess import Preprocess  # noqa: E402
from edgefiq.errors import ExportError, ParityError, UsageError  # noqa: E402
from edgefiq.export import AdvancedExportOptions, export_model, load_runner  # noqa: E402
from edgefiq.export.parity import TOLERANCES, parity_report, runner_scores, torch_scores  # noqa: E402
from edgefiq.registry import BACKENDS, STUDENTS  # noqa: E402

EXPORT_DIR = Path(__file__).resolve().parents[1] / "edgefiq" / "export"
CASES = [(b, p) for b in BACKENDS.names() for p in BACKENDS.get(b).precisions]
FAST_STUDENT = "tiny_cnn"
SIZE = (64, 64)   # smaller crops keep the default suite fast; conversion cost is per graph, not per pixel


def synthetic_faces(n: int, seed: int, size: tuple[int, int] = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random images degraded by noise/darkening of known strength; returns (uint8 NHWC, quality)."""
    g = np.random.default_rng(seed)
    h, w = size
    q = g.uniform(0, 1, n)
    imgs = []
    for k in range(n):
        low = g.uniform(40, 215, (4, 4, 3))
        base = np.kron(low, np.ones((h // 4, w // 4, 1)))
        yy, xx = np.mgrid[0:h, 0:w]
        base += 30 * np.sin(xx[..., None] / (3 + 5 * g.random())) * np.cos(yy[..., None] / 7)
        img = base * (0.4 + 0.6 * q[k]) + g.normal(0, 50 * (1 - q[k]), base.shape)
        imgs.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(imgs), q


def fitted_student(name: str, size: tuple[int, int] = SIZE, steps: int = 40) -> torch.nn.Module:
    """A briefly trained student: random-init nets score near-constants, which says nothing about int8."""
    torch.manual_seed(0)
    model = STUDENTS.get(name)()
    imgs, q = synthetic_faces(96, seed=1, size=size)
    x = torch.from_numpy(Preprocess(size=size).batch(list(imgs)))
    y = torch.from_numpy(q.astype(np.float32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        idx = torch.from_numpy(np.random.default_rng(step).choice(len(x), 24, replace=False))
        loss = torch.nn.functional.mse_loss(model(x[idx]).reshape(-1), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def image_sets() -> dict[str, np.ndarray]:
    pp = Preprocess(size=SIZE)
    calib, _ = synthetic_faces(48, seed=2)
    held, _ = synthetic_faces(40, seed=3)
    return {"calibration": pp.batch(list(calib)), "verify": pp.batch(list(held))}


_MODELS: dict[str, torch.nn.Module] = {}


def _student(name: str) -> torch.nn.Module:
    if name not in _MODELS:
        _MODELS[name] = fitted_student(name)
    return _MODELS[name]


def _torch_half_passes(model: torch.nn.Module, x: np.ndarray) -> bool:
    """Whether torch's own fp16 (weights and activations) of ``model`` passes the fp16 parity gate."""
    half = copy.deepcopy(model).half()
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).reshape(-1).numpy()
        got = half(torch.from_numpy(x).half()).float().reshape(-1).numpy()
    return bool(parity_report(ref, got, "fp16")["passed"])


def _params() -> list:
    out = []
    for student in STUDENTS.names():
        for backend, precision in CASES:
            marks = [] if student == FAST_STUDENT else [pytest.mark.slow]
            out.append(pytest.param(student, backend, precision, marks=marks, id=f"{student}-{backend}-{precision}"))
    return out


@pytest.mark.parametrize("student,backend,precision", _params())
def test_round_trip(student: str, backend: str, precision: str, image_sets: dict, tmp_path: Path) -> None:
    if not BACKENDS.get(backend)().can_export():
        pytest.skip(f"{backend} runtime not installed")
    model = _student(student)
    try:
        res = export_model(model, Preprocess(size=SIZE), backend, tmp_path, precision=precision, arch=student,
                           calibration=image_sets["calibration"], verify=image_sets["verify"])
    except ExportError as e:  # ParityError is an ExportError; so is a quantiser that rejects the model
        if precision == "fp16" and isinstance(e, ParityError) and not _torch_half_passes(model, image_sets["verify"]):
            # The model itself is ill-conditioned in half precision (torch's own fp16 fails the same gate: e.g.
            # efficientnet_lite0 fitted 40 steps from random init, whose BatchNorm divides by near-zero
            # variances), so refusing its fp16 artifact is the gate doing its job.
            assert not any(tmp_path.glob(f"*{BACKENDS.get(backend).suffix}")), "a refused artifact was kept"
            pytest.xfail(f"fp16 refused, and torch's own fp16 of {student} fails the gate too: {str(e)[:160]}")
        if precision != "int8" or (student == FAST_STUDENT and backend != "onnx"):
            raise
        # tiny_cnn's plain onnxruntime int8 ranks the 40 verification images at SRCC ~0.98-0.99: the gate's 95%
        # bootstrap lower bound (export.parity) refuses it; openvino/tflite int8 of the same model pass.
        # Known gaps (issue 6): these students, fitted for a few steps here, give tightly clustered scores and
        # int8 reorders them (SRCC vs fp32 < 0.99); and LiteRT's PT2E quantiser rejects edgenext_xx_small
        # ("histogram_cpu not implemented for 'Long'"). Refusing with one clear error is the specified
        # behaviour; the int8 export/runner path is covered by FAST_STUDENT. Reported, not hidden: xfail.
        assert not any(tmp_path.glob(f"*{BACKENDS.get(backend).suffix}")), "a refused artifact was kept"
        pytest.xfail(f"int8 refused for briefly fitted {student}: {str(e)[:200]}")
    assert res.path.is_file() and res.path.name.endswith(BACKENDS.get(backend).suffix)
    assert all(f.is_file() for f in res.files)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp leftovers
    side = json.loads(Path(str(res.path) + ".json").read_text())
    assert side["backend"] == backend and side["precision"] == precision and side["arch"] == student
    assert side["preprocess"]["size"] == list(SIZE) and side["parity"]["passed"] is True
    assert side["parity"]["verify_source"] == "verify" and side["parity"]["tolerance"] == TOLERANCES[precision]
    assert len(side["source_sha256"]) == 64 and side["versions"]
    # independent re-check through the public loader (reads the sidecar)
    run, meta = load_runner(res.path, threads=1)
    x = image_sets["verify"]
    got = np.concatenate([run(x[i:i + 16]) for i in range(0, len(x), 16)])
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).reshape(-1).numpy()
    rep = parity_report(ref, got, precision)
    assert rep["passed"], rep
    assert meta.parity["n"] == len(x)
    if precision == "int8":
        assert meta.quantization["calibration_images"] == len(image_sets["calibration"])


def test_every_backend_is_covered() -> None:
    """Every ``@BACKENDS.register`` in edgefiq/export/*.py is imported by the package and parametrised."""
    declared = set()
    for f in EXPORT_DIR.glob("*.py"):
        declared |= set(re.findall(r'@BACKENDS\.register\("([^"]+)"\)', f.read_text()))
    assert declared == set(BACKENDS.names()), "a backend module is not imported by edgefiq/export/__init__.py"
    ids = {(s, b, p) for s, b, p in (param.values for param in _params())}
    for student in STUDENTS.names():
        for b in BACKENDS.names():
            assert BACKENDS.get(b).precisions, b
            for p in BACKENDS.get(b).precisions:
                assert (student, b, p) in ids
    assert "emo_1m" in STUDENTS.names() or "emo_1m" not in {s for s, _, _ in ids}


@pytest.mark.slow
def test_channels_last_tflite(image_sets: dict, tmp_path: Path) -> None:
    if not BACKENDS.get("tflite")().can_export():
        pytest.skip("tflite runtime not installed")
    res = export_model(_student(FAST_STUDENT), Preprocess(size=SIZE), "tflite", tmp_path, precision="int8",
                       channels_last=True, calibration=image_sets["calibration"], verify=image_sets["verify"])
    assert res.meta.preprocess.layout == "NHWC" and res.meta.quantization["input"]["shape"] == [1, *SIZE, 3]
    assert res.meta.quantization["input"]["dtype"] == "int8" and res.meta.parity["passed"]
    run, meta = load_runner(res.path)
    x = image_sets["verify"][:4]
    np.testing.assert_allclose(run(x), run(x.transpose(0, 2, 3, 1)))   # NCHW contract and native NHWC agree


@pytest.mark.parametrize("backend", ["onnx", "openvino", "tflite"])
def test_accuracy_control_mixed_precision(backend: str, image_sets: dict, tmp_path: Path) -> None:
    """Real backends: ``float_modules`` keeps those blocks float (all blocks float scores closer to fp32 than plain
    int8), and ``accuracy_control`` runs its trials as real exports, keeps the chosen one and records the search.
    (Which k the bisection picks depends on a few thousandths of SRCC here; ``test_export_mixed`` checks the search.)"""
    if not BACKENDS.get(backend)().can_export():
        pytest.skip(f"{backend} not installed")
    from edgefiq.export.mixed import precision_units

    model = _student(FAST_STUDENT)
    pp, calib = Preprocess(size=SIZE), image_sets["calibration"]
    every = [m for u in precision_units(model, skip=["head"]) for m in u]
    plain = export_model(model, pp, backend, tmp_path / "plain", precision="int8", calibration=calib, no_verify=True)
    floated = export_model(model, pp, backend, tmp_path / "float", precision="int8", calibration=calib,
                           no_verify=True, advanced=AdvancedExportOptions(float_modules=tuple(every)))
    ref = torch_scores(model, calib)
    diff = {k: float(np.abs(runner_scores(load_runner(r.path)[0], calib) - ref).max())
            for k, r in (("plain", plain), ("float", floated))}
    assert diff["float"] < diff["plain"], diff

    try:
        res = export_model(model, pp, backend, tmp_path / "ac", precision="int8", calibration=calib,
                           verify=image_sets["verify"], accuracy_control=0.05)   # plain int8 reaches >= 0.98 here
    except ParityError as e:   # the search ran; the gate's lower bound on 40 images refuses its result
        assert not any((tmp_path / "ac").glob(f"*{BACKENDS.get(backend).suffix}")), "a refused artifact was kept"
        pytest.xfail(f"{backend} int8 of tiny_cnn refused by the parity gate's lower bound: {str(e)[:160]}")
    q = res.meta.quantization
    mixed = q["mixed_precision"]
    assert q["accuracy_control"] == {"metric": "srcc_vs_fp32", "max_drop": 0.05}
    assert mixed["units"] == len(precision_units(model, skip=["head"]))
    assert mixed["ranking"] is None   # plain int8 passed at once: no order of the blocks was needed
    assert mixed["trials"][0]["float_units"] == 0 and mixed["trials"][0]["srcc"] >= 0.95
    assert mixed["float_units"] == [] and mixed["int8_units"] == mixed["units"]
    assert res.meta.parity["passed"] and res.path.is_file()
    assert not any((tmp_path / "ac").glob(".mixed-trials*")), "trial artifacts left behind"


def test_accuracy_control_refuses_a_model_with_no_int8_block(image_sets: dict, tmp_path: Path) -> None:
    """If only all blocks in float meet the drop (or the int8 blocks left change nothing), the export fails, writing
    nothing."""
    with pytest.raises(ExportError, match=r"accuracy control: (no block can stay int8 within SRCC drop 1e-05|the \d+ "
                                          r"block\(s\) left in int8 do not change the scores)"):
        export_model(_student(FAST_STUDENT), Preprocess(size=SIZE), "onnx", tmp_path, precision="int8",
                     calibration=image_sets["calibration"], verify=image_sets["verify"], accuracy_control=1e-5)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("backend,method,quantizer,head_float", [
    ("onnx", "default", "onnxruntime", True),
    ("onnx", "nncf", "nncf", True),
    ("tflite", "default", "nncf+litert-pt2e", True),
    ("tflite", "pt2e-histogram", "litert-pt2e", False),
])
def test_int8_quantiser_choice_is_recorded(backend: str, method: str, quantizer: str, head_float: bool,
                                           image_sets: dict, tmp_path: Path) -> None:
    """``default`` picks NNCF with the score head in float; the plain quantisers stay selectable."""
    if not BACKENDS.get(backend)().can_export():
        pytest.skip(f"{backend} runtime not installed")
    res = export_model(_student(FAST_STUDENT), Preprocess(size=SIZE), backend, tmp_path, precision="int8",
                       calibration=image_sets["calibration"], verify=image_sets["verify"], calibration_method=method,
                       no_verify=True)
    q = res.meta.quantization
    default = {"onnx": "mean-minmax", "tflite": "nncf"}[backend]
    assert q["quantizer"] == quantizer and q["calibration_method"] == (method if method != "default" else default)
    assert bool(q["float_layers"]) is head_float


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_auto_calibration_keeps_the_best_trial(backend: str, image_sets: dict, tmp_path: Path) -> None:
    """``auto`` quantises with the backend's candidate methods and keeps the best SRCC vs fp32 on the
    calibration images; the sidecar lists every trial and the artifact is the chosen trial's."""
    from edgefiq.export.autocal import GOOD_ENOUGH
    from edgefiq.export.parity import runner_scores, torch_scores
    from edgefiq.metrics import srcc

    b = BACKENDS.get(backend)()
    if not b.can_export():
        pytest.skip(f"{backend} runtime not installed")
    model = _student(FAST_STUDENT)
    res = export_model(model, Preprocess(size=SIZE), backend, tmp_path, precision="int8",
                       calibration=image_sets["calibration"], verify=image_sets["verify"], calibration_method="auto",
                       no_verify=True)
    q = res.meta.quantization
    trials = q["calibration_auto"]["trials"]
    tried = [t["method"] for t in trials]
    assert tried == list(b.auto_calibration[:len(tried)])   # in order; stops early only past GOOD_ENOUGH
    scores = [t["srcc_vs_fp32"] for t in trials]
    assert q["calibration_method"] == tried[int(np.argmax(scores))]
    assert len(tried) == len(b.auto_calibration) or max(scores) >= GOOD_ENOUGH
    got = runner_scores(b.load(res.path), image_sets["calibration"])
    assert srcc(got, torch_scores(model, image_sets["calibration"])) == pytest.approx(max(scores), abs=1e-4)
    assert not list(tmp_path.glob(".export-*"))   # trial folders are gone


def test_int8_quantiser_the_backend_lacks_is_a_usage_error(image_sets: dict, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="calibration method 'entropy' is not supported"):
        export_model(_student(FAST_STUDENT), Preprocess(size=SIZE), "tflite", tmp_path, precision="int8",
                     calibration=image_sets["calibration"], calibration_method="entropy")


class NoisyHead(torch.nn.Module):
    """Adds fresh noise on every call: no artifact can match it, so the fp32 gate must fail."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean((1, 2, 3))
        return y + 0.05 * torch.rand_like(y)


def test_parity_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ParityError, match="fp32 max abs diff"):
        export_model(NoisyHead().eval(), Preprocess(size=SIZE), "onnx", tmp_path)
    assert list(tmp_path.iterdir()) == []
    res = export_model(NoisyHead().eval(), Preprocess(size=SIZE), "onnx", tmp_path, no_verify=True)
    assert res.path.is_file() and res.meta.parity == {"verified": False, "reason": "--no-verify"}


class HistogramHead(torch.nn.Module):
    """Uses ``torch.histc``, which the ONNX, OpenVINO and LiteRT converters all reject."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.histc(v, 10).max() for v in self.conv(x)])


@pytest.mark.parametrize("backend", ["onnx", "openvino", "tflite"])
def test_unsupported_operator_is_one_line(backend: str, tmp_path: Path) -> None:
    if not BACKENDS.get(backend)().can_export():
        pytest.skip(f"{backend} runtime not installed")
    with pytest.raises(ExportError) as info:
        export_model(HistogramHead().eval(), Preprocess(size=SIZE), backend, tmp_path, arch="histc_net")
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 400
    assert re.search(r"aten(::|\.)histc", msg), msg
    assert msg.startswith(f"cannot convert histc_net for {backend} fp32: unsupported operator")
    assert list(tmp_path.iterdir()) == []


def test_usage_errors(tmp_path: Path) -> None:
    model = _student(FAST_STUDENT)
    with pytest.raises(UsageError, match="int8 needs calibration"):
        export_model(model, Preprocess(size=SIZE), "onnx", tmp_path, precision="int8")
    with pytest.raises(UsageError, match="fp32 only|does not support"):
        export_model(model, Preprocess(size=SIZE), "torch", tmp_path, precision="int8", calibration=np.zeros((16, 3, *SIZE), np.float32))
    with pytest.raises(UsageError, match="channels-last"):
        export_model(model, Preprocess(size=SIZE), "onnx", tmp_path, channels_last=True)
    with pytest.raises(UsageError, match="accuracy-control"):
        export_model(model, Preprocess(size=SIZE), "onnx", tmp_path, accuracy_control=0.01)
    with pytest.raises(UsageError, match="unknown backend 'onnxx'; did you mean 'onnx'"):
        export_model(model, Preprocess(size=SIZE), "onnxx", tmp_path)
