"""Third-party console noise: hidden by default, shown with ``-v``.

Converters and runtimes (TensorFlow Lite/LiteRT, absl, XNNPACK, JAX, NNCF, OpenVINO)
log INFO lines and warnings that say nothing to an edgefiq user ("Created TensorFlow Lite
XNNPACK delegate for CPU", "Your model is converted in training mode", absl's
"All log messages before absl::InitializeLog()"). Two tools keep them off the console:

* :func:`silence_third_party` raises the level of their Python loggers and sets the
  environment variables their C++ loggers read (called once by the CLI, before any of
  them is imported);
* :func:`native_output_captured` catches what C++ code writes straight to file
  descriptors 1 and 2 around one noisy call and replays only the lines that are not
  known noise (everything when ``EDGEFIQ_VERBOSE=1``, i.e. ``-v``).

Import-light (standard library only): it belongs to layer 0.

Example:
    >>> from edgefiq.console import is_noise, native_output_captured
    >>> is_noise("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    True
    >>> with native_output_captured():
    ...     pass
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from typing import Iterator

# Python loggers of libraries edgefiq drives; their INFO/WARNING lines are shown only with -v.
NOISY_LOGGERS = ("absl", "jax", "jax._src", "tensorflow", "tflite", "litert_torch", "ai_edge_torch",
                 "ai_edge_quantizer", "nncf", "openvino", "onnxscript", "onnx_ir", "torch._dynamo",
                 "torch._export", "torch.export", "torch.fx", "torch.onnx", "torch_pruning", "timm")

# Environment read by C++ loggers at import time (set only if the user has not set them).
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "2", "TF_ENABLE_ONEDNN_OPTS": "0",
             "LITERT_TORCH_SHOW_PROGRESS": "n", "ABSL_MIN_LOG_LEVEL": "2",
             "TQDM_DISABLE": "1"}   # ai-edge-quantizer's tqdm bars (edgefiq's own bars are rich, not tqdm)

# Lines third-party C++ code prints directly to stdout/stderr that are known to be noise.
NOISE_PATTERNS = tuple(re.compile(p) for p in (
    r"^INFO: ",                                       # TFLite minimal logger (XNNPACK delegate, ...)
    r"^[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ ",            # absl/glog INFO and WARNING lines (I0000 00:00:<epoch s>...)
    r"^WARNING: All log messages before absl::InitializeLog\(\)",
    r"converted in training mode",                     # litert-torch: checked, see export/tflite.py
    r"^WARNING:tensorflow:", r"^WARNING:absl:", r"^INFO:(tensorflow|absl|nncf):",
    r"oneDNN custom operations are on",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"TF-TRT Warning",
    r"^To enable the following instructions: ",
    r"cuda drivers on your machine, GPU will not be used",
    r"^E0000 ",                                        # absl "could not find cuda" on CPU hosts
    r"━+ +\d+%",                                      # rich progress bars of NNCF (Statistics collection ...)
    r"^[\w ]+:: +\d+%\|",                              # tqdm bars of ai-edge-quantizer (Generating Quantization ...)
    r"^(Statistics collection|Applying [\w ]+ correction)\b",
    r"^(Collecting tensor data and making histogram|Finding optimal threshold for each tensor|"   # onnxruntime
    r"Number of tensors :|Number of histogram bins :|Percentile : \()",                          # calibrators
))


def is_noise(line: str) -> bool:
    """True for a console line from a third-party library that edgefiq hides without ``-v``.

    Example:
        >>> is_noise("Error: export failed")
        False
    """
    return any(p.search(line) for p in NOISE_PATTERNS)


def verbose() -> bool:
    """True when the CLI was given ``-v`` (``EDGEFIQ_VERBOSE=1``)."""
    return os.environ.get("EDGEFIQ_VERBOSE") == "1"


def no_fork_after_jax() -> None:
    """Make ``multiprocessing`` start children with ``forkserver`` instead of ``fork``.

    litert-torch loads JAX, which is multithreaded; OpenVINO/NNCF telemetry then sends each
    event from a ``multiprocessing.Process``, and a plain ``fork`` of a JAX process can
    deadlock (JAX warns "os.fork() was called"). ``forkserver`` (Python 3.14's default on
    Linux) forks from a clean server process instead. Called once by the CLI.
    """
    import multiprocessing  # stdlib but ~30 ms (socket, pickle): edgefiq.cli imports this module on every start

    if sys.platform.startswith("linux") and multiprocessing.get_start_method(allow_none=True) in (None, "fork"):
        multiprocessing.set_start_method("forkserver", force=True)


def silence_third_party(verbose: bool = False) -> None:
    """Quiet third-party loggers (default) or let them through (``verbose=True``).

    Args:
        verbose: True for ``-v``: every library logs at its own level.

    Example:
        >>> silence_third_party()
        >>> logging.getLogger("absl").level >= logging.ERROR
        True
    """
    no_fork_after_jax()
    level = logging.NOTSET if verbose else logging.ERROR
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if not verbose:
        for k, v in QUIET_ENV.items():
            os.environ.setdefault(k, v)


@contextlib.contextmanager
def native_output_captured(also_stdout: bool = True) -> Iterator[None]:
    """Catch output written straight to file descriptors 2 (and 1) by C/C++ code; replay non-noise.

    Python writes inside the block are caught too and replayed in order, minus lines matching
    :data:`NOISE_PATTERNS`. With ``-v`` nothing is caught. Use it around one noisy call (a
    converter, an interpreter load), not around code that draws a progress bar.

    Args:
        also_stdout: catch file descriptor 1 as well (converters print there).

    Example:
        >>> with native_output_captured():
        ...     _ = os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
    """
    if verbose():
        yield
        return
    fds = (1, 2) if also_stdout else (2,)
    saved: dict[int, int] = {}
    files: dict[int, "tempfile._TemporaryFileWrapper[bytes]"] = {}
    for fd in fds:
        try:
            (sys.stdout if fd == 1 else sys.stderr).flush()
            saved[fd] = os.dup(fd)
        except (OSError, ValueError, AttributeError):  # no real descriptor (e.g. under a test runner)
            continue
        files[fd] = tempfile.TemporaryFile()
        os.dup2(files[fd].fileno(), fd)
    try:
        yield
    finally:
        for fd, keep in saved.items():
            with contextlib.suppress(OSError, ValueError, AttributeError):
                (sys.stdout if fd == 1 else sys.stderr).flush()
            os.dup2(keep, fd)
            os.close(keep)
            f = files[fd]
            f.seek(0)
            text = f.read().decode("utf-8", "replace")
            f.close()
            kept = "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))
            if kept:
                os.write(fd, kept.encode())
