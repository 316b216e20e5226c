"""Issue 20 finding 2: third-party console noise is hidden unless -v, nothing forks after JAX, and the
TFLite int8 graph really is in eval mode (litert-torch's "converted in training mode" was about a flag).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from edgefiq.console import is_noise

ROOT = Path(__file__).resolve().parents[1]

NOISE = [
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "W1203 09:00:56.151000 21224 torch/utils/cpp_extension.py:183] No CUDA runtime is found",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "Your model is converted in training mode. Please set the module in evaluation mode",
    "Statistics collection ━━━━━━━━━━━ 100% 64/64 • 0:00:00 • 0:00:00",
    "Collecting tensor data and making histogram ...",
    "Number of tensors : 143",
    "Percentile : (0.0010000000000047748,99.999)",
    "Generating Quantization Parameters::   0%|          | 0/115 [00:00<?, ?it/s]",
    "I0000 00:00:1796304886.645776    9865 flatbuffer_export.cc:4410] Estimated count of arithmetic ops: 471.391 M",
]


@pytest.mark.parametrize("line", NOISE)
def test_known_noise_is_recognised(line: str) -> None:
    assert is_noise(line)


@pytest.mark.parametrize("line", ["Error: x.onnx: not a loadable onnx model", "wrote scores.csv",
                                  "warning: 3 image(s) are not 112x112 aligned face crops"])
def test_edgefiq_messages_are_not_noise(line: str) -> None:
    assert not is_noise(line)


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_native_output_is_filtered_and_shown_with_verbose() -> None:
    code = ("import os\nfrom edgefiq.console import native_output_captured\n"
            "with native_output_captured():\n"
            "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\nreal problem\\n')\n"
            "    os.write(1, b'W1203 09:00:56.151000 21224 torch/x.py:1] noise\\nresult\\n')\n")
    r = _run(code)
    assert r.stderr == "real problem\n" and r.stdout == "result\n", (r.stdout, r.stderr)
    r = _run(code, env={"EDGEFIQ_VERBOSE": "1"})
    assert "XNNPACK" in r.stderr and "noise" in r.stdout


def test_cli_uses_forkserver_not_fork() -> None:
    """JAX (loaded by litert-torch) warns that os.fork() may deadlock; OpenVINO telemetry forked."""
    code = ("import multiprocessing, sys\nfrom edgefiq.cli import main\n"
            "try:\n    main(['recipe', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(multiprocessing.get_start_method())")
    r = _run(code)
    assert r.stdout.strip().splitlines()[-1] == "forkserver", r.stdout + r.stderr


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="litert-torch not installed")
def test_tflite_int8_graph_is_in_eval_mode() -> None:
    """Batch norm uses running statistics and dropout is gone in the graph litert-torch converts."""
    import numpy as np
    import torch
    from torch import nn

    from edgefiq.export.tflite import _pt2e_int8

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1)).eval()
    calib = np.random.default_rng(0).standard_normal((16, 3, 16, 16)).astype(np.float32)
    graph, _ = _pt2e_int8(model, torch.from_numpy(calib[:1]), calib, False, method="pt2e-histogram")
    nodes = [n for n in graph.graph.nodes if n.op == "call_function"]
    dropout = [n for n in nodes if "dropout" in str(n.target)]
    assert all(n.args[2] is False for n in dropout), [n.args for n in dropout]          # dropout(x, p, train=False)
    assert not any("_native_batch_norm_legit.default" in str(n.target) for n in nodes)  # no batch statistics
    assert not any(m.training for m in graph.modules())
    with torch.no_grad():   # deterministic like eval, and close to the float model in eval mode
        xs = [torch.from_numpy(calib[i:i + 1]) for i in range(len(calib))]
        a = torch.cat([graph(x) for x in xs])
        b = torch.cat([graph(x) for x in xs])
        ref = model(torch.from_numpy(calib))
    assert torch.equal(a, b)
    assert np.corrcoef(a.numpy().ravel(), ref.numpy().ravel())[0, 1] > 0.95


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="litert-torch not installed")
def test_quantize_console_has_no_third_party_lines(tmp_path: Path) -> None:
    """A tflite + openvino int8 export prints edgefiq's own lines only (no INFO/W..., no fork warning)."""
    import torch

    from edgefiq.data.preprocess import Preprocess
    from edgefiq.data.synthetic import make_synthetic_sample
    from edgefiq.models.checkpoint import save_checkpoint
    from edgefiq.models.students import tiny_cnn

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "t.pt", tiny_cnn(width=4).eval(), arch="tiny_cnn", arch_kwargs={"width": 4},
                           preprocess=Preprocess(size=(32, 32)))
    imgs = make_synthetic_sample(tmp_path / "imgs", n_identities=6, per_identity=3, size=32, degraded=False)
    out = tmp_path / "out"
    for target in ("tflite", "openvino"):
        r = subprocess.run([sys.executable, "-m", "edgefiq", "quantize", str(ckpt), "-t", target, "--calibration",
                            str(imgs), "--no-verify", "-o", str(out)], cwd=ROOT, capture_output=True, text=True,
                           timeout=900)
        lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
        noisy = [ln for ln in lines if is_noise(ln) or "fork" in ln or ln.startswith(("I0", "W0", "W1", "INFO"))]
        assert r.returncode == 0, r.stderr[-2000:]
        assert not noisy, noisy
