"""Distillation benchmark: PreFIQs(MobileFaceNet, l1, rho 0.4) teacher -> students, on LFW dev identities.

Stages (each resumable; outputs under ``--work``, default ``runs/bench_distill``, gitignored):

1. ``prepare``: degraded copies of every LFW dev image (``edgefiq.data.degrade.make_degraded_set``:
   the 8 kinds, one kind per image at severities 0.3/0.6/1.0); the benchmark set is every clean
   image plus ONE of its degraded copies (severity drawn per image, seeded), exposed as a symlink
   tree ``data/subset``. Validation identities = those in ``pairs.txt`` folds 6-7; training = all
   other dev identities. ``--train-copies all`` keeps all three degraded copies of every
   training image (validation images unchanged), i.e. 2x the training views of ``one``.
2. ``label``: PreFIQs labels of every subset image by the package teacher (``TEACHERS["prefiqs"]``:
   MobileFaceNet, l1, rho 0.4, global), in chunks of 512 so an interrupted run resumes; the
   full-model embeddings are kept for the EDC. ``--shard k/n`` splits the work over processes.
3. ``train``: ``edgefiq.distill.distill`` for each ``--students`` name (resumable).
   ``--train-labels mirror-avg`` trains on the mean of the teacher's score of each training image
   and of its mirror image (one extra teacher pass over the training images, cached in
   ``label_chunks_mirror/train/``); validation labels stay the teacher's plain scores. Rows of such a
   run are tagged ``(mirror-avg labels)``; use a separate ``--run-dir``. ``--feature-kd W`` adds
   feature-level distillation (``edgefiq.distill.feature_kd``): the student's pooled features also
   regress the FR model's normalised embedding of each training image (stored by the label stage,
   ``feature_targets.npz``) with weight ``W``; rows tagged ``(+ FR-embedding feature KD)``.
   ``--train-jitter K`` adds K re-posed, re-lit copies of every training image (``jitter_views``),
   each labelled by the teacher (cached in ``label_chunks_jit<K>/``); rows tagged
   ``(+ teacher-labelled jitter views)``. ``--train-fraction F`` trains on whole identities holding
   a fraction F of the training images (a learning curve over identities). ``--ema D`` validates and
   keeps EMA weights.
4. ``eval``: SRCC/PLCC/KRCC of each student's best checkpoint vs the teacher on the validation
   images; pAUC x1e3 (EDC FNMR at FMR 1e-3, discard 0.3, fixed threshold) of student, teacher and
   random scores on the same comparisons (all genuine and all impostor pairs among validation
   images, excluding pairs of two copies of the same photo); params, MACs, wall time per epoch.
   Writes ``results/distill.json`` and ``results/distill.md``.

Run:
    nice -n 10 python tools/bench_distill.py --stage all --threads 1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("EDGEFIQ_SHARED", ROOT.parent / "shared" / "data"))
SEVERITIES = (0.3, 0.6, 1.0)
MIRROR_TAG = " (mirror-avg labels)"   # row-name suffix of --train-labels mirror-avg runs
FEATURE_TAG = " (+ FR-embedding feature KD)"   # row-name suffix of --feature-kd runs
JITTER_TAG = " (+ teacher-labelled jitter views)"   # row-name suffix of --train-jitter runs


# ----------------------------------------------------------------------------- prepare
def prepare(work: Path, train_copies: str = "one", val_ids: set[str] | None = None) -> tuple[Path, Path]:
    """Degraded set + one-degraded-copy-per-image subset (symlinks); returns (subset root, subset index).

    With ``train_copies="all"``, images of identities outside ``val_ids`` keep every degraded copy.
    """
    from edgefiq.data.degrade import DEGRADATIONS, make_degraded_set
    from edgefiq.data.readers import identity_of

    src = SHARED / "lfw-dev" / "aligned112"
    deg_root = work / "data" / "lfw_degraded"
    index = deg_root / "index.csv"
    if not index.is_file():
        make_degraded_set(src, deg_root, kinds=DEGRADATIONS, severities=SEVERITIES, per_image=1, seed=0)
    sub_root, sub_index = work / "data" / "subset", work / "data" / "subset_index.csv"
    if sub_index.is_file():
        return sub_root, sub_index
    with open(index, newline="") as f:
        rows = list(csv.DictReader(f))
    by_src: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_src.setdefault(r["source"], []).append(r)
    keep = []
    for s in sorted(by_src):
        group = by_src[s]
        keep += [r for r in group if r["kind"] == "clean"]
        deg = sorted((r for r in group if r["kind"] != "clean"), key=lambda r: r["path"])
        if deg and train_copies == "all" and identity_of(s) not in (val_ids or set()):
            keep += deg
        elif deg:
            keep.append(deg[np.random.default_rng([0, zlib.crc32(s.encode())]).integers(len(deg))])
    for r in keep:
        link = sub_root / r["path"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((deg_root / r["path"]).resolve())
    with open(sub_index, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "source", "kind", "severity"], lineterminator="\n")
        w.writeheader()
        w.writerows(keep)
    return sub_root, sub_index


def val_identities(work: Path) -> Path:
    """Identities of ``pairs.txt`` folds 6-7 (lines 3000..4199 of the 4200 pairs), one per line."""
    from edgefiq.data.readers import identity_of, read_lfw_pairs

    pairs = read_lfw_pairs(SHARED / "lfw-dev" / "pairs.txt")
    ids = sorted({identity_of(p) for a, b, _ in pairs[3000:4200] for p in (a, b)})
    out = work / "val_identities.txt"
    out.write_text("\n".join(ids) + "\n")
    return out


def read_rows(index: Path) -> list[dict[str, str]]:
    with open(index, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- label
def label_order(rel: list[str], sources: list[str], val_ids: Path) -> np.ndarray:
    """Labelling order: validation images first (all are needed), then training images in seeded
    random order, so training can start on a labelled prefix if labelling is slow."""
    from edgefiq.data.readers import identity_of

    vset = set(val_ids.read_text().split())
    val = [i for i, s in enumerate(sources) if identity_of(s) in vset]
    train = np.array([i for i, s in enumerate(sources) if identity_of(s) not in vset])
    return np.r_[np.array(val, np.int64), np.random.default_rng(0).permutation(train)]


def prefiqs_teacher(work: Path, batch: int = 64) -> object:
    """The package's PreFIQs(MobileFaceNet, l1, rho 0.4) teacher, its embedding cache in ``work``."""
    from edgefiq.registry import TEACHERS

    return TEACHERS.get("prefiqs")(fr_model=str(SHARED / "models" / "mobilefacenet" / "mobilefacenet.pt"),
                                   method="l1", rho=0.4, batch_size=batch, cache_dir=work / "teacher_cache")


