"""``edgefiq export`` and ``edgefiq quantize``: one checkpoint -> verified edge artifacts."""

from __future__ import annotations

from typing import Any, Callable

import click

from edgefiq.cli import echo_table, json_option, must_exist
from edgefiq.export import export_checkpoint
from edgefiq.registry import BACKENDS


class RegistryChoice(click.Choice):
    """A ``click.Choice`` whose values are read from the backend registry when needed (help, parsing),
    so a backend registered at any time before that appears without an edit here."""

    def __init__(self, names: Callable[[], list[str]]) -> None:
        self._names = names
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        """The current registry names plus the fixed extras."""
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Any) -> None:  # click's __init__ assigns; the registry is the source
        pass


def target_names() -> list[str]:
    """``--target`` values: every registered backend, then ``all``."""
    return [*BACKENDS.names(), "all"]


def calibration_method_names() -> list[str]:
    """``--calibration-method`` values: ``default``, ``auto``, then every backend's methods (registry order)."""
    out = ["default", "auto"]
    for name in BACKENDS.names():
        out += [m for m in BACKENDS.get(name).calibration_methods if m not in out]
    return out


def _calibration_help() -> str:
    per = "; ".join(f"{n}: {', '.join(BACKENDS.get(n).calibration_methods)}" for n in BACKENDS.names()
                    if BACKENDS.get(n).calibration_methods)
    return ("int8 quantiser/ranges. default = the backend's first method; auto = try the backend's auto methods and "
            "keep the one whose scores rank the calibration images most like fp32 (SRCC). Per backend (first = "
            f"default): {per}.")


def _options(default_precision: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The flags both verbs share (``quantize`` only changes the default precision)."""
    opts = [
        click.argument("ckpt", type=click.Path(dir_okay=False), callback=must_exist("checkpoint")),
        click.option("-t", "--target", required=True, type=RegistryChoice(target_names),
                     help="Backend to export to, or all of them."),
        click.option("-p", "--precision", type=click.Choice(["fp32", "fp16", "int8"]), default=default_precision,
                     show_default=True, help="Weights/compute precision."),
        click.option("--calibration", type=click.Path(), default=None,
                     help="Calibration images (int8): a folder of face crops, or an .npz from `edgefiq data calibration`."),
        click.option("--calibration-method", type=RegistryChoice(calibration_method_names),
                     default="default", show_default=True, help=_calibration_help()),
        click.option("--verify", type=click.Path(), default=None,
                     help="Held-out verification images for the parity gate (default: the calibration set)."),
        click.option("--channels-last", is_flag=True, help="NHWC model input ("
                     + ", ".join(n for n in BACKENDS.names() if BACKENDS.get(n).supports_channels_last) + ")."),
        click.option("--accuracy-control", type=float, default=None, metavar="MAX_DROP",
                     help="int8, any target: mixed precision keeping the fewest blocks float so that SRCC "
                          "vs fp32 on the calibration images drops by at most MAX_DROP (e.g. 0.01)."),
        click.option("--no-verify", is_flag=True, help="Skip the parity gate (metadata records it as unverified)."),
        click.option("--name", default=None, help="Artifact file stem (default: the checkpoint's arch)."),
        click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False), help="Output folder."),
        click.option("--force", "overwrite", is_flag=True, help="Replace an artifact of the same name in the output folder."),
        json_option,
    ]

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        for o in reversed(opts):
            f = o(f)
        return f

    return deco


def _run(ckpt: str, target: str, out: str, **kw: Any) -> None:
    res = export_checkpoint(ckpt, target, out, **kw)
    rows = []
    for r in res if isinstance(res, list) else [res]:
        p = r.meta.parity
        rows.append({"artifact": str(r.path), "target": r.meta.backend, "precision": r.meta.precision,
                     "verified": p.get("verified", False),
                     "max_abs_diff": p.get("max_abs_diff"), "srcc_vs_fp32": p.get("srcc_vs_fp32"), "n": p.get("n")})
    echo_table(rows, title="edgefiq export")


@click.command("export")
@_options("fp32")
def export(ckpt: str, target: str, out: str, **kw: Any) -> None:
    """Export checkpoint CKPT to an edge format and check it scores like torch.

    Writes OUT/<arch>_<precision>.<ext> and its .json sidecar (preprocessing, layout,
    int8 I/O scales, pruning, checksum, versions, parity). The parity gate compares the
    artifact with the torch fp32 model: fp32 max abs diff <= 1e-4, fp16 <= 1e-2 (scaled
    for scores beyond [-1, 1]), int8 SRCC >= 0.99. A failure exits 1 and writes nothing.

    \b
    Example:
      edgefiq export runs/distill/best.pt --target onnx -o export/
      edgefiq export best.pt --target all --precision fp16 --verify heldout/ -o export/
      edgefiq data calibration faces/ -o calib.npz --size 112 -n 300
      edgefiq export best.pt -t tflite -p int8 --calibration calib.npz --channels-last -o export/
    """
    _run(ckpt, target, out, **kw)


@click.command("quantize")
@_options("int8")
def quantize(ckpt: str, target: str, out: str, **kw: Any) -> None:
    """Quantise checkpoint CKPT to int8 for a target (same flags as export, int8 by default).

    Needs --calibration (a folder of face crops or an .npz from `edgefiq data
    calibration`). Use --verify with held-out images for an honest gate.

    \b
    Example:
      edgefiq quantize best.pt -t onnx --calibration calib.npz --verify heldout/ -o export/
      edgefiq quantize best.pt -t tflite --calibration calib/ --verify val/ --accuracy-control 0.01 -o export/
      edgefiq quantize best.pt -t all --calibration calib/ --verify val/ --calibration-method auto -o export/
    """
    _run(ckpt, target, out, **kw)
