"""LFW verification accuracy of a face recognition model on the dev ``pairs.txt`` (k-fold CV threshold).

Embeds every image in the pairs once (optionally flip-sum), scores pairs with cosine
similarity, and for each fold picks the threshold that maximises accuracy on the other
folds, then reports the accuracy on the held-out fold (the standard LFW protocol).

Usage:
    python tools/verify_fr.py --fr-model ../shared/data/models/mobilefacenet/mobilefacenet.pt \
        --images ../shared/data/lfw-dev/aligned112 --pairs ../shared/data/lfw-dev/pairs.txt --flip \
        --out results/fr_verification
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def read_pairs(pairs_txt: Path) -> list[tuple[str, str, bool]]:
    """``pairs.txt`` -> ``[(relpath_a, relpath_b, genuine)]`` (uses the data team's reader when present)."""
    try:
        from edgefiq.data.readers import read_lfw_pairs

        return [(str(a), str(b), bool(g)) for a, b, g in read_lfw_pairs(pairs_txt)]
    except ImportError:
        pass
    lines = pairs_txt.read_text().split("\n")
    out = []
    for line in lines[1:]:
        f = line.split()
        if len(f) == 3:
            out.append((f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[0]}/{f[0]}_{int(f[2]):04d}.jpg", True))
        elif len(f) == 4:
            out.append((f"{f[0]}/{f[0]}_{int(f[1]):04d}.jpg", f"{f[2]}/{f[2]}_{int(f[3]):04d}.jpg", False))
    return out


def kfold_accuracy(sim: np.ndarray, genuine: np.ndarray, folds: int) -> tuple[list[float], list[float]]:
    """Per-fold accuracies and thresholds; the threshold is chosen on the other folds (consecutive blocks)."""
    n = len(sim)
    fold_id = np.arange(n) * folds // n
    accs, thrs = [], []
    for k in range(folds):
        train, test = fold_id != k, fold_id == k
        cand = np.unique(sim[train])
        cand = np.concatenate([cand, [cand[-1] + 1e-6]])
        # accuracy(t) on the training folds, vectorised over sorted candidates
        s, g = sim[train], genuine[train]
        acc_train = [np.mean((s >= t) == g) for t in cand] if len(cand) < 2000 else _fast_acc(s, g, cand)
        t = float(cand[int(np.argmax(acc_train))])
        thrs.append(t)
        accs.append(float(np.mean((sim[test] >= t) == genuine[test])))
    return accs, thrs


def _fast_acc(s: np.ndarray, g: np.ndarray, cand: np.ndarray) -> np.ndarray:
    order = np.sort(s[g])
    imp = np.sort(s[~g])
    tp = len(order) - np.searchsorted(order, cand, side="left")   # genuine with s >= t
    tn = np.searchsorted(imp, cand, side="left")                  # impostors with s < t
    return (tp + tn) / len(s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fr-model", default=str(SHARED / "models/mobilefacenet/mobilefacenet.pt"))
    ap.add_argument("--arch", default=None)
    ap.add_argument("--images", default=str(SHARED / "lfw-dev/aligned112"))
    ap.add_argument("--pairs", default=str(SHARED / "lfw-dev/pairs.txt"))
    ap.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results/fr_verification"), help="output stem (.json/.md)")
    args = ap.parse_args(argv)

    import torch

    from edgefiq.models.fr import embed_paths, load_fr_model
    from edgefiq.utils import atomic_write_text, write_json

    torch.set_num_threads(args.threads)
    root, pairs_txt = Path(args.images), Path(args.pairs)
    pairs = read_pairs(pairs_txt)
    header = pairs_txt.read_text().split("\n")[0].split()
    folds = int(header[0]) if len(header) == 2 else 10
    rel = sorted({p for a, b, _ in pairs for p in (a, b)})
    index = {r: i for i, r in enumerate(rel)}
    fr = load_fr_model(args.fr_model, arch=args.arch)
    t0 = time.perf_counter()
    emb = embed_paths(fr, [root / r for r in rel], batch_size=args.batch_size, flip=args.flip)
    secs = time.perf_counter() - t0
    ia = np.array([index[a] for a, _, _ in pairs])
    ib = np.array([index[b] for _, b, _ in pairs])
    genuine = np.array([g for _, _, g in pairs])
    sim = np.sum(emb[ia] * emb[ib], axis=1)
    accs, thrs = kfold_accuracy(sim, genuine, folds)
    mean, std = float(np.mean(accs)), float(np.std(accs))
    result = {
        "fr_model": str(args.fr_model), "arch": fr.arch, "weights_sha256": fr.weights_sha256,
        "pairs": str(pairs_txt), "n_pairs": len(pairs), "n_images": len(rel), "folds": folds,
        "flip_sum": args.flip, "accuracy_mean": mean, "accuracy_std": std, "fold_accuracies": accs,
        "fold_thresholds": thrs, "embed_seconds": secs, "images_per_second": len(rel) * (2 if args.flip else 1) / secs,
        "threads": args.threads, "python": platform.python_version(), "torch": torch.__version__,
        "command": "python tools/verify_fr.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out = Path(args.out)
    write_json(out.with_suffix(".json"), result)
    md = [
        "# Face recognition verification (LFW dev pairs)", "",
        f"Reproduce: `{result['command']}`", "",
        "| model | pairs | folds | flip-sum | accuracy (mean ± std) |", "|---|---|---|---|---|",
        f"| {fr.arch} (`{Path(args.fr_model).name}`) | {len(pairs)} | {folds} | {args.flip} | "
        f"{100 * mean:.2f}% ± {100 * std:.2f} |", "",
        "Per-fold accuracy: " + ", ".join(f"{100 * a:.2f}%" for a in accs), "",
        f"Threshold chosen on the other {folds - 1} folds (cosine similarity of L2-normalised embeddings). "
        f"Embedding throughput: {result['images_per_second']:.1f} forward passes/s on {args.threads} threads.", "",
    ]
    atomic_write_text(out.with_suffix(".md"), "\n".join(md))
    print(f"LFW dev {folds}-fold verification accuracy: {100 * mean:.2f}% ± {100 * std:.2f} "
          f"({len(pairs)} pairs, flip-sum={args.flip})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
