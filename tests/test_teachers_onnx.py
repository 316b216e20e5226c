"""Teachers on ONNX FR models and on onnxruntime: fixed-batch graphs, graph pruning, SER-FIQ cut, ORT vs torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgefiq.errors import UsageError
from edgefiq.models.mobilefacenet import MobileFaceNet
from edgefiq.teachers import make_teacher
from face_helpers import smooth_noisy_faces  # noqa: E402

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


class _FixedBatch(torch.nn.Module):
    """MobileFaceNet whose export hard-codes batch 1 with ``reshape(1, -1)``, like the shared ONNX file."""

    def __init__(self, m: MobileFaceNet) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.bn(self.m.conv3(self.m.features_pre_head(x))).reshape(1, -1)


@pytest.fixture(scope="module")
def fr_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(``mfn.pt``, ``mfn.onnx`` with batch fixed at 1): the same random-weight MobileFaceNet, BN statistics perturbed."""
    torch.manual_seed(0)
    m = MobileFaceNet().eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):  # non-trivial BN, so folding changes weight magnitudes
                mod.running_var.uniform_(0.2, 3.0)
                mod.weight.uniform_(0.5, 1.5)
    d = tmp_path_factory.mktemp("fr")
    torch.save(m.state_dict(), d / "mfn.pt")
    torch.onnx.export(_FixedBatch(m), (torch.zeros(1, 3, 112, 112),), str(d / "mfn.onnx"), opset_version=17,
                      dynamo=False, input_names=["input0"], output_names=["output0"])
    return d / "mfn.pt", d / "mfn.onnx"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("imgs")
    return root, smooth_noisy_faces(root, 10)


def test_fixed_batch_graph_made_batchable(fr_files: tuple[Path, Path]) -> None:
    from edgefiq.teachers.onnx_graph import OrtRunner, batchable_graph, read_graph

    g = read_graph(fr_files[1])
    fixed = OrtRunner(g)
    assert fixed.fixed_batch == 1
    fixed_g, ok = batchable_graph(g)
    assert ok
    batched = OrtRunner(fixed_g)
    assert batched.fixed_batch is None
    x = np.random.default_rng(1).standard_normal((5, 3, 112, 112)).astype(np.float32)
    np.testing.assert_allclose(batched(x), fixed(x), rtol=1e-4, atol=1e-5)  # fixed runner: one image per call


def test_prune_graph_exact_sparsity_head_and_norm_layers_intact(fr_files: tuple[Path, Path]) -> None:
    from onnx import helper, numpy_helper

    from edgefiq.teachers.onnx_graph import prunable_weights, prune_graph, read_graph

    g = read_graph(fr_files[1])
    names = prunable_weights(g)
    before = {i.name: numpy_helper.to_array(i) for i in g.graph.initializer}
    info = prune_graph(g, rho=0.4, method="l1")
    after = {i.name: numpy_helper.to_array(i) for i in g.graph.initializer}
    zeros = sum(int((after[n] == 0).sum()) for n in names)
    assert zeros == info["pruned_weights"] == round(0.4 * sum(after[n].size for n in names))
    head = [n for n in g.graph.node if n.op_type == "Conv"][-1].input[1]
    assert head not in names and np.array_equal(before[head], after[head])
    kept = np.concatenate([np.abs(before[n]).ravel()[after[n].ravel() != 0] for n in names])
    cut = np.concatenate([np.abs(before[n]).ravel()[after[n].ravel() == 0] for n in names])
    assert cut.max() <= kept.min()  # global L1: the smallest magnitudes go
    # a normalisation layer's parameters are never pruned, even when a MatMul reads them
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    scale = numpy_helper.from_array(np.ones((4, 4), np.float32), "scale")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "bias")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("LayerNormalization", ["a", "scale", "bias"], ["b"]),
             helper.make_node("MatMul", ["b", "scale"], ["c"]), helper.make_node("MatMul", ["c", "w"], ["y"])]
    vi = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 4]) for n in ("x", "y")]
    tiny = helper.make_model(helper.make_graph(nodes, "t", vi[:1], vi[1:], [w, scale, bias]))
    assert prunable_weights(tiny) == ["w"]
    with pytest.raises(UsageError, match="structured PreFIQs pruning needs a PyTorch FR model"):
        prune_graph(read_graph(fr_files[1]), rho=0.4, method="structured")