def label_chunks(work: Path, root: Path, rel: list[str], order: np.ndarray, shard: tuple[int, int],
                  batch: int = 64) -> None:
    """Label chunks of 512 images of ``order`` with the package PreFIQs teacher (resumable), shard k of n.

    Each chunk keeps the quality and the full model's L2-normalised embedding (for the EDC).
    """
    from edgefiq.models.fr import l2_normalise
    from edgefiq.utils import atomic_path

    teacher = prefiqs_teacher(work, batch)
    chunks = work / "label_chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    k, n = shard
    starts = list(range(0, len(order), 512))[k::n]
    for c, s in enumerate(starts):
        out = chunks / f"chunk_{s:06d}.npz"
        if out.exists():
            continue
        t0 = time.time()
        idx = order[s:s + 512]
        rels = [rel[i] for i in idx]
        q = teacher.score_table(root, rels)["quality"]
        emb, _ = teacher.cached_full(root, rels)   # stored by score_table
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, index=idx, quality=q, emb=l2_normalise(emb).astype(np.float32))
        print(f"[label {k}/{n}] chunk {c + 1}/{len(starts)} ({len(rels) / (time.time() - t0):.1f} img/s)", flush=True)


def merge_labels(work: Path, rel: list[str], order: np.ndarray, n_val: int, min_train: int) -> int:
    """Write ``labels.csv`` (labelled images only) + ``embeddings.npy`` (NaN rows where missing).

    Returns the number of labelled training images, or -1 if the validation images are not all
    labelled yet or fewer than ``min_train`` training images are.
    """
    chunks = work / "label_chunks"
    files = [chunks / f"chunk_{s:06d}.npz" for s in range(0, len(order), 512)]
    done = [f for f in files if f.exists()]
    quality = np.full(len(rel), np.nan)
    emb = np.full((len(rel), 128), np.nan, np.float32)
    for f in done:
        z = np.load(f)
        quality[z["index"]] = z["quality"]
        emb[z["index"]] = z["emb"]
    labelled = np.isfinite(quality)
    n_train = int(labelled[order[n_val:]].sum())
    if not labelled[order[:n_val]].all() or n_train < min_train:
        return -1
    from edgefiq.data.readers import format_labels_csv
    from edgefiq.utils import atomic_path, atomic_write_text

    text = format_labels_csv([rel[i] for i in range(len(rel)) if labelled[i]], quality[labelled], fmt=".7g")
    labels = work / "labels.csv"
    if not labels.is_file() or labels.read_text() != text:  # other stages may be reading it
        atomic_write_text(labels, text)
        with atomic_path(work / "embeddings.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, emb)
    return n_train


# ----------------------------------------------------------------------------- train
def recipe(student: str, root: Path, labels: tuple[Path, Path], index: Path, work: Path, epochs: int,
           threads: int, feature_kd: float = 0.0, ema: float = 0.0, pretrained: dict | None = None) -> dict:
    """The distillation recipe used for every student (see results/distill.md for the rationale).

    ``labels`` = (training CSV, validation CSV): the validation identities are those of the second.
    ``feature_kd`` > 0 adds the FR-embedding feature term (targets from ``feature_targets``).
    ``ema`` > 0 validates and keeps EMA weights of that decay.
    ``pretrained`` (from ``pretrained_options``) overrides weights, finetune, input size, student options, lr.
    """
    extra = ({"feature_kd": {"targets": str(work / "feature_targets.npz"), "weight": feature_kd, "loss": "cosine"}}
             if feature_kd > 0 else {})
    rec = {**extra,
        "student": student, "input_size": [112, 112],
        "data": {"images": str(root), "labels": str(labels[0]), "val_labels": str(labels[1]), "index": str(index),
                 "cache": True, "cache_dir": str(work / "cache")},
        "augment": {"hflip": 0.5, "shift": 4},
        "losses": {"plcc": 1.0, "rank": 1.0, "mse": 0.5},
        "loss_options": {"rank": {"scale": 2.0}},
        "optim": {"name": "adamw", "lr": 1.5e-3 if student.startswith("emo") else 2e-3, "weight_decay": 0.02,
                  "batch_size": 64, "epochs": epochs, "schedule": "cosine", "warmup_epochs": 0.5, "min_lr": 1e-5,
                  "grad_clip": 1.0},
        "sampler": "random", "ema": ema, "seed": 0, "threads": threads,
    } | _overrides(pretrained or {})
    if (pretrained or {}).get("lr"):
        rec["optim"]["lr"] = pretrained["lr"]
    if (pretrained or {}).get("teacher_model"):   # two-stage: a trained student teaches online
        rec["data"] = {"images": str(root), "teacher": "model", "teacher_options": {"model": pretrained["teacher_model"]},
                       "val_identities": str(work / "val_identities.txt"), "index": str(index),
                       "cache": True, "cache_dir": str(work / "cache")}
        rec["augment"] = {"hflip": 0.5, "shift": 4, "degrade_p": pretrained.get("degrade_p", 0.5)}
    return rec


def _overrides(pre: dict) -> dict:
    """Recipe keys set by --weights / --input-size / --student-options / --lr / fine-tuning flags."""
    out: dict = {k: pre[k] for k in ("weights", "student_options", "finetune") if pre.get(k)}
    if pre.get("input_size"):
        out["input_size"] = [pre["input_size"], pre["input_size"]]
    return out


def pretrained_options(args: argparse.Namespace) -> dict:
    """The pretrained-student settings of this invocation (empty when training from scratch at 112 px)."""
    pre: dict = {}
    if args.weights != "none":
        pre["weights"] = args.weights
        pre["finetune"] = {"trunk_lr_mult": args.trunk_lr_mult, "head_warmup_epochs": args.head_warmup,
                           "freeze_bn": args.freeze_bn, "freeze": list(args.freeze)}
    if args.input_size != 112:
        pre["input_size"] = args.input_size
    if args.student_options:
        pre["student_options"] = json.loads(args.student_options)
    if args.lr:
        pre["lr"] = args.lr
    if args.teacher_model:
        pre["teacher_model"] = str(Path(args.teacher_model).resolve())
        pre["degrade_p"] = args.degrade_p
    return pre


def pretrained_tag(pre: dict) -> str:
    """Row-name suffix: a pretrained row says so (``(face)``, ``(imagenet)``), with any non-default size/options."""
    bits = [pre["weights"]] if pre.get("weights") else []
    bits += [f"{k}={v}" for k, v in sorted(pre.get("student_options", {}).items())]
    bits += [f"{pre['input_size']} px"] if pre.get("input_size") else []
    bits += [f"taught by {Path(pre['teacher_model']).parent.name} online"] if pre.get("teacher_model") else []
    return f" ({', '.join(bits)})" if bits else ""


def train(student: str, rec: dict, run_dir: Path) -> Path:
    from edgefiq.distill import DistillConfig, distill
    from edgefiq.recipe import from_mapping

    out = run_dir / student
    distill(from_mapping(DistillConfig, rec), out, resume=True)
    return out


def pruned_name(student: str, rho: float, scope: str) -> str:
    """Folder / row name of a pruned student: ``<student>-structured-<rho>`` (``-structured-layer-<rho>``)."""
    return f"{student}-structured-{'' if scope == 'global' else scope + '-'}{rho:g}"


def prune_student(student_dir: Path, rho: float, train_labels: Path, root: Path, epochs: int, max_steps: int,
                  threads: int, scope: str = "global") -> Path:
    """Structured pruning of ``<student_dir>/best.pt`` (``edgefiq.pipeline.pruning.prune_checkpoint``, channel
    counts rounded to 16, recovery on the teacher's training labels) into ``pruned_name(...)``, with the
    ``model.json`` / ``metrics.jsonl`` / ``recipe.yaml`` the evaluation reads (from the recovery run)."""
    import shutil

    from edgefiq.pipeline.pruning import prune_checkpoint
    from edgefiq.pipeline.recovery import RecoveryConfig

    out = student_dir.with_name(pruned_name(student_dir.name, rho, scope))
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "best.pt").is_file():
        rec = RecoveryConfig(epochs=epochs, images=str(root), labels=str(train_labels), max_steps_per_epoch=max_steps,
                             threads=threads)
        prune_checkpoint(student_dir / "best.pt", out / "best.pt", rho=rho, method="structured", round_to=16,
                         scope=scope, recovery=rec)
        for f in ("model.json", "metrics.jsonl", "recipe.yaml"):
            shutil.copy(out / "best.recovery" / "recovery" / f, out / f)
    return out


