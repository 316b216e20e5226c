"""Mixed precision under accuracy control (``edgefiq.export.mixed``): units, ranking, search."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgefiq.export.base import Exported
from edgefiq.export.mixed import (head_module, in_units, label, precision_units, rank_units, scope_module,
                                  search_float_units)


def test_scope_module_reads_both_converters_naming() -> None:
    assert scope_module("/net/blocks/blocks.0/blocks.0.0/conv_dw/Conv") == "net.blocks.0.0.conv_dw"
    assert scope_module("/net/conv_stem/Conv") == "net.conv_stem"
    assert scope_module("__module.net.bn1.act/aten::hardswish_/HSwish") == "net.bn1.act"
    assert scope_module("Multiply_10766") == "" and scope_module("_inlfunc_HardSwish_HS_X") == ""
    assert in_units("net.blocks.1.0.conv_pw", ["net.blocks.1.0"]) and not in_units("net.blocks.1.10", ["net.blocks.1.1"])
    assert not in_units("", ["net"])


def test_precision_units_are_blocks_of_a_timm_student() -> None:
    from edgefiq.registry import STUDENTS

    model = STUDENTS.get("mobilenetv3_small_100")()
    head = head_module(model)
    units = precision_units(model, skip=[head])
    assert head == "net.classifier" and head not in units
    assert units[:3] == [("net.conv_stem",), ("net.bn1",), ("net.blocks.0.0",)]
    assert ("net.blocks.4.2",) in units and ("net.conv_head",) in units
    # every conv lies in exactly one unit
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(sum(in_units(c, u) for u in units) == 1 for c in convs)


def test_every_unit_of_the_face_trunk_names_onnx_nodes(tmp_path) -> None:
    """face_trunk calls its blocks through ``trunk``, a container that is never called, so the ONNX exporter
    names them without it (``/conv1/...``): mixed precision must still find each unit's nodes, or accuracy
    control keeps nothing float (all 23 units 'float' and the int8 SRCC unchanged, as on the capture run)."""
    import onnx

    from edgefiq.export.onnx import _nodes_in_modules, export_onnx_fp32
    from edgefiq.registry import STUDENTS

    model = STUDENTS.get("face_trunk")(depth=2).eval()
    path = export_onnx_fp32(model, torch.zeros(1, 3, 64, 64), tmp_path / "m.onnx", opset=17, slim=False)
    graph = onnx.load(str(path)).graph
    units = precision_units(model, skip=[head_module(model)])
    assert units[0][0].startswith("trunk.conv1")
    mods = dict(model.named_modules())
    kept = [u for u in units if not all(isinstance(mods[m], torch.nn.BatchNorm2d) for m in u)]   # BN folds into convs
    assert len(kept) >= 6 and all(_nodes_in_modules(graph, list(u)) for u in kept)
    stem = set(_nodes_in_modules(graph, list(units[0])))
    assert stem and not stem & set(_nodes_in_modules(graph, list(units[-1])))


def test_precision_units_group_a_flat_layer_sequence() -> None:
    from edgefiq.registry import STUDENTS

    model = STUDENTS.get("tiny_cnn")()   # features = conv, bn, relu, conv, bn, relu, ...
    units = precision_units(model, skip=["head"])
    assert units[0] == ("features.0", "features.1", "features.2")
    assert label(units[0]) == "features.0+features.1+features.2" and units[-1] == ("pool",)


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.act = torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class _Net(torch.nn.Module):
    """Three blocks; block ``b`` carries the score in a channel 1000x smaller than a loud one."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.blocks = torch.nn.Sequential(*[_Block() for _ in range(3)])
        with torch.no_grad():
            for blk in self.blocks:
                blk.conv.weight.copy_(torch.eye(4).reshape(4, 4, 1, 1).repeat(1, 1, 3, 3) / 9)
                blk.conv.bias.zero_()
            self.blocks[1].conv.weight[0] *= 2000.0   # a loud channel sets block 1's int8 range ...
            self.blocks[2].conv.weight[0] /= 2000.0   # ... and only block 1's
        self.head = torch.nn.Linear(4, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x).mean((2, 3)))


