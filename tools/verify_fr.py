"""LFW verification accuracy of a face recognition model on the dev ``pairs.txt`` (k-fold CV threshold).

Embeds every image in the pairs once (``edgefiq.models.fr.embed_paths``, optionally flip-sum) and
reports the LFW-protocol accuracy of their cosine similarities (``edgefiq.eval.verification``).

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

from edgefiq.data.readers import read_lfw_pairs
from edgefiq.eval.verification import kfold_verification_accuracy, lfw_fold_count, pair_similarity
from edgefiq.utils import atomic_write_text, write_json

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


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

    import torch   # heavy: only once the arguments are fine

    from edgefiq.models.fr import embed_paths, load_fr_model

    torch.set_num_threads(args.threads)
    root, pairs_txt = Path(args.images), Path(args.pairs)
    pairs, folds = read_lfw_pairs(pairs_txt), lfw_fold_count(pairs_txt)
    rel = sorted({p for a, b, _ in pairs for p in (a, b)})
    fr = load_fr_model(args.fr_model, arch=args.arch)
    t0 = time.perf_counter()
    emb = embed_paths(fr, [root / r for r in rel], batch_size=args.batch_size, flip=args.flip)
    secs = time.perf_counter() - t0
    acc = kfold_verification_accuracy(*pair_similarity(emb, rel, pairs), folds)
    accs, thrs, mean, std = acc.fold_accuracies, acc.fold_thresholds, acc.mean, acc.std
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
