"""edgefiq eval: several quality sources on the same comparisons; report.json/.md/edc.png."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgefiq.cli import cli
from edgefiq.errors import DataError, UsageError
from edgefiq.eval import evaluate

N_IDS, PER_ID = 12, 4


@pytest.fixture
def eval_set(tmp_path):
    """Identity tree (LFW naming) + embeddings whose noise level the 'informed' quality knows."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    rels, emb, noise = [], [], []
    centres = rng.normal(size=(N_IDS, 16))
    for i in range(N_IDS):
        for k in range(1, PER_ID + 1):
            rel = f"P{i:02d}/P{i:02d}_{k:04d}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(root / rel)
            s = rng.choice([0.2, 3.0], p=[0.7, 0.3])  # 30% "bad" images: embeddings drowned in noise
            rels.append(rel)
            emb.append(centres[i] + s * rng.normal(size=16))
            noise.append(s)
    np.save(tmp_path / "emb.npy", np.asarray(emb, np.float32))
    (tmp_path / "emb.csv").write_text("path\n" + "\n".join(rels) + "\n")
    noise = np.asarray(noise)
    informed = -noise + 0.01 * rng.normal(size=noise.size)
    (tmp_path / "informed.csv").write_text("path,quality\n" + "".join(f"{r},{q}\n" for r, q in zip(rels, informed)))
    # an unrelated second source, shuffled order + one image missing (left out of the evaluation)
    other = rng.normal(size=noise.size)
    lines = [f"{r},{q}\n" for r, q in zip(rels, other)][1:]
    (tmp_path / "other.csv").write_text("path,quality\n" + "".join(reversed(lines)))
    pairs = ["2\t3"]
    for f in range(2):
        for k in range(3):
            i = 3 * f + k
            pairs.append(f"P{i:02d}\t1\t2")
        for k in range(3):
            pairs.append(f"P{k:02d}\t1\tP{k + 6:02d}\t3")
    (tmp_path / "pairs.txt").write_text("\n".join(pairs) + "\n")
    return tmp_path