class _StandInBackend:
    """A backend stand-in for ``export_mixed``: each export records its options (``calls``); the loaded artifact
    scores like ``model`` passed through ``scores(fp32 scores, advanced options of the last export)``."""

    suffix = ".bin"

    def __init__(self, model: torch.nn.Module, scores, report=None) -> None:
        self.model, self.scores, self.report = model, scores, report
        self.calls: list = []

    def export(self, m, example, out, options):
        out.write_text("x")
        self.calls.append(options.advanced)
        return Exported(out, self.report(options.advanced) if self.report else {})

    def load(self, path, threads=None):
        def run(x):
            with torch.no_grad():
                y = self.model(torch.from_numpy(x)).reshape(-1).numpy()
            return self.scores(y, self.calls[-1])
        return run

    def files(self, path):
        return [path]


def test_rank_units_puts_the_harmful_block_first() -> None:
    model = _Net().eval()
    g = np.random.default_rng(0)
    x = np.abs(g.standard_normal((48, 4, 8, 8))).astype(np.float32)
    x[:, 1] *= 0.01
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).reshape(-1).numpy()
    units = precision_units(model, skip=["head"])
    assert units == [("blocks.0",), ("blocks.1",), ("blocks.2",)]
    ranking = rank_units(model, units, x, ref, "head")
    assert ranking[0][0] == ("blocks.1",)
    assert ranking[0][1] > ranking[-1][1]


def test_search_bisects_to_the_fewest_float_units() -> None:
    ranked = [f"u{i}" for i in range(17)]
    calls: list[int] = []

    def trial(float_units: list[str]) -> float:
        calls.append(len(float_units))
        return 0.9 + 0.01 * len(float_units)    # monotone: 5 units reach 0.95

    chosen, history = search_float_units(trial, ranked, 0.95 - 1e-9)
    assert chosen == ranked[:5]
    assert len(history) == len(calls) <= math.ceil(math.log2(17)) + 2
    assert history[0] == {"float_units": 0, "srcc": 0.9}
    assert 17 not in calls   # all float is not converted when a smaller count passes

    calls.clear()
    chosen, history = search_float_units(trial, ranked, 0.95 - 1e-9, start=7)   # hint passes: kept
    assert chosen == ranked[:7] and calls == [7]

    chosen, history = search_float_units(lambda f: 0.5, ranked, 0.99)       # never passes: all float, tried
    assert chosen == ranked and history[-1]["float_units"] == 17
    chosen, history = search_float_units(lambda f: 1.0, ranked, 0.99)        # int8 already fine
    assert chosen == [] and len(history) == 1


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
def test_accuracy_control_range_is_checked(bad: float, tmp_path) -> None:
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.errors import UsageError
    from edgefiq.export.api import export_model

    with pytest.raises(UsageError, match="accuracy-control"):
        export_model(_Net(), Preprocess(size=(8, 8)), "onnx", tmp_path, precision="int8",
                     calibration=np.zeros((16, 4, 8, 8), np.float32), accuracy_control=bad)


def test_report_rows_show_mixed_precision() -> None:
    """The run report names a mixed int8 artifact's int8 share and explains it once."""
    from edgefiq.pipeline.records import revive
    from edgefiq.pipeline.report import build_rows, render_markdown

    art = {"name": "s", "student": "s", "checkpoint": "distill/s/best.pt", "target": "onnx", "precision": "int8", "status": "ok", "path": "export/s.onnx",
           "parity": {"passed": True, "srcc_vs_fp32": 0.995},
           "mixed_precision": {"units": 17, "int8_units": 2, "float_units": ["net.conv_stem"] * 15}}
    plain = {**art, "precision": "fp32", "mixed_precision": None, "path": "export/s32.onnx"}
    outputs = {"export": {"artifacts": [art, plain]},
               "eval": {"rows": [{"source": "s/onnx-int8", "srcc": 0.8}, {"source": "s/onnx-fp32", "srcc": 0.81}]},
               "bench": {"rows": [{"path": "export/s.onnx", "key": "s/onnx-int8", "p50_ms": 0.4},
                                  {"path": "export/s32.onnx", "key": "s/onnx-fp32", "p50_ms": 0.3}]}}
    rows = build_rows({stage: revive(stage, out) for stage, out in outputs.items()})
    assert rows[0]["precision"] == "int8" and rows[0]["precision_detail"] == "int8 mixed (2/17 blocks int8)"
    assert rows[1]["precision_detail"] == "fp32" and rows[0]["status"] == "ok"
    md = render_markdown({"recipe": "r", "rows": rows, "all_ok": True, "teacher": {"name": "t"}, "data": {},
                          "eval": {}, "synthetic": False}, [], [])
    assert "| int8 mixed (2/17 blocks int8) |" in md and md.count("int8 mixed (k/N blocks int8)") == 1