def feature_targets(work: Path, rel: list[str]) -> Path:
    """``feature_targets.npz``: the full model's normalised embedding of every labelled image (the label
    stage stores them in ``embeddings.npy``, row = index order), for ``--feature-kd``."""
    from edgefiq.distill.feature_kd import save_targets

    emb = np.load(work / "embeddings.npy")
    ok = np.isfinite(emb).all(axis=1)
    return save_targets(work / "feature_targets.npz", [r for r, k in zip(rel, ok) if k], emb[ok])


# ----------------------------------------------------------------------------- eval
def mirrored_quality(work: Path, root: Path, rels: list[str], cache: str, batch: int = 64) -> np.ndarray:
    """The teacher's quality of the horizontally mirrored images ``rels`` (cached under
    ``label_chunks_mirror/<cache>/``, so an interrupted run resumes)."""
    return teacher_quality(work, root, rels, work / "label_chunks_mirror" / cache, mirror=True, batch=batch)


def teacher_quality(work: Path, root: Path, rels: list[str], chunks: Path, *, mirror: bool = False,
                    batch: int = 64, threads: int = 1) -> np.ndarray:
    """The package teacher's quality of the images ``rels`` (optionally mirrored), in chunks of 512 cached
    under ``chunks`` (checked against the image list), so an interrupted run resumes."""
    from edgefiq.models.fr import l2_normalise
    from edgefiq.utils import atomic_path

    teacher = prefiqs_teacher(work, batch)
    chunks.mkdir(parents=True, exist_ok=True)
    out = np.full(len(rels), np.nan)
    starts = range(0, len(rels), 512)
    for c, s in enumerate(starts):
        part, f = rels[s:s + 512], chunks / f"chunk_{s:06d}.npz"
        if not f.exists():
            t0 = time.time()
            if mirror:   # the teacher's own two runners on the mirrored batch (its score_table reads files as they are)
                full, pruned = teacher.runners(threads)
                xs = (np.ascontiguousarray(x.numpy()[..., ::-1]) for x, _, _ in teacher.batches(root, part, "error"))
                q = np.concatenate([-np.linalg.norm(l2_normalise(full(x)) - l2_normalise(pruned(x)), axis=1)
                                    for x in xs])
            else:
                q = teacher.score_table(root, part)["quality"]
            with atomic_path(f) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, paths=np.array(part), quality=q)
            print(f"[label {chunks.name}] chunk {c + 1}/{len(starts)} ({len(part) / (time.time() - t0):.1f} img/s)",
                  flush=True)
        z = np.load(f)
        if z["paths"].tolist() != part:
            raise SystemExit(f"{f}: written for other images; delete {chunks} and rerun")
        out[s:s + 512] = z["quality"]
    return out


