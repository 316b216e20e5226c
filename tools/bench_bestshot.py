"""Best-shot selection on synthetic walk-up videos of validation identities -> results/bestshot.{md,json,png}.

Every raw LFW photo of a validation identity (pairs.txt folds 6-7) walks up in ``--seeds`` 640x480 sequences
(``edgefiq.data.walkup``, 1-3 people) fed through ``BestShot`` once per tracker. Each person's crop picked by
``bestshot``, ``first``, ``random`` or ``oracle`` (least known degradation, landmarks within 0.1 IOD) is verified
with MobileFaceNet against another photo of each validation identity (mean cosine, verification rate at FMR 1e-3,
pooled impostors). Speed: ``run_bestshot`` (decode included) at 1 and 2 threads, last, with the load average.

Usage:
    python tools/bench_bestshot.py --shared ../shared/data -o results/bestshot
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from edgefiq.data.align import align_face
from edgefiq.data.readers import identity_of, lfw_fold_identities, list_images, relpaths
from edgefiq.data.walkup import load_people, walkup_sequence
from edgefiq.eval import embed_images
from edgefiq.eval.detect import landmark_nme
from edgefiq.eval.tracking import track_metrics
from edgefiq.metrics.edc import threshold_at_fmr
from edgefiq.pipeline.card import build_machine
from edgefiq.runtime.model import load_model
from edgefiq.utils import atomic_write_text, write_json
from edgefiq.video import BestShot
from edgefiq.video.outputs import run_bestshot
from edgefiq.video.synth import write_walkup_video

STRATEGIES = ("bestshot", "first", "random", "oracle")
TRACKERS = ("bytetrack", "sort", "iou")
STAGES = ("decode", "detect", "track", "align", "score")


def sequences(raw: Path, val: set[str], seeds: int) -> list[dict]:
    """(photos, frames, seed) of every sequence: each validation photo walks up ``seeds`` times."""
    photos = [r for r in relpaths(list_images(raw), raw) if identity_of(r) in val]
    rng = np.random.default_rng(0)
    out = []
    for s in range(seeds):
        for k, main in enumerate(photos):
            others = [p for p in photos if identity_of(p) != identity_of(main)]
            extra = [str(x) for x in rng.choice(others, size=(k + s) % 3, replace=False)]
            out.append({"photos": [main, *extra], "frames": int(rng.integers(40, 101)), "seed": 1000 * s + k})
    return out


def run_sequence(seq: dict, frames: list, model, tracker: str) -> tuple[dict, list[dict]]:
    """Feed one sequence's frames to BestShot; tracking counts and one probe per tracked person and strategy."""
    bs = BestShot(model, tracker=tracker, threads=1)
    for f in frames:
        bs.update(f.image, f.index / 25.0)
    tracks = bs.finish()
    m = track_metrics(tracks, frames, min_face=40)
    rng = np.random.default_rng(seq["seed"])
    probes = []
    for person, photo in enumerate(seq["photos"]):
        mine = [t for t in tracks if t.id in m.tracks_of(person)]
        if not mine:
            continue
        tr = max(mine, key=lambda t: len(t.sightings))
        severity = {f.index: f.people[person].severity for f in frames}
        # the oracle knows the degradations and the true landmarks: detections off by > 0.1 IOD are no candidates
        located = [s for s in tr.sightings
                   if landmark_nme(s.landmarks, frames[s.frame].people[person].landmarks) <= 0.1]
        picks = {"first": tr.sightings[0], "random": tr.sightings[int(rng.integers(len(tr.sightings)))],
                 "oracle": min(located or tr.sightings, key=lambda s: (severity[s.frame], -(s.box[2] - s.box[0])))}
        crops = {k: align_face(frames[s.frame].image, s.landmarks, 112) for k, s in picks.items()}
        crops["bestshot"] = tr.best[0].crop
        frame_of = {**{k: s.frame for k, s in picks.items()}, "bestshot": tr.best[0].frame}
        for k in STRATEGIES:
            probes.append({"identity": identity_of(photo), "photo": photo, "strategy": k, "crop": crops[k],
                           "severity": severity[frame_of[k]]})
    counts = {k: getattr(m, k) for k in ("id_switches", "duplicates", "fragments", "missed", "visible", "false_tracks")}
    counts.update(frames=bs.frames, **{f"s_{k}": v for k, v in bs.seconds.items()})
    return counts, probes


def gallery(aligned: Path, val: set[str], used: set[str]) -> dict[str, Path]:
    """One aligned photo per validation identity, not one a sequence was made from."""
    out: dict[str, Path] = {}
    for rel in relpaths(list_images(aligned), aligned):
        ident = identity_of(rel)
        if ident in val and ident not in out and rel not in used:
            out[ident] = aligned / rel
    return out


