"""Pruning engine: structured channel removal, unstructured L1/random sparsity, structure save/reload."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from edgefiq.errors import UsageError
from edgefiq.models.students import TinyCNN
from edgefiq.prune import checkpoint_pruning, prune_model, restore_structure
from edgefiq.prune.common import find_head
from edgefiq.prune.unstructured import prunable_weights

X = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _tiny(seed: int = 0, width: int = 16) -> TinyCNN:
    torch.manual_seed(seed)
    return TinyCNN(width=width).eval()


def test_find_head_is_output_layer() -> None:
    assert find_head(_tiny(), X[:1]) == "head"


@pytest.mark.parametrize("method", ["l1", "random"])
@pytest.mark.parametrize("scope", ["global", "layer", "channel", "normalized"])
def test_unstructured_sparsity_matches_rho(method: str, scope: str) -> None:
    dense = _tiny()
    y0 = dense(X)
    model, info = prune_model(_tiny(), X[:1], rho=0.4, method=method, scope=scope, seed=3)
    weights = prunable_weights(model, X[:1])
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    total = sum(w.numel() for w in weights.values())
    assert abs(zeros / total - 0.4) <= 0.005
    assert info["sparsity"] == pytest.approx(zeros / total)
    assert int((model.head.weight == 0).sum()) == 0  # output layer excluded
    assert not (model(X) - y0).abs().max() < 1e-6  # outputs changed
    # permanent: no masks, hooks or parametrisations left behind
    assert set(model.state_dict()) == set(dense.state_dict())
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    if scope == "layer":
        for w in weights.values():
            assert abs(float((w == 0).float().mean()) - 0.4) < 0.02
    if scope == "channel":  # every output channel loses round(rho * its weights)
        for w in weights.values():
            rows = w.reshape(w.shape[0], -1)
            assert ((rows == 0).sum(1) == round(0.4 * rows.shape[1])).all()


@pytest.mark.parametrize("scope", ["channel", "normalized"])
def test_channel_scopes_ignore_per_channel_rescaling(scope: str) -> None:
    """A BatchNorm folded into the conv rescales output channels: channel and normalized masks are unchanged."""
    plain, _ = prune_model(_tiny(), X[:1], rho=0.4, method="l1", scope=scope)
    scaled = _tiny()
    with torch.no_grad():
        for w in prunable_weights(scaled, X[:1]).values():
            w.mul_(torch.rand(w.shape[0], *([1] * (w.dim() - 1)), generator=torch.Generator().manual_seed(1)) * 5 + 0.1)
    scaled, _ = prune_model(scaled, X[:1], rho=0.4, method="l1", scope=scope)
    masks = [(w == 0) for w in prunable_weights(plain, X[:1]).values()]
    scaled_masks = [(w == 0) for w in prunable_weights(scaled, X[:1]).values()]
    assert len(masks) == len(scaled_masks) and all(torch.equal(a, b) for a, b in zip(masks, scaled_masks))
    # the global ranking is not invariant: the same rescaling changes its mask
    rescaled = _tiny()
    with torch.no_grad():
        for w in prunable_weights(rescaled, X[:1]).values():
            w.mul_(torch.rand(w.shape[0], *([1] * (w.dim() - 1)), generator=torch.Generator().manual_seed(1)) * 5 + 0.1)
    g_plain, _ = prune_model(_tiny(), X[:1], rho=0.4, method="l1", scope="global")
    g_scaled, _ = prune_model(rescaled, X[:1], rho=0.4, method="l1", scope="global")
    assert not all(torch.equal(a == 0, b == 0) for a, b in zip(prunable_weights(g_plain, X[:1]).values(),
                                                                prunable_weights(g_scaled, X[:1]).values()))


def test_l1_removes_smallest_magnitudes() -> None:
    model, _ = prune_model(_tiny(), X[:1], rho=0.5, method="l1", scope="global")
    dense = _tiny()
    kept, pruned = [], []
    for name, w in prunable_weights(model, X[:1]).items():
        orig = dict(dense.named_modules())[name].weight.abs()
        kept.append(orig[w != 0])
        pruned.append(orig[w == 0])
    assert torch.cat(pruned).max() <= torch.cat(kept).min()


def test_random_is_seeded_and_reproducible() -> None:
    a, _ = prune_model(_tiny(), X[:1], rho=0.4, method="random", seed=7)
    b, _ = prune_model(_tiny(), X[:1], rho=0.4, method="random", seed=7)
    c, _ = prune_model(_tiny(), X[:1], rho=0.4, method="random", seed=8)
    wa, wb, wc = (torch.cat([w.flatten() for w in prunable_weights(m, X[:1]).values()]) for m in (a, b, c))
    assert torch.equal(wa == 0, wb == 0)
    assert not torch.equal(wa == 0, wc == 0)


def test_structured_removes_channels_and_keeps_output() -> None:
    model, info = prune_model(_tiny(), X[:1], rho=0.5, method="structured", scope="layer", importance="l2")
    assert model.head.out_features == 1
    assert model.features[0].out_channels == 8
    assert model(X).shape == (4,)
    assert info["params_after"] < info["params_before"] and info["macs_reduction"] > 0.4
    assert info["structure"]["modules"]  # the change is recorded


def test_structured_round_to_and_ignored_layers() -> None:
    model, info = prune_model(_tiny(width=16), X[:1], rho=0.3, method="structured", scope="layer",
                              round_to=4, ignored_layers=["features.0"])
    assert model.features[0].out_channels == 16  # ignored
    for conv in (model.features[3], model.features[6]):
        assert conv.out_channels % 4 == 0 and conv.out_channels < 64


def test_structured_iterative_steps_reach_rho() -> None:
    one, _ = prune_model(_tiny(), X[:1], rho=0.5, method="structured", scope="layer")
    many, info = prune_model(_tiny(), X[:1], rho=0.5, method="structured", scope="layer", iterative_steps=3)
    assert info["iterative_steps"] == 3
    assert [m.out_channels for m in many.features if isinstance(m, torch.nn.Conv2d)] == \
        [m.out_channels for m in one.features if isinstance(m, torch.nn.Conv2d)]


def test_restore_structure_roundtrip_in_process() -> None:
    model, info = prune_model(_tiny(), X[:1], rho=0.5, method="structured")
    fresh = restore_structure(_tiny(seed=5), info["structure"])
    fresh.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(fresh.eval()(X), model(X))


@pytest.mark.parametrize("kwargs,match", [({"method": "magic"}, "unknown pruning method"),
                                          ({"method": "l1", "rho": 1.0}, "rho must be"),
                                          ({"method": "l1", "scope": "net"}, "scope"),
                                          ({"method": "structured", "scope": "channel"}, "removes whole channels"),
                                          ({"method": "structured", "ignored_layers": ["featurs.0"]}, "did you mean")])
def test_bad_arguments_are_usage_errors(kwargs: dict, match: str) -> None:
    kwargs = {"rho": 0.3, **kwargs}
    with pytest.raises(UsageError, match=match):
        prune_model(_tiny(), X[:1], **kwargs)


@pytest.mark.parametrize("method", ["structured", "l1"])
def test_pruned_checkpoint_reloads_in_fresh_process(tmp_path, method: str) -> None:
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.models.checkpoint import read_checkpoint, save_checkpoint

    model, info = prune_model(TinyCNN(width=16).eval(), X[:1], rho=0.5, method=method)
    ck = save_checkpoint(tmp_path / "p.pt", model, arch="tiny_cnn", arch_kwargs={"width": 16},
                         preprocess=Preprocess(size=(32, 32)), pruning=checkpoint_pruning(info))
    assert read_checkpoint(ck)["pruning"]["method"] == method  # weights_only=True load
    torch.save(X, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model(X), tmp_path / "y.pt")
    code = textwrap.dedent(f"""
        import torch
        from edgefiq.models.checkpoint import load_checkpoint
        ck = load_checkpoint({str(ck)!r})
        x = torch.load({str(tmp_path / 'x.pt')!r})
        with torch.no_grad():
            y = ck.model(x)
        assert torch.equal(y, torch.load({str(tmp_path / 'y.pt')!r})), "outputs differ"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_pruning_a_pruned_checkpoint_composes_structures(tmp_path) -> None:
    from edgefiq.data.preprocess import Preprocess
    from edgefiq.models.checkpoint import load_checkpoint, save_checkpoint
    from edgefiq.pipeline.pruning import prune_checkpoint

    ck = save_checkpoint(tmp_path / "d.pt", _tiny(), arch="tiny_cnn", arch_kwargs={"width": 16},
                         preprocess=Preprocess(size=(32, 32)))
    once = prune_checkpoint(ck, tmp_path / "1.pt", rho=0.25, method="structured", scope="layer")
    twice = prune_checkpoint(once, tmp_path / "2.pt", rho=0.5, method="structured", scope="layer")
    thrice = prune_checkpoint(twice, tmp_path / "3.pt", rho=0.3, method="l1")
    a, b, c = (load_checkpoint(p) for p in (once, twice, thrice))
    assert a.model.features[0].out_channels == 12 and b.model.features[0].out_channels == 6
    assert c.model.features[0].out_channels == 6 and c.pruning["previous"]["method"] == "structured"
    assert abs(c.pruning["sparsity"] - 0.3) <= 0.005


def test_fold_output_affine_is_exact_for_linear_head_only() -> None:
    from edgefiq.pipeline.recovery import fold_output_affine

    model = _tiny()
    with torch.no_grad():
        y = model(X)
    assert fold_output_affine(model, 2.0, 0.5, X) == {"mean": 2.0, "std": 0.5}
    with torch.no_grad():
        assert torch.allclose(model(X), 0.5 * y + 2.0, atol=1e-5)
    sig = TinyCNN(width=16, head="sigmoid").eval()
    before = {k: v.clone() for k, v in sig.state_dict().items()}
    assert fold_output_affine(sig, 2.0, 0.5, X) is None  # not affine: left unchanged
    assert all(torch.equal(before[k], v) for k, v in sig.state_dict().items())


def test_torch_free_graph_pruning_offers_the_same_scopes() -> None:
    from edgefiq.prune.api import SCOPES
    from edgefiq.teachers.onnx_graph import SCOPES as GRAPH_SCOPES

    assert GRAPH_SCOPES == SCOPES