def jitter_views(root: Path, rels: list[str], k: int) -> list[str]:
    """``k`` re-posed, re-lit copies of every image of ``rels``, written next to it as
    ``<stem>__jit<j>.jpg`` (JPEG 95; seeded by path, so reruns give the same files); returns their paths.

    Each view: rotation U(-10, 10) deg, scale U(0.9, 1.1), shift U(-5, 5) px about the crop centre
    (borders reflected); with probability 0.5 also brightness U(-20, 20), contrast U(0.8, 1.2) and
    saturation U(0.7, 1.3). The teacher labels every view: these are new images, not label-preserving
    augmentations.
    """
    from PIL import Image

    from edgefiq.utils import atomic_path

    out, pad = [], 28
    for r in rels:
        img = None
        for j in range(1, k + 1):
            rj = r[:-len(Path(r).suffix)] + f"__jit{j}.jpg"
            out.append(rj)
            if (root / rj).exists():
                continue
            if img is None:
                img = np.asarray(Image.open(root / r).convert("RGB"))
            rng = np.random.default_rng([j, zlib.crc32(r.encode())])
            th, sc = np.deg2rad(rng.uniform(-10, 10)), rng.uniform(0.9, 1.1)
            tx, ty = rng.uniform(-5, 5, size=2)
            h, w = img.shape[:2]
            cx, cy = w / 2, h / 2
            a, b = np.cos(th) / sc, np.sin(th) / sc          # output -> input: R^T (out - c - t) / s + c
            d, e = -b, a
            data = (a, b, cx + pad - a * (cx + tx) - b * (cy + ty), d, e, cy + pad - d * (cx + tx) - e * (cy + ty))
            src = Image.fromarray(np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"))
            v = np.asarray(src.transform((w, h), Image.Transform.AFFINE, data, resample=Image.Resampling.BICUBIC),
                           np.float32)
            if rng.random() < 0.5:
                bright, contrast, sat = rng.uniform(-20, 20), rng.uniform(0.8, 1.2), rng.uniform(0.7, 1.3)
                gray = v.mean(axis=2, keepdims=True)
                v = gray + sat * (v - gray)
                v = (v - v.mean()) * contrast + v.mean() + bright
            with atomic_path(root / rj) as tmp:
                Image.fromarray(np.clip(np.rint(v), 0, 255).astype(np.uint8)).save(tmp, format="JPEG", quality=95)
    return out


def jitter_label_file(work: Path, root: Path, train_csv: Path, k: int, threads: int) -> Path:
    """``labels_train_jit<k>.csv``: the rows of ``train_csv`` plus ``k`` jitter views of each of its
    images (``jitter_views``), every view labelled by the teacher (cached in ``label_chunks_jit<k>/``)."""
    from edgefiq.data.readers import read_labels_csv, write_labels_csv

    paths, q = read_labels_csv(train_csv, root)
    rels = [p.relative_to(root).as_posix() for p in paths]
    t0 = time.time()
    views = jitter_views(root, rels, k)
    print(f"[jitter] {len(views)} views of {len(rels)} training images ready ({time.time() - t0:.0f} s)", flush=True)
    vq = teacher_quality(work, root, views, work / f"label_chunks_jit{k}", threads=threads)
    out = work / f"labels_train_jit{k}.csv"
    return write_labels_csv(out, rels + views, np.r_[q, vq], fmt=".7g")


def fraction_label_file(work: Path, root: Path, train_csv: Path, fraction: float) -> Path:
    """``labels_train_ids<fraction>.csv``: the rows of ``train_csv`` of whole identities, taken in seeded
    random order until they hold ``fraction`` of its images (every copy of an image follows its identity)."""
    from edgefiq.data.readers import read_labels_csv, write_labels_csv
    from edgefiq.data.split import identity_subset

    paths, q = read_labels_csv(train_csv, root)
    rels = [p.relative_to(root).as_posix() for p in paths]
    keep = identity_subset(rels, int(np.ceil(fraction * len(rels))), seed=0)
    return write_labels_csv(work / f"labels_train_ids{fraction:g}.csv", [rels[k] for k in keep], q[keep], fmt=".7g")


def split_label_files(work: Path, root: Path, rel: list[str], order: np.ndarray, n_val: int,
                      mirror_avg: bool) -> tuple[Path, Path]:
    """``labels_train[_mirror_avg].csv`` and ``labels_val.csv`` from ``labels.csv``.

    With ``mirror_avg`` a training image's label is the mean of the teacher's score of the image
    and of its mirror image. The student trains with random horizontal flips, and a flipped view
    otherwise carries the unflipped image's score, which the teacher itself only reproduces at
    SRCC ~0.95 (its mirror agreement); the average is the same for both views. Validation labels
    are always the teacher's plain scores: the reported SRCC is against the teacher as it is.
    """
    from edgefiq.data.readers import read_labels_csv, write_labels_csv

    paths, labels = read_labels_csv(work / "labels.csv", root)
    q = {p.relative_to(root).as_posix(): v for p, v in zip(paths, labels)}
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])   # file order = labels.csv order
    train_rel = [rel[i] for i in train if rel[i] in q]
    tq = np.array([q[r] for r in train_rel])
    if mirror_avg:
        tq = 0.5 * (tq + mirrored_quality(work, root, train_rel, "train"))
    files = (work / ("labels_train_mirror_avg.csv" if mirror_avg else "labels_train.csv"), work / "labels_val.csv")
    write_labels_csv(files[0], train_rel, tq, fmt=".7g")
    write_labels_csv(files[1], [rel[i] for i in val], [q[rel[i]] for i in val], fmt=".7g")
    return files