def verification(probes: list[dict], gal: dict[str, Path], fr: Path) -> dict[str, dict]:
    """Mean genuine cosine and verification rate at FMR 1e-3 per strategy (pooled-impostor threshold)."""
    probes = [p for p in probes if p["identity"] in gal]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n, p in enumerate(probes):
            paths.append(Path(tmp) / f"{n}.png")
            Image.fromarray(p["crop"]).save(paths[-1])
        pe, _ = embed_images(fr, paths)
    names = sorted(gal)
    ge, _ = embed_images(fr, [gal[n] for n in names])
    pe = pe / np.linalg.norm(pe, axis=1, keepdims=True)
    ge = ge / np.linalg.norm(ge, axis=1, keepdims=True)
    sim = pe @ ge.T
    col = np.array([names.index(p["identity"]) for p in probes])
    genuine = sim[np.arange(len(probes)), col]
    impostor_mask = np.ones_like(sim, bool)
    impostor_mask[np.arange(len(probes)), col] = False
    t = threshold_at_fmr(sim[impostor_mask], 1e-3)
    out = {}
    for k in STRATEGIES:
        sel = np.array([p["strategy"] == k for p in probes])
        out[k] = {"probes": int(sel.sum()), "mean_cosine": float(genuine[sel].mean()),
                  "verification_rate": float((genuine[sel] > t).mean()),
                  "mean_severity": float(np.mean([p["severity"] for p, s in zip(probes, sel) if s]))}
    out["_threshold"] = {"fmr": 1e-3, "threshold": t, "impostors": int(impostor_mask.sum())}
    return out