def test_informed_quality_beats_random(eval_set, tmp_path):
    rep = evaluate(eval_set / "images", qualities=[("informed", eval_set / "informed.csv")],
                   identities_from_folders=True, embeddings=eval_set / "emb.npy",
                   embeddings_index=eval_set / "emb.csv", random_baseline=True, fmrs=(0.05, 0.01),
                   out_dir=tmp_path / "rep")
    assert rep["n_images"] == N_IDS * PER_ID
    assert rep["n_genuine"] == N_IDS * PER_ID * (PER_ID - 1) // 2
    assert rep["n_genuine"] + rep["n_impostor"] == 48 * 47 // 2
    by = {(r["source"], r["fmr"], r["convention"]): r for r in rep["pauc"]}
    for fmr in (0.05, 0.01):
        for conv in ("fixed", "reestimate"):
            assert by[("informed", fmr, conv)]["pauc_x1e3"] < by[("random", fmr, conv)]["pauc_x1e3"]
    assert by[("informed", 0.05, "fixed")]["pauc_norm"] < 0.5 < by[("random", 0.05, "fixed")]["pauc_norm"] + 0.3
    for name in ("report.json", "report.md", "edc.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## FMR 0.05, fixed threshold" in md and "## FMR 0.01, reestimate threshold" in md
    assert "| informed **(best)** |" in md
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["reference"] == "informed"


def test_correlations_reference_and_left_out_images(eval_set):
    rep = evaluate(eval_set / "images", qualities=[("informed", eval_set / "informed.csv"),
                                                   ("other", eval_set / "other.csv")],
                   identities_from_folders=True, embeddings=eval_set / "emb.npy",
                   embeddings_index=eval_set / "emb.csv", reference="other", random_baseline=True, fmrs=(0.05,))
    assert rep["n_images"] == N_IDS * PER_ID - 1 and rep["n_images_left_out"] == 1
    pairs = {(c["a"], c["b"]): c for c in rep["correlations"]}
    assert set(pairs) == {("informed", "other"), ("informed", "random"), ("other", "random")}
    assert pairs[("informed", "other")]["vs_reference"] and not pairs[("informed", "random")]["vs_reference"]
    assert -1 <= pairs[("informed", "other")]["srcc"] <= 1


def test_pairs_protocol(eval_set):
    rep = evaluate(eval_set / "images", qualities=[("informed", eval_set / "informed.csv")],
                   pairs=eval_set / "pairs.txt", embeddings=eval_set / "emb.npy",
                   embeddings_index=eval_set / "emb.csv", fmrs=(0.2, 0.01))
    assert rep["n_genuine"] == 6 and rep["n_impostor"] == 6
    resolvable = {r["fmr"]: r["fmr_resolvable"] for r in rep["pauc"]}
    assert resolvable == {0.2: True, 0.01: False}  # 6 impostors resolve FMR 0.2, not 0.01
    from edgefiq.eval import format_markdown

    assert "not resolvable" in format_markdown(rep)



def test_input_errors(eval_set, tmp_path):
    kw = dict(embeddings=eval_set / "emb.npy", embeddings_index=eval_set / "emb.csv")
    with pytest.raises(UsageError, match="exactly one of --identities"):
        evaluate(eval_set / "images", qualities=[("a", eval_set / "informed.csv")], **kw)
    with pytest.raises(UsageError, match="--reference"):
        evaluate(eval_set / "images", qualities=[("a", eval_set / "informed.csv")], identities_from_folders=True,
                 reference="nope", **kw)
    bad = tmp_path / "nan.csv"
    bad.write_text("path,quality\nP00/P00_0001.jpg,nan\n")
    with pytest.raises(DataError, match="nan.csv row 2"):
        evaluate(eval_set / "images", qualities=[("a", bad)], identities_from_folders=True, **kw)
    # without an index the rows follow the sorted image list: same result as with it
    r1 = evaluate(eval_set / "images", qualities=[("a", eval_set / "informed.csv")], identities_from_folders=True,
                  embeddings=eval_set / "emb.npy", fmrs=(0.1,))
    r2 = evaluate(eval_set / "images", qualities=[("a", eval_set / "informed.csv")], identities_from_folders=True,
                  fmrs=(0.1,), **kw)
    assert r1["pauc"] == r2["pauc"]
    np.save(tmp_path / "short.npy", np.load(eval_set / "emb.npy")[:-1])
    with pytest.raises(DataError, match="rows but the index"):
        evaluate(eval_set / "images", qualities=[("a", eval_set / "informed.csv")], identities_from_folders=True,
                 embeddings=tmp_path / "short.npy")


def test_cli_eval(eval_set, tmp_path):
    out = tmp_path / "cli_rep"
    res = CliRunner().invoke(cli, ["eval", "--images", str(eval_set / "images"), "--identities-from-folders",
                                   "--embeddings", str(eval_set / "emb.npy"), "--embeddings-index",
                                   str(eval_set / "emb.csv"), "--quality", str(eval_set / "informed.csv"),
                                   "--quality", str(eval_set / "other.csv"), "--name", "inf", "--name", "oth",
                                   "--random-baseline", "--fmr", "0.05,0.1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "pAUC" in res.output and (out / "edc.png").is_file()
    rep = json.loads((out / "report.json").read_text())
    assert {s["name"] for s in rep["sources"]} == {"inf", "oth", "random"} and rep["fmrs"] == [0.05, 0.1]
    # usage errors exit 2 with one line, data errors exit 1
    r = subprocess.run([sys.executable, "-m", "edgefiq", "eval", "--images", str(eval_set / "images"),
                        "--identities-from-folders", "--pairs", str(eval_set / "pairs.txt"), "--embeddings",
                        str(eval_set / "emb.npy"), "--quality", str(eval_set / "informed.csv"), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "exactly one of" in r.stderr and "Traceback" not in r.stderr
    r = CliRunner().invoke(cli, ["eval", "--images", str(eval_set / "images"), "--identities-from-folders",
                                 "--embeddings", str(eval_set / "emb.npy"), "--quality", str(tmp_path / "missing.csv"),
                                 "-o", str(out)])
    assert r.exit_code == 1 or "not found" in str(r.exception)
    r = CliRunner().invoke(cli, ["eval", "--images", ".", "--fmr", "2", "-o", str(out)])
    assert r.exit_code == 2


def test_same_source_pairs_left_out(eval_set):
    # declare images 1 and 2 of every identity copies of one photo: one genuine pair per identity goes
    rels = (eval_set / "emb.csv").read_text().split()[1:]
    src = {r: r.replace("_0002.jpg", "_0001.jpg") for r in rels}
    (eval_set / "src.csv").write_text("path,source\n" + "".join(f"{r},{s}\n" for r, s in src.items()))
    kw = dict(qualities=[("informed", eval_set / "informed.csv")], identities_from_folders=True,
              embeddings=eval_set / "emb.npy", embeddings_index=eval_set / "emb.csv", fmrs=(0.05,))
    full = evaluate(eval_set / "images", **kw)
    cut = evaluate(eval_set / "images", same_source_index=eval_set / "src.csv", **kw)
    assert cut["n_genuine"] == full["n_genuine"] - N_IDS and cut["n_impostor"] == full["n_impostor"]
    assert f"{N_IDS} same-source pairs left out" in cut["protocol"]


@pytest.mark.shared_data
def test_eval_with_real_fr_model(lfw_aligned, mobilefacenet_pt, tmp_path):
    """MobileFaceNet embeddings through ``--fr-model``: genuine pairs are clearly more similar."""
    ids = sorted(d for d in lfw_aligned.iterdir() if d.is_dir() and len(list(d.glob("*.jpg"))) >= 4)[:6]
    root = tmp_path / "imgs"
    rels = []
    for d in ids:
        (root / d.name).mkdir(parents=True)
        for f in sorted(d.glob("*.jpg"))[:4]:
            (root / d.name / f.name).symlink_to(f)
            rels.append(f"{d.name}/{f.name}")
    (tmp_path / "q.csv").write_text("path,quality\n" + "".join(f"{r},{k}\n" for k, r in enumerate(rels)))
    rep = evaluate(root, qualities=[("idx", tmp_path / "q.csv")], identities_from_folders=True,
                   fr_model=mobilefacenet_pt, random_baseline=True, fmrs=(0.05,), out_dir=tmp_path / "rep",
                   save_embeddings=tmp_path / "emb")
    assert rep["n_genuine"] == 6 * 6 and "mobilefacenet" in rep["fr_model"].lower()
    emb = np.load(tmp_path / "emb" / "embeddings.npy")
    assert emb.shape == (24, 128)
    lab = np.repeat(np.arange(6), 4)
    sims = emb @ emb.T
    same = (lab[:, None] == lab[None, :]) & ~np.eye(24, dtype=bool)
    assert sims[same].mean() > sims[lab[:, None] != lab[None, :]].mean() + 0.3
    # the saved embeddings reproduce the report through --embeddings
    rep2 = evaluate(root, qualities=[("idx", tmp_path / "q.csv")], identities_from_folders=True,
                    embeddings=tmp_path / "emb" / "embeddings.npy",
                    embeddings_index=tmp_path / "emb" / "embeddings_index.csv", random_baseline=True, fmrs=(0.05,))
    assert json.dumps(rep2["pauc"]) == json.dumps(rep["pauc"])
    assert rep2["fr_model"].startswith("precomputed (embeddings.npy) from ") and "mobilefacenet" in rep2["fr_model"]


def test_eval_by_degradation_family(tmp_path):
    """--by degradation: a pAUC row for the clean images and one per family (its copies plus the clean
    images) from the index.csv of data degrade; a quality that knows the severity beats random on every family."""
    import csv

    from PIL import Image

    from edgefiq.data.degrade import make_degraded_set

    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    for i in range(6):
        for k in range(3):
            (src / f"id{i}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src / f"id{i}" / f"{k}.png")
    deg = tmp_path / "deg"
    index = make_degraded_set(src, deg, kinds=["pose", "noise"], severities=(0.5, 1.0), per_image=0)
    rows = list(csv.DictReader(open(index)))
    centre = {f"id{i}": rng.standard_normal(16) for i in range(6)}
    sev = np.array([float(r["severity"]) for r in rows])
    emb = np.stack([centre[r["path"].split("/")[0]] + (0.3 + 3 * s) * rng.standard_normal(16)
                    for r, s in zip(rows, sev)]).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    (tmp_path / "emb.csv").write_text("path\n" + "".join(r["path"] + "\n" for r in rows))
    (tmp_path / "q.csv").write_text("path,quality\n" + "".join(f"{r['path']},{1 - s:.3f}\n" for r, s in zip(rows, sev)))
    res = CliRunner().invoke(cli, ["eval", "--images", str(deg), "--identities-from-folders",
                                   "--embeddings", str(tmp_path / "emb.npy"), "--embeddings-index",
                                   str(tmp_path / "emb.csv"), "--quality", str(tmp_path / "q.csv"), "--name", "q",
                                   "--random-baseline", "--by", "degradation", "--bootstrap", "200",
                                   "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    fams = json.loads((tmp_path / "rep" / "report.json").read_text())["by_degradation"]
    # --bootstrap: random's pAUC over q's (the reference), a 90% identity-resampled interval per family
    for f in fams[1:]:
        lo, hi = f["ratio_ci"]["random"]["0.001"]
        assert 1 < lo <= f["pauc"]["random"]["0.001"] / f["pauc"]["q"]["0.001"] <= hi, f
    assert [f["family"] for f in fams] == ["clean", "noise", "pose"]
    assert fams[0]["n_images"] == 18 and fams[1]["n_images"] == 18 + 18 * 2 and fams[2]["n_images"] == 18 + 18 * 4
    for f in fams[1:]:
        assert f["pauc"]["q"]["0.001"] < f["pauc"]["random"]["0.001"], f
    # SRCC with the first source (q); on the clean images q is constant here, so that one is undefined
    assert all(f["srcc"]["q"] == 1.0 for f in fams) and all(-1 <= f["srcc"]["random"] <= 1 for f in fams[1:])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## pAUC x1e3 by degradation family" in md and "| pose | 90 |" in md
    assert "## pAUC relative to q by family, with a 90% interval" in md
    assert "by degradation family" in res.output
    missing = CliRunner().invoke(cli, ["eval", "--images", str(src), "--identities-from-folders", "--embeddings",
                                       str(tmp_path / "emb.npy"), "--embeddings-index", str(tmp_path / "emb.csv"),
                                       "--quality", str(tmp_path / "q.csv"), "--by", "degradation", "-o",
                                       str(tmp_path / "rep2")])
    assert missing.exit_code != 0 and "index.csv that edgefiq data degrade writes" in str(missing.exception)
    alone = CliRunner().invoke(cli, ["eval", "--images", str(deg), "--identities-from-folders", "--embeddings",
                                     str(tmp_path / "emb.npy"), "--quality", str(tmp_path / "q.csv"),
                                     "--bootstrap", "10", "-o", str(tmp_path / "rep3")])
    assert alone.exit_code != 0 and "--bootstrap needs --by degradation" in str(alone.exception)