def evaluate(work: Path, run_dir: Path, root: Path, rel: list[str], sources: list[str], students: list[str],
             val_ids: Path, shared_rows: dict, kinds: list[str], tag: str = "") -> dict:
    import torch

    from edgefiq.data.readers import identity_of, read_labels_csv
    from edgefiq.distill.data import ImageSource, decode_cache, to_tensor
    from edgefiq.eval.sources import EvalSet
    from edgefiq.metrics import krcc, plcc, srcc
    from edgefiq.models.checkpoint import load_checkpoint

    paths, q = read_labels_csv(work / "labels.csv", root)
    q_by_rel = {p.relative_to(root).as_posix(): v for p, v in zip(paths, q)}
    emb_all = np.load(work / "embeddings.npy")
    vset = set(val_ids.read_text().split())
    vidx = [i for i, s in enumerate(sources) if identity_of(s) in vset]
    vrel = [rel[i] for i in vidx]
    teacher = np.array([q_by_rel[r] for r in vrel])
    # images named by their source photo: identities from the sources, and two copies of one photo
    # (same source) are not a verification attempt (edgefiq.eval.sources leaves them out)
    es = EvalSet.build(emb_all[vidx], [sources[i] for i in vidx], same_source={})
    res: dict = {"validation": {"images": len(vidx), "identities": len(vset), "genuine": es.n_genuine,
                                "impostor": es.n_impostor}}
    res["teacher"] = {"pauc_x1e3": _pauc(es, teacher)}
    rnd = [_pauc(es, np.random.default_rng(s).random(len(vidx))) for s in range(5)]
    res["random"] = {"pauc_x1e3": float(np.mean(rnd)), "pauc_x1e3_std": float(np.std(rnd)), "seeds": 5}
    sources_by_size: dict[tuple[int, int], ImageSource] = {}
    clean = np.array([kinds[i] == "clean" for i in vidx])
    res["students"] = {}
    for name in students:
        ck_path = run_dir / name / "best.pt"
        if not ck_path.is_file():
            continue
        ck = load_checkpoint(ck_path)
        size = tuple(ck.preprocess.size)
        if size not in sources_by_size:   # students trained at another input size see their own size
            arr, _ = decode_cache(root, vrel, size, cache_dir=str(work / "cache"))
            sources_by_size[size] = ImageSource(root, vrel, size, arr)
        src = sources_by_size[size]
        with torch.no_grad():
            preds, mirrors = [], []   # one batch in memory at a time
            for s in range(0, len(src), 256):
                b = to_tensor(src.get(list(range(s, min(s + 256, len(src))))), ck.preprocess)
                preds.append(ck.model(b).numpy())
                mirrors.append(ck.model(torch.flip(b, [3])).numpy())
            pred, pred_mirror = (np.concatenate(v).astype(np.float64) for v in (preds, mirrors))
        model_json = json.loads((run_dir / name / "model.json").read_text())
        hist = [json.loads(ln) for ln in (run_dir / name / "metrics.jsonl").read_text().splitlines() if ln.strip()]
        res["students"][name + tag] = {
            "srcc": srcc(pred, teacher), "plcc": plcc(pred, teacher), "krcc": krcc(pred, teacher),
            "pauc_x1e3": _pauc(es, pred),
            "params": model_json["params"], "macs": model_json["macs"], "best_epoch": model_json["best_epoch"],
            "epochs_run": model_json["epochs_run"], "train_images": model_json["train_images"],
            "train_images_seen": _views_seen(run_dir / name, model_json),
            "seconds_per_epoch": float(np.median([h["time_s"] for h in hist])) if hist else None,
            "train_images_per_s": float(np.median([h["images_per_s"] for h in hist])) if hist else None,
            "history": [{k: h[k] for k in ("epoch", "train_loss", "train_feature_kd", "val_srcc", "val_plcc") if k in h}
                        for h in hist],
            "checkpoint": str(ck_path.relative_to(ROOT) if ck_path.is_relative_to(ROOT) else ck_path),
        }
        s = res["students"][name + tag]
        s["command"] = shared_rows["command"]
        s["pauc_vs_teacher"] = s["pauc_x1e3"] / res["teacher"]["pauc_x1e3"] - 1.0
        s["srcc_clean_only"] = srcc(pred[clean], teacher[clean])
        both = 0.5 * (pred + pred_mirror)   # scored as the mean over the image and its mirror image (2 passes)
        s["mirror_scoring"] = {"srcc": srcc(both, teacher), "plcc": plcc(both, teacher),
                               "pauc_x1e3": _pauc(es, both),
                               "srcc_mirror_only": srcc(pred_mirror, teacher)}
        s["srcc_degraded_only"] = srcc(pred[~clean], teacher[~clean])
    res["teacher_flip_agreement"] = teacher_flip_agreement(work, root, vrel, teacher, clean)
    res["teachers_crosscheck"] = crosscheck_teacher(root, vrel[:: max(1, len(vrel) // 64)][:64], q_by_rel)
    res.update(shared_rows)
    return res


def _pauc(es: object, quality: np.ndarray) -> float:
    """EDC pAUC x1e3 at FMR 1e-3, discard 0..0.3, fixed threshold (``edgefiq.eval.sources.EvalSet``)."""
    from edgefiq.eval.sources import QualitySource

    return es.evaluate([QualitySource("q", quality)], fmrs=[1e-3], limit=0.3).pauc[0]["pauc_x1e3"]  # type: ignore[attr-defined]


def teacher_flip_agreement(work: Path, root: Path, vrel: list[str], teacher: np.ndarray, clean: np.ndarray) -> dict:
    """SRCC between the teacher's labels and its labels of the horizontally mirrored images.

    A mirrored face is the same face at the same quality, so this is how far the teacher agrees
    with itself: a ceiling on how well any image-only student can rank like it.
    """
    from edgefiq.metrics import srcc

    flipped = mirrored_quality(work, root, vrel, "val")
    return {"images": len(vrel), "srcc": srcc(teacher, flipped), "srcc_clean_only": srcc(teacher[clean], flipped[clean]),
            "srcc_degraded_only": srcc(teacher[~clean], flipped[~clean]),
            "note": "SRCC(teacher(x), teacher(mirror(x))) on the validation images"}


def _views_seen(run: Path, model_json: dict) -> int:
    """Training views seen = epochs x steps per epoch x batch size (from the run's resolved recipe)."""
    import yaml

    rec = yaml.safe_load((run / "recipe.yaml").read_text())
    bs = rec["optim"]["batch_size"]
    steps = max(1, model_json["train_images"] // bs)
    if rec.get("max_steps_per_epoch"):
        steps = min(steps, rec["max_steps_per_epoch"])
    return int(model_json["epochs_run"] * steps * bs)


def crosscheck_teacher(root: Path, rels: list[str], q_by_rel: dict) -> dict:
    """Score a sample afresh (no embedding cache) with the ``prefiqs`` teacher and compare with the stored labels."""
    try:
        from edgefiq.registry import TEACHERS

        t = TEACHERS.get("prefiqs")(fr_model=str(SHARED / "models" / "mobilefacenet" / "mobilefacenet.pt"),
                                    method="l1", rho=0.4, cache=False)
        got = np.asarray(t.score_paths([root / r for r in rels]), np.float64)
    except Exception as e:  # noqa: BLE001 - report, don't fail the benchmark
        return {"available": False, "error": str(e)[:200]}
    want = np.array([q_by_rel[r] for r in rels])
    return {"available": True, "images": len(rels), "max_abs_diff": float(np.abs(got - want).max()),
            "teacher_config": t.config() if hasattr(t, "config") else {}}


def write_report(res: dict, out: Path) -> None:
    from edgefiq.utils import atomic_write_text, write_json

    write_json(out.with_suffix(".json"), res)
    t, r, v = res["teacher"], res["random"], res["validation"]
    cmds = list(dict.fromkeys(s.get("command") or res["command"] for s in res["students"].values())) or [res["command"]]
    lines = ["# Distillation benchmark: PreFIQs(MobileFaceNet, l1, rho 0.4) -> students", "",
             "Reproduce" + (" (each command adds or updates its rows)" if len(cmds) > 1 else "") + ":", "",
             *[f"- `{c}`" for c in cmds], "",
             f"Data: LFW dev aligned 112x112; every image clean + one degraded copy (8 kinds, severity 0.3/0.6/1.0, "
             f"seeded){'; training images also get their other two severities (--train-copies all)' if res.get('train_copies') == 'all' else ''}. Validation = identities of `pairs.txt` folds 6-7 ({v['identities']} identities, {v['images']} "
             f"images; {v['genuine']} genuine / {v['impostor']} impostor comparisons, same-photo pairs excluded); "
             f"training = all other dev identities. Labeller: {res['labeller']}. Machine: {res['machine']}.", "",
             "| model | params | MACs at its input | SRCC vs teacher | PLCC | KRCC | pAUC x1e3 (FMR 1e-3, discard 0.3) "
             "| pAUC vs teacher | s/epoch | train img/s | epochs (best) |",
             "|---|---|---|---|---|---|---|---|---|---|---|",
             f"| teacher PreFIQs (MobileFaceNet x2) | 1.0 M x2 | 2 x FR | 1 | 1 | 1 | {t['pauc_x1e3']:.2f} | 0 | | | |",
             f"| random ({r['seeds']} seeds) | | | | | | {r['pauc_x1e3']:.2f} +- {r['pauc_x1e3_std']:.2f} "
             f"| {r['pauc_x1e3'] / t['pauc_x1e3'] - 1:+.1%} | | | |"]
    for name, s in res["students"].items():
        lines.append(f"| {name} | {s['params'] / 1e6:.2f} M | {s['macs'] / 1e6:.1f} M | {s['srcc']:.4f} | {s['plcc']:.4f} "
                     f"| {s['krcc']:.4f} | {s['pauc_x1e3']:.2f} | {s['pauc_vs_teacher']:+.1%} "
                     f"| {s['seconds_per_epoch']:.0f} | {s['train_images_per_s']:.0f} "
                     f"| {s['epochs_run']} ({s['best_epoch'] + 1}) |")
    mirror = {n: s["mirror_scoring"] for n, s in res["students"].items() if "mirror_scoring" in s}
    if mirror:
        lines += ["", "Scored as the mean of the image's and its mirror image's score (two student passes, so twice "
                  "the MACs; the same checkpoints):", "",
                  "| model | SRCC vs teacher | PLCC | pAUC x1e3 | pAUC vs teacher |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {m['srcc']:.4f} | {m['plcc']:.4f} | {m['pauc_x1e3']:.2f} "
                  f"| {m['pauc_x1e3'] / t['pauc_x1e3'] - 1:+.1%} |" for n, m in mirror.items()]
    lines += ["", "Targets: mobilenetv3_small_100 SRCC >= 0.85 vs teacher and pAUC within 10% of the teacher's.", "",
              "Pretrained students, the <= 20 M MAC student, their int8 exports and latency against the teacher's: "
              "`results/distill_pretrained.md`.", ""]
    lines += res.get("notes", [])
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")


def notes(res: dict) -> list[str]:
    """What the numbers mean and what limits them (generated from the results)."""
    out = ["## Notes", ""]
    t = res["teacher"]["pauc_x1e3"]
    for name, s in res["students"].items():
        seen = s["train_images_seen"]
        out.append(f"- {name}: {s['epochs_run']} epoch(s), {seen} training views seen "
                   f"({seen / max(1, s['train_images']):.2f} passes over the {s['train_images']} training images); "
                   f"SRCC {s['srcc']:.3f}, pAUC {s['pauc_x1e3']:.2f} vs teacher {t:.2f} ({s['pauc_vs_teacher']:+.1%}).")
    cc = res.get("teachers_crosscheck", {})
    if cc.get("available"):
        out.append(f"- Stored labels vs a fresh, uncached `edgefiq.teachers` prefiqs (l1, rho 0.4) on {cc['images']} "
                   f"validation images: max |difference| {cc['max_abs_diff']:.2e}.")
    fa = res.get("teacher_flip_agreement") or {}
    if "srcc" in fa:
        out.append(f"- Teacher self-agreement: SRCC between the teacher's labels and its labels of the mirrored "
                   f"images is {fa['srcc']:.3f} on the {fa['images']} validation images ({fa.get('srcc_clean_only', float('nan')):.3f} "
                   f"among clean images only, {fa.get('srcc_degraded_only', float('nan')):.3f} among degraded copies only). "
                   "A mirrored face has the same "
                   "quality, so PreFIQs' own label noise (how the pruned network happens to react to a particular "
                   "pixel layout) bounds what an image-only student can reach against it.")
    for name, s in res["students"].items():
        if "srcc_clean_only" in s:
            out.append(f"- {name} within subsets: SRCC {s['srcc_clean_only']:.3f} among clean images only, "
                       f"{s['srcc_degraded_only']:.3f} among degraded copies only (the pooled SRCC mixes both).")
    for name, s in res["students"].items():
        val = [h["val_srcc"] for h in s["history"]]
        if "online)" in name:  # two-stage: the loop validated against the online teacher, not PreFIQs
            out.append(f"- {name}: two-stage distillation. Each training view (random flip and shift, degraded "
                       "with probability 0.5) is labelled by the trained face_trunk student online; the loop's "
                       f"validation SRCC (against face_trunk's scores) rose to {max(val):.3f} over "
                       f"{len(val)} epochs. Against the PreFIQs labels: SRCC {s['srcc']:.3f} after "
                       f"{s['train_images_seen']} training views"
                       + (f" (the plain recipe on PreFIQs labels: {base['srcc']:.3f} after {base['train_images_seen']})."
                          if (base := res["students"].get(name.split(" (")[0])) else "."))
            continue
        if len(val) >= 6:
            tail = val[len(val) // 2:]
            out.append(f"- {name} learning curve: best validation SRCC {max(val):.3f}; over the second half of the "
                       f"schedule it stayed within {min(tail):.3f}-{max(tail):.3f} while the training loss kept "
                       f"falling ({s['history'][len(val) // 2]['train_loss']:.3f} -> {s['history'][-1]['train_loss']:.3f}): "
                       "more epochs of this recipe fit the training identities, not the validation ones.")
    for name, s in res["students"].items():
        base = res["students"].get(name.removesuffix(MIRROR_TAG))
        if name.endswith(MIRROR_TAG) and base is not None:
            out.append(f"- {name}: trained on the mean of the teacher's score of each training image and of its "
                       f"mirror image, validated against the teacher's plain scores: SRCC {s['srcc']:.3f} vs "
                       f"{base['srcc']:.3f} with the plain labels, same recipe otherwise. With random flips in "
                       "training, a plain label is the score of the unflipped image only, which the teacher itself "
                       "reproduces on the mirror image at the self-agreement above; the averaged label is the same "
                       "for both views." + (" No measurable gain: that label noise is not what limits the student."
                                            if abs(s["srcc"] - base["srcc"]) < 0.005 else ""))
    for name, s in res["students"].items():
        base = res["students"].get(name.removesuffix(FEATURE_TAG))
        if name.endswith(FEATURE_TAG) and base is not None:
            fk = [h["train_feature_kd"] for h in s.get("history", []) if "train_feature_kd" in h]
            out.append(f"- {name}: the same recipe plus feature-level distillation (`feature_kd`, weight in "
                       "the row's command): the student's pooled features, through a "
                       "training-only linear projection, regress the FR model's normalised embedding of each "
                       f"training image (cosine loss). SRCC {s['srcc']:.3f} vs {base['srcc']:.3f} without, pAUC "
                       f"{s['pauc_x1e3']:.2f} vs {base['pauc_x1e3']:.2f}; the exported student is the same network."
                       + (f" The cosine term fell from {fk[0]:.2f} to {fk[-1]:.2f} over the run (1 - mean cosine "
                          "similarity to the embedding)." if fk else "")
                       + (" No measurable gain: what the student learns of the embedding does not order the "
                          "validation faces better." if abs(s["srcc"] - base["srcc"]) < 0.005 else ""))
    out += _variant_notes(res)
    measured_fkd = any(n.endswith(FEATURE_TAG) for n in res["students"])
    out += [
        "- s/epoch and img/s are wall-clock on this 2-core machine (students trained from scratch: no "
        "ImageNet weights offline). What limits the numbers: the clean-vs-clean ordering, where the teacher is "
        "least consistent with itself (see its mirror agreement) and the student is weakest; training from "
        "scratch on ~3.5k training identities. Levers not available offline here: ImageNet-pretrained weights "
        "(`student_options.weights`), more identities" + ("." if measured_fkd else "; available but not yet "
                                                          "measured: feature-level distillation from the FR embedding.")
        + _identity_extrapolation(res),
        "- An earlier attempt of this benchmark (2 short epochs, EMA decay 0.998) validated EMA weights that "
        "averaged over more steps than the run had (~300), i.e. mostly the initial weights: SRCC 0.21. The "
        "recipe trains without EMA; keep 1/(1-ema) well below the number of steps.",
    ]
    return out


def _val_srcc_after(row: dict, views: int) -> float | None:
    """Validation SRCC of a run's history after about ``views`` training views (None past its end)."""
    hist = row.get("history") or []
    k = round(views / row["train_images_seen"] * len(hist)) - 1
    return hist[k]["val_srcc"] if 0 <= k < len(hist) else None


def _identity_extrapolation(res: dict) -> str:
    """How many doublings of the training identities the target needs, if the half-identities gain repeats."""
    rows = res["students"]
    base = rows.get("mobilenetv3_small_100")
    half = next((s for n, s in rows.items() if n.startswith("mobilenetv3_small_100 (50% of training")), None)
    if not base or not half or base["srcc"] <= half["srcc"]:
        return ""
    gain = base["srcc"] - half["srcc"]
    need = max(0.0, 0.85 - base["srcc"])
    return (f" Measured here: doubling the training identities (half -> all, equal steps) added {gain:+.3f} SRCC; "
            f"if every further doubling added as much, the plain recipe would need about {2 ** np.ceil(need / gain):.0f}x "
            "today's identities to reach 0.85 (an extrapolation from two points, not a measurement).")


def _variant_notes(res: dict) -> list[str]:
    """Notes comparing the --train-jitter / --train-fraction / --ema rows with the plain recipe's row."""
    out, rows = [], res["students"]
    for name, s in rows.items():
        arch = name.split(" ")[0]
        base = rows.get(arch)
        if base is None or name == arch:
            continue
        vs = (f"SRCC {s['srcc']:.3f} vs {base['srcc']:.3f} with the plain recipe (clean-only {s['srcc_clean_only']:.3f} "
              f"vs {base['srcc_clean_only']:.3f}), pAUC {s['pauc_x1e3']:.2f} vs {base['pauc_x1e3']:.2f}")
        if JITTER_TAG in name:
            out.append(f"- {name}: every training image also gets a re-posed, re-lit copy (rotation up to 10 deg, "
                       "scale 0.9-1.1, shift up to 5 px, half of them with brightness/contrast/saturation changes) "
                       f"that the teacher labels: {s['train_images']} training images instead of {base['train_images']}, "
                       f"at about the same number of training views seen ({s['train_images_seen']} vs "
                       f"{base['train_images_seen']}). {vs}.")
        elif "of training identities)" in name:
            out.append(f"- {name}: trained on whole identities holding about that share of the training images "
                       f"({s['train_images']} of {base['train_images']}), for about the same number of training "
                       f"views seen ({s['train_images_seen']} vs {base['train_images_seen']}). {vs}.")
        elif "(EMA " in name:
            out.append(f"- {name}: the plain recipe, validated and kept as an exponential moving average of the "
                       f"weights. {vs}.")
    small, large = rows.get("mobilenetv3_small_100"), rows.get("mobilenetv3_large_100")
    if small and large:
        out.append(f"- Capacity: mobilenetv3_large_100 ({large['params'] / 1e6:.1f} M params, {large['macs'] / 1e6:.0f} M "
                   f"MACs), same recipe, {large['train_images_seen']} training views seen: SRCC {large['srcc']:.3f} "
                   f"(clean-only {large['srcc_clean_only']:.3f}) vs {small['srcc']:.3f} ({small['srcc_clean_only']:.3f}) "
                   f"for mobilenetv3_small_100 with {small['train_images_seen']}"
                   + (f" (whose validation SRCC after as many views, mid-schedule, was {same:.3f})"
                      if (same := _val_srcc_after(small, large["train_images_seen"])) is not None else "")
                   + ": no sign that the small network's capacity is what limits it.")
    gains = [s["mirror_scoring"]["srcc"] - s["srcc"] for s in rows.values() if "mirror_scoring" in s]
    if gains:
        out.append(f"- Mirror-averaged scoring (`edgefiq score --mirror-average`, second table) changes SRCC by "
                   f"{min(gains):+.3f} to {max(gains):+.3f} across the {len(gains)} checkpoints, at twice the "
                   "compute: the image's and the mirror image's errors are partly independent.")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["prepare", "label", "train", "eval", "all"], default="all")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench_distill"))
    ap.add_argument("--students", nargs="+", default=["mobilenetv3_small_100", "emo_1m"])
    ap.add_argument("--epochs", type=int, nargs="+", default=[12, 8], help="epochs per student (last value repeats)")
    ap.add_argument("--shard", default="0/1", help="label stage: k/n")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-dir", default=None, help="where student runs go (default: --work)")
    ap.add_argument("--max-steps", type=int, nargs="+", default=[0],
                    help="cap steps per epoch, per student (last value repeats; 0 = full epochs)")
    ap.add_argument("--min-train", type=int, default=None,
                    help="train once this many training images are labelled (default: all)")
    ap.add_argument("--train-copies", choices=["one", "all"], default="one",
                    help="degraded copies per training image: one (as validation) or all three severities")
    ap.add_argument("--train-labels", choices=["teacher", "mirror-avg"], default="teacher",
                    help="training labels: the teacher's scores, or their mean with the teacher's scores of the "
                         "mirrored images (validation labels are always the teacher's)")
    ap.add_argument("--feature-kd", type=float, default=0.0, metavar="W",
                    help="weight of feature-level distillation from the FR embeddings (0 = off)")
    ap.add_argument("--train-jitter", type=int, default=0, metavar="K",
                    help="add K re-posed/re-lit views of every training image, each labelled by the teacher "
                         "(0 = off); compare at equal training views seen (fewer --epochs)")
    ap.add_argument("--train-fraction", type=float, default=1.0, metavar="F",
                    help="train on a seeded random fraction F of the training identities (learning curve over "
                         "identities; give proportionally more --epochs for equal steps)")
    ap.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                    help="validate and keep EMA weights of this decay (0 = off; keep 1/(1-DECAY) well below the "
                         "run's steps)")
    ap.add_argument("--weights", default="none",
                    help="pretrained initialisation: none, imagenet, face or a state-dict path (edgefiq.models.weights)")
    ap.add_argument("--input-size", type=int, default=112, help="student input size in pixels (square)")
    ap.add_argument("--student-options", default="", help='student kwargs as JSON, e.g. \'{"depth": 8}\'')
    ap.add_argument("--lr", type=float, default=0.0, help="peak learning rate (0 = the recipe's)")
    ap.add_argument("--trunk-lr-mult", type=float, default=1.0, help="pretrained trunk lr as a fraction of --lr")
    ap.add_argument("--head-warmup", type=float, default=0.0, help="epochs of head-only training first")
    ap.add_argument("--freeze-bn", action="store_true", help="keep the pretrained trunk's BatchNorm fixed")
    ap.add_argument("--freeze", nargs="*", default=[], metavar="PREFIX",
                    help="parameter-name prefixes kept at their pretrained values, e.g. trunk.conv1 trunk.features.0")
    ap.add_argument("--teacher-model", default="",
                    help="two-stage distillation: this trained student (checkpoint or ONNX) labels every augmented and "
                         "degraded training view online; validation rows are still scored against the PreFIQs labels")
    ap.add_argument("--degrade-p", type=float, default=0.5,
                    help="with --teacher-model: probability that a training view is degraded on the fly")
    ap.add_argument("--prune", type=float, default=0.0, metavar="RHO",
                    help="also prune each trained student (structured, channel counts multiples of 16) with recovery "
                         "on the training labels; evaluated as <student>-structured-<RHO>")
    ap.add_argument("--prune-epochs", type=int, default=2, help="recovery epochs after --prune")
    ap.add_argument("--prune-scope", choices=["global", "layer"], default="global",
                    help="--prune: rank channel groups across layers (global) or remove RHO of every layer")
    ap.add_argument("--prune-max-steps", type=int, default=0, help="recovery steps per epoch (0 = full epochs)")
    ap.add_argument("--out", default=str(ROOT / "results" / "distill"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    run_dir = Path(args.run_dir) if args.run_dir else work
    val_ids = val_identities(work)
    root, index = prepare(work, args.train_copies, set(val_ids.read_text().split()))
    rows = read_rows(index)
    rel, sources = [r["path"] for r in rows], [r["source"] for r in rows]
    order = label_order(rel, sources, val_ids)
    vset = set(val_ids.read_text().split())
    n_val = sum(1 for s in sources if s.split("/")[0] in vset)
    if args.stage in ("label", "all"):
        k, n = (int(x) for x in args.shard.split("/"))
        label_chunks(work, root, rel, order, (k, n))
    min_train = len(order) - n_val if args.min_train is None else args.min_train
    n_train = merge_labels(work, rel, order, n_val, min_train)
    if n_train < 0:
        print("labels incomplete (other shards still running?)")
        return
    print(f"labels: {n_val} validation + {n_train} training images", flush=True)
    labels = split_label_files(work, root, rel, order, n_val, args.train_labels == "mirror-avg")
    if args.feature_kd > 0:
        feature_targets(work, rel)
    if args.train_jitter > 0:
        labels = (jitter_label_file(work, root, labels[0], args.train_jitter, args.threads), labels[1])
    if args.train_fraction < 1:
        labels = (fraction_label_file(work, root, labels[0], args.train_fraction), labels[1])
    pre = pretrained_options(args)
    if args.stage in ("train", "all"):
        for i, name in enumerate(args.students):
            epochs = args.epochs[min(i, len(args.epochs) - 1)]
            t0 = time.time()
            rec = recipe(name, root, labels, index, work, epochs, args.threads, args.feature_kd, args.ema, pre)
            cap = args.max_steps[min(i, len(args.max_steps) - 1)]
            if cap:
                rec["max_steps_per_epoch"] = cap
            train(name, rec, run_dir)
            print(f"[train] {name}: {time.time() - t0:.0f} s", flush=True)
            if args.prune:
                t0 = time.time()
                pruned = prune_student(run_dir / name, args.prune, labels[0], root, args.prune_epochs,
                                       args.prune_max_steps, args.threads, args.prune_scope)
                print(f"[prune] {pruned.name}: {time.time() - t0:.0f} s", flush=True)
    if args.stage in ("eval", "all"):
        cmd = (f"python tools/bench_distill.py --stage all --threads {args.threads} "
               f"--students {' '.join(args.students)} --epochs {' '.join(map(str, args.epochs))} "
               f"--max-steps {' '.join(map(str, args.max_steps))}"
               + (f" --train-copies {args.train_copies} --work {args.work}" if args.train_copies != "one" else "")
               + (f" --train-labels {args.train_labels}" if args.train_labels != "teacher" else "")
               + (f" --feature-kd {args.feature_kd:g}" if args.feature_kd > 0 else "")
               + (f" --train-jitter {args.train_jitter}" if args.train_jitter > 0 else "")
               + (f" --ema {args.ema:g}" if args.ema > 0 else "")
               + (f" --train-fraction {args.train_fraction:g}" if args.train_fraction < 1 else "")
               + (f" --run-dir {args.run_dir}" if args.run_dir else "")
               + "".join(f" --{k.replace('_', '-')} {v}" for k, v in (("weights", args.weights),
                         ("input_size", args.input_size), ("lr", args.lr), ("trunk_lr_mult", args.trunk_lr_mult),
                         ("head_warmup", args.head_warmup)) if v not in ("none", 112, 0.0, 1.0))
               + (" --freeze-bn" if args.freeze_bn else "")
               + (f" --freeze {' '.join(args.freeze)}" if args.freeze else "")
               + (f" --teacher-model {args.teacher_model} --degrade-p {args.degrade_p:g}" if args.teacher_model else "")
               + (f" --student-options '{args.student_options}'" if args.student_options else "")
               + (f" --prune {args.prune:g} --prune-epochs {args.prune_epochs} --prune-max-steps {args.prune_max_steps}"
                  f" --prune-scope {args.prune_scope}" if args.prune else ""))
        shared = {"command": cmd, "labeller": "edgefiq.teachers prefiqs (MobileFaceNet, l1, global rho 0.4; "
                                       "quality = -||n(e) - n(e_pruned)||)",
            "train_copies": args.train_copies,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads "
                       f"{args.threads}", "recipes": {n: recipe(n, root, labels, index, work,
                                                               args.epochs[min(i, len(args.epochs) - 1)], args.threads,
                                                               args.feature_kd, args.ema, pre)
                                                        for i, n in enumerate(args.students)}}
        tag = ((MIRROR_TAG if args.train_labels == "mirror-avg" else "") + (FEATURE_TAG if args.feature_kd > 0 else "")
               + (JITTER_TAG if args.train_jitter > 0 else "") + (f" (EMA {args.ema:g})" if args.ema > 0 else "")
               + (f" ({args.train_fraction:.0%} of training identities)" if args.train_fraction < 1 else "")
               + pretrained_tag(pre))
        evaluated = [*args.students, *([pruned_name(n, args.prune, args.prune_scope) for n in args.students]
                                       if args.prune else [])]
        res = evaluate(work, run_dir, root, rel, sources, evaluated, val_ids, shared, [r["kind"] for r in rows], tag)
        prev = Path(args.out).with_suffix(".json")
        if prev.is_file():   # rows of other runs (other students or label variants) stay in the table
            old_res = json.loads(prev.read_text())
            old = {k: {"command": old_res.get("command"), **v} for k, v in old_res.get("students", {}).items()}
            res["students"] = {**old, **res["students"]}   # re-evaluated rows keep their place, new rows go last
        res["notes"] = notes(res)
        write_report(res, Path(args.out))
        print(json.dumps({k: v for k, v in res.items() if k not in ("recipes",)}, indent=1, default=str)[:3000])


if __name__ == "__main__":
    main()