def speed(raw: Path, marks: Path, model, seqs: list[dict], n: int, tmp: Path) -> dict:
    """Stage rates of run_bestshot (decode included) on n MP4s, at 1 and 2 threads."""
    videos = [write_walkup_video(raw, marks, tmp / f"v{k}.mp4", photos=s["photos"], frames=100, seed=s["seed"])
              for k, s in enumerate([s for s in seqs if len(s["photos"]) == 2][:n])]
    out = {}
    for threads in (1, 2):
        qm = load_model(model, threads=threads)
        run_bestshot(videos[0], tmp / "warm-up", force=True, model=qm, threads=threads)   # first calls, not timed
        total: dict[str, float] = {}
        frames = 0
        for v in videos:
            run = run_bestshot(v, tmp / f"out{threads}", force=True, model=qm, threads=threads)
            frames += run.frames
            for k, sec in run.seconds.items():
                total[k] = total.get(k, 0.0) + sec
        out[threads] = {"frames": frames, "load_before": os.getloadavg()[0],
                        "stages": {k: round(1000 * v / frames, 3) for k, v in total.items()}}
        out[threads]["fps"] = round(1000 / sum(out[threads]["stages"].values()), 1)
    return out


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = ["# Best-shot selection on walk-up videos (`edgefiq bestshot`)", "",
             f"Reproduce: `{res['command']}`", "",
             f"{res['n_sequences']} synthetic walk-up sequences of 640x480 at 25 fps, 40-100 frames, from "
             f"{res['n_photos']} raw LFW photos of validation identities (pairs folds 6-7), 1-3 people each; "
             f"quality model: `{res['model']}`; BestShot defaults (top-k 3, full detection every 5th frame, "
             f"min face 40 px). CPU: {m.get('cpu')}.", "",
             "## Does the kept crop verify better?", "",
             f"MobileFaceNet; gallery = one other aligned photo of each of {res['gallery']} validation identities; "
             f"threshold at FMR 1e-3 from {res['verification']['_threshold']['impostors']:,} impostor comparisons "
             "(pooled over the strategies). Tracker: bytetrack.", "",
             "| crop chosen by | probes | mean cosine to gallery | verification rate at FMR 1e-3 | "
             "mean known degradation |", "|---|---:|---:|---:|---:|"]
    for k in STRATEGIES:
        v = res["verification"][k]
        lines.append(f"| {k} | {v['probes']} | {v['mean_cosine']:.3f} | {v['verification_rate']:.3f} | "
                     f"{v['mean_severity']:.3f} |")
    lines += ["", "## Trackers", "",
              "Per sequence: ID switches (a person's covering track changes, a new track after a gap included), "
              "extra tracks of a person (fragments), sightings of a face another track already covers on that "
              "frame (duplicates); visible faces of at least 40 px that no track covered (missed), tracks of "
              "nobody; track stage in ms/frame (1 thread).", "",
              "| tracker | ID switches / seq | fragments / seq | duplicates / seq | missed faces | false tracks | "
              "track ms/frame | bestshot verification rate |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in res["trackers"].items():
        lines.append(f"| {name} | {t['id_switches']:.3f} | {t['fragments']:.3f} | {t['duplicates']:.2f} | "
                     f"{t['missed_pct']:.1f}% | {t['false_tracks']} | {t['track_ms']:.3f} | "
                     f"{t['verification_rate']:.3f} |")
    lines += ["", "## Speed (640x480, decode included: `run_bestshot`, what `edgefiq bestshot` runs)", "",
              f"{res['speed']['1']['frames']} frames of 2-person videos per setting, after one untimed warm-up "
              "video; no other job running. Last column: the 1-minute load average before each setting, which "
              "still counts this script's own work just before (about 1.0 of it).", "",
              "| threads | decode | detect | track | align | score | total ms/frame | frames/s | load |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for threads, s in res["speed"].items():
        st = s["stages"]
        lines.append(f"| {threads} | " + " | ".join(f"{st[k]:.2f}" for k in STAGES)
                     + f" | {sum(st.values()):.2f} | {s['fps']} | {s['load_before']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("-o", "--out", type=Path, default=Path("results/bestshot"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--speed-videos", type=int, default=6)
    ap.add_argument("--limit", type=int, default=None, help="first N sequences only (a quick check)")
    ap.add_argument("--render", action="store_true", help="only re-render OUT.md from OUT.json")
    args = ap.parse_args()
    if args.render:
        atomic_write_text(args.out.with_suffix(".md"), markdown(json.loads(args.out.with_suffix(".json").read_text())))
        return
    lfw = args.shared / "lfw-dev"
    raw, marks, fr = lfw / "raw_sample", lfw / "landmarks.tsv", args.shared / "models/mobilefacenet/mobilefacenet.pt"
    val = lfw_fold_identities(lfw / "pairs.txt", [6, 7])
    seqs = sequences(raw, val, args.seeds)[: args.limit]
    model = load_model(None, threads=1)
    res: dict = {"command": f"python tools/bench_bestshot.py --seeds {args.seeds} --speed-videos {args.speed_videos}",
                 "machine": build_machine(), "model": model.path.name, "n_sequences": len(seqs),
                 "n_photos": len({p for s in seqs for p in s["photos"]}), "trackers": {}}
    gal = gallery(lfw / "aligned112", val, {p for s in seqs for p in s["photos"]})
    res["gallery"] = len(gal)
    counts: dict[str, list[dict]] = {t: [] for t in TRACKERS}
    probes: dict[str, list[dict]] = {t: [] for t in TRACKERS}
    for n, seq in enumerate(seqs):
        frames = list(walkup_sequence(load_people(raw, marks, seq["photos"]), frames=seq["frames"], seed=seq["seed"]))
        for tracker in TRACKERS:
            c, p = run_sequence(seq, frames, model, tracker)
            counts[tracker].append(c)
            probes[tracker].extend(p)
        print(f"{n + 1}/{len(seqs)}: " + ", ".join(f"{t} {counts[t][-1]['id_switches']} switches" for t in TRACKERS),
              flush=True)
    for tracker in TRACKERS:
        counts_t = counts[tracker]
        ver = verification(probes[tracker], gal, fr)
        n_frames = sum(c["frames"] for c in counts_t)
        res["trackers"][tracker] = {
            **{k: float(np.mean([c[k] for c in counts_t])) for k in ("id_switches", "fragments", "duplicates")},
            "missed_pct": 100.0 * sum(c["missed"] for c in counts_t) / max(sum(c["visible"] for c in counts_t), 1),
            "false_tracks": int(sum(c["false_tracks"] for c in counts_t)),
            "track_ms": 1000.0 * sum(c["s_track"] for c in counts_t) / n_frames,
            "verification_rate": ver["bestshot"]["verification_rate"]}
        if tracker == "bytetrack":
            res["verification"] = ver
    with tempfile.TemporaryDirectory() as tmp:
        res["speed"] = {str(k): v for k, v in speed(raw, marks, model.path, seqs, args.speed_videos,
                                                     Path(tmp)).items()}
        sheets = sorted((Path(tmp) / "out1" / "sheets").glob("*.png"))  # the README's picture: the last video
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sheets[0], args.out.with_name(args.out.name + "_sheet.png"))
    write_json(args.out.with_suffix(".json"), res)
    atomic_write_text(args.out.with_suffix(".md"), markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