def test_prefiqs_onnx_equals_pt_pruned_in_folded_graph(fr_files: tuple[Path, Path], images: tuple[Path, list[str]],
                                                      tmp_path: Path) -> None:
    pt, ox = fr_files
    root, rels = images
    q_onnx = make_teacher("prefiqs", {"fr_model": str(ox), "rho": 0.4, "scope": "global"},
                          cache_dir=tmp_path, batch_size=4).score_paths(rels, root=root)
    q_fold = make_teacher("prefiqs", {"fr_model": str(pt), "rho": 0.4, "fold_bn": True, "scope": "global"},
                          cache_dir=tmp_path, batch_size=4).score_paths(rels, root=root)
    assert np.isfinite(q_onnx).all() and (q_onnx <= 0).all()
    np.testing.assert_allclose(q_onnx, q_fold, rtol=1e-3, atol=1e-5)
    cached = sorted(p.name for p in (tmp_path / "onnx").glob("*.onnx"))
    assert any("-graph-l1-0.4-global-s0-" in n for n in cached) and any("-torchfold-l1-0.4" in n for n in cached)
    q_rand = make_teacher("prefiqs", {"fr_model": str(ox), "method": "random", "rho": 0.3, "seed": 1},
                          cache_dir=tmp_path).score_paths(rels, root=root)
    assert np.isfinite(q_rand).all() and not np.allclose(q_rand, q_onnx)
    with pytest.raises(UsageError, match="structured PreFIQs pruning needs a PyTorch FR model"):
        make_teacher("prefiqs", {"fr_model": str(ox), "method": "structured"})
    with pytest.raises(UsageError, match="runtime 'torch'"):
        make_teacher("prefiqs", {"fr_model": str(ox), "runtime": "torch"})


@pytest.mark.parametrize("scope", ["channel", "normalized"])
def test_prefiqs_channel_scopes_onnx_equals_unfolded_pt(fr_files: tuple[Path, Path], images: tuple[Path, list[str]],
                                                        tmp_path: Path, scope: str) -> None:
    """scopes channel and normalized: the BN-folded .onnx and the .pt (torch, unfolded weights) lose the same weights."""
    pt, ox = fr_files
    root, rels = images
    opts = {"rho": 0.4, "scope": scope, "cache": False}
    q_onnx = make_teacher("prefiqs", {"fr_model": str(ox), **opts}, cache_dir=tmp_path, batch_size=4).score_paths(rels, root=root)
    q_pt = make_teacher("prefiqs", {"fr_model": str(pt), **opts, "runtime": "torch"},
                        cache_dir=tmp_path, batch_size=4).score_paths(rels, root=root)
    np.testing.assert_allclose(q_onnx, q_pt, rtol=1e-3, atol=1e-5)
    q_global = make_teacher("prefiqs", {"fr_model": str(ox), "rho": 0.4, "scope": "global", "cache": False},
                            cache_dir=tmp_path, batch_size=4).score_paths(rels, root=root)
    assert not np.allclose(q_global, q_onnx, rtol=1e-3, atol=1e-5)  # the global ranking differs on folded weights