def test_a_mixed_artifact_that_scores_exactly_like_fp32_is_refused(tmp_path) -> None:
    """Blocks a backend leaves unquantised anyway (an activation feeding the float head) must not pass as int8:
    if the chosen trial's scores equal fp32 to fp32 tolerance, accuracy control refuses instead of labelling it."""
    from edgefiq.errors import ExportError
    from edgefiq.export.base import ExportOptions
    from edgefiq.export.mixed import export_mixed

    model = _Net().eval()
    # with any block float it reproduces fp32 exactly, all-int8 scrambles it
    backend = _StandInBackend(model, lambda y, adv: y if adv.float_modules else -y)
    x = np.abs(np.random.default_rng(0).standard_normal((32, 4, 8, 8))).astype(np.float32)
    opts = ExportOptions(precision="int8", calibration=x)
    with pytest.raises(ExportError, match="do not change the scores"):
        export_mixed(backend, model, torch.from_numpy(x[:1]), tmp_path / "m.bin", opts, max_drop=0.01)
    assert not (tmp_path / ".mixed-trials").exists() and not (tmp_path / "m.bin").exists()


def test_auto_calibration_under_accuracy_control_compares_methods_at_the_hint(tmp_path) -> None:
    """With a hint (a block count that passed on another target), each method is tried there first: the
    first that passes ends the search in that one trial; a method that fails there is recorded."""
    from edgefiq.export.base import ExportOptions
    from edgefiq.export.mixed import export_mixed

    model = _Net().eval()
    # method "bad" scrambles the ranking, "good" keeps it with one block float (offset: not exact)
    backend = _StandInBackend(
        model, lambda y, adv: y + 0.01 if adv.calibration_method == "good" and len(adv.float_modules) >= 1 else -y,
        report=lambda adv: {"quantizer": adv.calibration_method})
    x = np.abs(np.random.default_rng(0).standard_normal((32, 4, 8, 8))).astype(np.float32)
    opts = ExportOptions(precision="int8", calibration=x)
    mixed, report, method, trials = export_mixed(backend, model, torch.from_numpy(x[:1]), tmp_path / "m.bin",
                                                 opts, max_drop=0.01, start=1, methods=("bad", "good", "unused"))
    assert method == "good" and report == {"quantizer": "good"} and (tmp_path / "m.bin").exists()
    assert [t["method"] for t in trials] == ["bad", "good"] and trials[0]["srcc_vs_fp32"] < 0
    calls = [(adv.calibration_method, len(adv.float_modules)) for adv in backend.calls]
    assert len(calls) == 2 and mixed["trials"] == [{"float_units": 1, "srcc": 1.0}]
    assert len(mixed["float_modules"]) >= 1 and not (tmp_path / ".mixed-trials").exists()


@pytest.mark.parametrize("needs_float", [False, True])
def test_units_are_ranked_only_when_the_search_needs_an_order(needs_float: bool, tmp_path) -> None:
    """Ranking costs a torch simulation per unit: if plain int8 passes at the start it is skipped (the sidecar's
    ``ranking`` is None); when some blocks must stay float the order is computed, once, and recorded."""
    from edgefiq.export.base import ExportOptions
    from edgefiq.export import mixed as mx

    model = _Net().eval()
    ranked: list[int] = []
    real_rank = mx.rank_units
    # all-int8 scrambles the ranking when ``needs_float``; any float block keeps it (offset: not exact)
    backend = _StandInBackend(model, lambda y, adv: -y if needs_float and not adv.float_modules else y + 0.01)

    def counting_rank(*a, **kw):
        ranked.append(1)
        return real_rank(*a, **kw)

    x = np.abs(np.random.default_rng(0).standard_normal((32, 4, 8, 8))).astype(np.float32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mx, "rank_units", counting_rank)
        mixed = mx.export_mixed(backend, model, torch.from_numpy(x[:1]), tmp_path / "m.bin",
                                ExportOptions(precision="int8", calibration=x), max_drop=0.01)[0]
    if needs_float:
        assert len(ranked) == 1 and len(mixed["ranking"]) == mixed["units"] and mixed["float_units"]
    else:
        assert ranked == [] and mixed["ranking"] is None and mixed["float_units"] == []