def test_prune_graph_channel_scope_masks_per_output_channel(fr_files: tuple[Path, Path]) -> None:
    from onnx import helper, numpy_helper

    from edgefiq.teachers.onnx_graph import output_axes, prunable_weights, prune_graph, read_graph

    g = read_graph(fr_files[1])
    names = prunable_weights(g)
    info = prune_graph(g, rho=0.4, method="l1", scope="channel")
    after = {i.name: numpy_helper.to_array(i) for i in g.graph.initializer}
    for n in names:  # conv weights: output channels on axis 0, each loses round(0.4 * its weights)
        rows = after[n].reshape(after[n].shape[0], -1)
        assert ((rows == 0).sum(1) == round(0.4 * rows.shape[1])).all(), n
    assert info["scope"] == "channel"
    # Gemm without transB and MatMul's B hold outputs in their last axis
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) + 1, "w")
    b = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) + 1, "b")
    nodes = [helper.make_node("Gemm", ["x", "w"], ["a"]), helper.make_node("MatMul", ["a", "b"], ["c"]),
             helper.make_node("MatMul", ["c", "b2"], ["y"])]
    b2 = numpy_helper.from_array(np.ones((3, 2), np.float32), "b2")
    vi = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3]),
          helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])]
    tiny = helper.make_model(helper.make_graph(nodes, "t", vi[:1], vi[1:], [w, b, b2]))
    assert {k: output_axes(tiny)[k] for k in ("w", "b", "b2")} == {"w": 1, "b": -1, "b2": -1}
    prune_graph(tiny, rho=0.5, method="l1", scope="channel")
    pw = {i.name: numpy_helper.to_array(i) for i in tiny.graph.initializer}
    assert ((pw["w"] == 0).sum(0) == 2).all() and ((pw["b"] == 0).sum(0) == 2).all()  # per column
    assert (pw["w"][0] == 0).all() and (pw["b"][:2] == 0).all()  # the smallest in each column


def test_prefiqs_onnxruntime_matches_torch(fr_files: tuple[Path, Path], images: tuple[Path, list[str]], tmp_path: Path) -> None:
    pt = str(fr_files[0])
    root, rels = images
    for opts in ({"rho": 0.4}, {"rho": 0.2, "method": "random", "flip": True}):
        t_ort = make_teacher("prefiqs", {"fr_model": pt, **opts, "cache": False}, cache_dir=tmp_path, batch_size=4)
        t_torch = make_teacher("prefiqs", {"fr_model": pt, **opts, "cache": False, "runtime": "torch"},
                               cache_dir=tmp_path, batch_size=4)
        assert t_ort.uses_onnxruntime and not t_torch.uses_onnxruntime
        assert t_ort.config()["runtime"] == "onnxruntime"
        np.testing.assert_allclose(t_ort.score_paths(rels, root=root), t_torch.score_paths(rels, root=root),
                                   rtol=1e-3, atol=1e-5)
    exported = sorted(p.name for p in (tmp_path / "onnx").glob("*-torch-*-s0-*.onnx"))
    assert len(exported) == 2  # the two pruned copies, exported once each (the full model: once per process)
    mtimes = [(tmp_path / "onnx" / n).stat().st_mtime_ns for n in exported]
    make_teacher("prefiqs", {"fr_model": pt, "rho": 0.4}, cache_dir=tmp_path).score_paths(rels[:2], root=root)
    assert [(tmp_path / "onnx" / n).stat().st_mtime_ns for n in exported] == mtimes


def test_serfiq_on_onnx_graph(fr_files: tuple[Path, Path], images: tuple[Path, list[str]], tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    pt, ox = fr_files
    root, rels = images
    a = make_teacher("serfiq", {"fr_model": str(ox), "m": 6}, cache_dir=tmp_path, batch_size=4).score_paths(rels, root=root)
    b = make_teacher("serfiq", {"fr_model": str(pt), "m": 6}, cache_dir=tmp_path, batch_size=4).score_paths(rels, root=root)
    np.testing.assert_allclose(a, b, rtol=1e-4)  # same dropout masks on the same feature
    # a graph whose embedding layer reads the image directly has no feature to drop out
    w = numpy_helper.from_array(np.ones((8, 3, 112, 112), np.float32), "w")
    node = helper.make_node("Conv", ["input", "w"], ["emb"])
    g = helper.make_graph([node], "flat", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 112, 112])],
                          [helper.make_tensor_value_info("emb", onnx.TensorProto.FLOAT, [1, 8, 1, 1])], [w])
    flat = tmp_path / "flat.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(flat))
    with pytest.raises(UsageError, match="SER-FIQ on this ONNX FR model"):
        make_teacher("serfiq", {"fr_model": str(flat), "m": 4}, cache_dir=tmp_path).score_paths(rels[:1], root=root)
