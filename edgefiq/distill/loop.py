"""``distill``: train a student to score faces like a teacher (the training loop).

One epoch = a seeded ordering of the training images (random or score-stratified), cut
into batches that are augmented (flip, shift; degradations with an online teacher) and
scored by the student; the ``HybridLoss`` of the recipe is minimised. After every epoch
the student is validated against the teacher (SRCC, PLCC, KRCC), ``metrics.jsonl`` gets a
line, ``best.pt`` is kept for the best SRCC, and ``last.pt`` holds everything needed to
continue exactly (model, optimizer, EMA, loss RNG, torch RNG, epoch, step, running sums).

Run folder: ``best.pt`` (edgefiq checkpoint), ``last.pt``, ``metrics.jsonl``,
``recipe.yaml`` (resolved), ``model.json`` (architecture, preprocessing, params, MACs, best metrics).

Example:
    >>> from edgefiq.recipe import from_mapping
    >>> cfg = from_mapping(DistillConfig, {"student": "tiny_cnn",
    ...                    "data": {"images": "faces/", "labels": "labels.csv"}})   # doctest: +SKIP
    >>> distill(cfg, "runs/d").metrics["val_srcc"]                              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgefiq.data.preprocess import Preprocess
from edgefiq.distill import ddp
from edgefiq.distill.config import DistillConfig
from edgefiq.distill.data import augment_batch, clean_index, degrade_batch, to_tensor
from edgefiq.distill.feature_kd import FeatureHead, feature_loss
from edgefiq.distill.optim import ModelEma, build_optimizer, lr_at, set_lr
from edgefiq.distill.prepare import Prepared, prepare_data
from edgefiq.distill.quant_aware import QuantAware
from edgefiq.distill.sampler import epoch_order, with_clean_share
from edgefiq.errors import UsageError
from edgefiq.losses import HybridLoss
from edgefiq.metrics import krcc, plcc, srcc
from edgefiq.models.checkpoint import read_checkpoint, save_checkpoint
from edgefiq.models.students import model_profile
from edgefiq.models.weights import apply_weights
from edgefiq.recipe import dump_resolved
from edgefiq.registry import STUDENTS
from edgefiq.utils import atomic_write_text, progress, write_json

log = logging.getLogger(__name__)

# metrics.jsonl keys that depend on the machine, not on the training (excluded from exact-resume checks)
TIMING_KEYS = ("time_s", "images_per_s")
RANGE_IMAGES = 256   # training images (evenly spaced, unaugmented) whose activations set the QAT ranges


@dataclass
class DistillResult:
    """Paths of the run's checkpoints, the best epoch's metrics and the per-epoch history."""

    best: Path
    last: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return torch.device(name)


def _seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


@torch.no_grad()
def predict(model: torch.nn.Module, prepared_source: Any, pp: Preprocess, device: torch.device,
            batch_size: int = 256) -> np.ndarray:
    """Scores of every image of an ``ImageSource`` (eval mode, no augmentation)."""
    was = model.training
    model.eval()
    out = []
    for s in range(0, len(prepared_source), batch_size):
        idx = list(range(s, min(s + batch_size, len(prepared_source))))
        x = to_tensor(prepared_source.get(idx), pp).to(device)
        out.append(model(x).float().cpu().numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def validate(model: torch.nn.Module, data: Prepared, pp: Preprocess, device: torch.device,
             batch_size: int) -> dict[str, float]:
    """SRCC, PLCC, KRCC of the student's validation scores against the teacher's."""
    pred = predict(model, data.val_src, pp, device, batch_size).astype(np.float64)
    t = data.val.labels
    return {"val_srcc": srcc(pred, t), "val_plcc": plcc(pred, t), "val_krcc": krcc(pred, t)}


class _Trainer:
    """Holds the run state; ``run()`` trains from the current state to the end."""

    def __init__(self, cfg: DistillConfig, out: Path, resume: bool, model: torch.nn.Module | None = None,
                 teacher: Any = None) -> None:
        self.cfg, self.out = cfg, out
        self.device = _device(cfg.device)
        self.env = ddp.setup(self.device.type)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        _seed_everything(cfg.seed, self.device)
        if cfg.optim.batch_size < 2 * self.env.world:
            raise UsageError(f"optim.batch_size {cfg.optim.batch_size} too small for {self.env.world} process(es)")
        self.pp = Preprocess(size=tuple(cfg.input_size))  # type: ignore[arg-type]
        built = model if model is not None else STUDENTS.get(cfg.student)(**cfg.student_options)
        self.model = built.to(self.device)
        self.pretrained = self._init_weights() if model is None else None
        self.loss = HybridLoss(cfg.losses, cfg.loss_options).to(self.device)  # bad names fail before data loads
        self.data = prepare_data(cfg, self.out if self.env.main else None, teacher=teacher)

        self.profile = model_profile(self.model, tuple(cfg.input_size))
        self.hooks: list[Any] = []   # removed after the run (the model may be the caller's)
        self.qat = None
        if cfg.quant_aware:
            self.qat = QuantAware(self.model)
            self.hooks.append(self.qat)
        qat_epochs = cfg.quant_aware_epochs if 0 < cfg.quant_aware_epochs < cfg.optim.epochs else cfg.optim.epochs
        self.qat_start = cfg.optim.epochs - qat_epochs if self.qat is not None else 0
        self.model.to(self.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = ModelEma(self.model, cfg.ema) if cfg.ema > 0 else None
        self.fkd = None   # training-only projection for feature-level distillation (after the EMA copy)
        if self.data.train_vectors is not None:
            self.fkd = FeatureHead(self.model, self.data.train_vectors.shape[1]).to(self.device)
            self.hooks.append(self.fkd)
        self.trained = self.fkd if self.fkd is not None else self.model
        self.net = ddp.wrap(self.trained, self.env, self.device)
        self._freeze_trunk()
        self.opt = build_optimizer(self.trained, cfg.optim, head=self._head_ids(),
                                   trunk_lr_mult=cfg.finetune.trunk_lr_mult if self.pretrained else 1.0)
        self.scaler = torch.amp.GradScaler("cuda") if (self.cuda and cfg.amp) else None
        n = len(self.data.train.rel)
        self.steps = max(1, n // cfg.optim.batch_size)
        if cfg.max_steps_per_epoch:
            self.steps = min(self.steps, cfg.max_steps_per_epoch)
        self.state: dict[str, Any] = {"epoch": 0, "step": 0, "best_srcc": -math.inf, "best_epoch": -1,
                                      "bad_epochs": 0, "plateau_scale": 1.0, "plateau_best": -math.inf,
                                      "sums": {}, "seen": 0, "stopped": False}
        self.best_metrics: dict[str, Any] = {}
        if resume and (out / "last.pt").is_file():
            self._load_last()
        elif (out / "last.pt").is_file() and not resume:
            raise UsageError(f"{out} already holds a run (last.pt); pass --resume to continue it or pick a new -o folder")

    # ------------------------------------------------------------------ pretrained trunks
    def _init_weights(self) -> dict[str, Any] | None:
        """Load ``cfg.weights`` into the fresh student (``edgefiq.models.weights``); None when training from scratch."""
        if self.cfg.weights in ("none", ""):
            return None

        info = apply_weights(self.model, self.cfg.weights, self.cfg.student)
        log.info("weights %s: %d tensors from %s", self.cfg.weights, info["matched"], info["file"])
        return info

    def _head_ids(self) -> frozenset[int]:
        """Parameters of the student's new head (everything else is the pretrained trunk)."""
        keys = set(getattr(self.model, "head_keys", lambda: [])()) if self.pretrained else set()
        return frozenset(id(p) for n, p in self.model.named_parameters() if n in keys)

    def _trunk_frozen(self, epoch: int, step: int) -> bool:
        return bool(self.pretrained) and epoch + step / self.steps < self.cfg.finetune.head_warmup_epochs

    def _freeze_trunk(self) -> None:
        """``finetune.freeze``: those layers keep their pretrained values and BatchNorm statistics;
        ``finetune.freeze_bn``: so do every trunk BatchNorm's statistics and affine parameters."""
        ft = self.cfg.finetune
        if not self.pretrained or not (ft.freeze_bn or ft.freeze):
            return
        head = self._head_ids()
        frozen = tuple(p.rstrip(".") + "." for p in ft.freeze)
        for name, m in self.model.named_modules():
            is_bn = isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            in_frozen = bool(frozen) and (name + ".").startswith(frozen)
            if (in_frozen or (ft.freeze_bn and is_bn)) and not any(id(p) in head for p in m.parameters()):
                m.eval()
                for p in m.parameters(recurse=False):
                    p.requires_grad_(False)

    # ------------------------------------------------------------------ checkpoints
    def _scores_module(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _meta(self) -> dict[str, Any]:
        return {"target_norm": self.data.norm, "teacher": self.data.teacher_desc, "student": self.cfg.student,
                "profile": self.profile, "seed": self.cfg.seed}

    def _save_last(self) -> None:
        if not self.env.main:
            return

        st = dict(self.state)
        extra = {"train_state": st, "optimizer": self.opt.state_dict(), "loss_state": self.loss.state_dict(),
                 "torch_rng": torch.get_rng_state(), "best_metrics": self.best_metrics}
        if self.ema is not None:
            extra["ema"] = self.ema.state_dict()
        if self.scaler is not None:
            extra["scaler"] = self.scaler.state_dict()
        if self.fkd is not None:
            extra["feature_proj"] = self.fkd.proj.state_dict()
        save_checkpoint(self.out / "last.pt", self.model, arch=self.cfg.student, arch_kwargs=self.cfg.student_options,
                        preprocess=self.pp, meta=self._meta(), extra=extra)

    def _load_last(self) -> None:
        p = read_checkpoint(self.out / "last.pt")
        self.model.load_state_dict(p["state_dict"])
        if self.fkd is not None:
            if "feature_proj" not in p:
                raise UsageError(f"{self.out / 'last.pt'} was trained without feature_kd; resume it without")
            self.fkd.proj.load_state_dict(p["feature_proj"])
        self.opt.load_state_dict(p["optimizer"])
        self.loss.load_state_dict(p["loss_state"])
        if self.ema is not None and "ema" in p:
            self.ema.load_state_dict(p["ema"])
        if self.scaler is not None and "scaler" in p:
            self.scaler.load_state_dict(p["scaler"])
        torch.set_rng_state(p["torch_rng"])
        self.state.update(p["train_state"])
        self.best_metrics = dict(p.get("best_metrics", {}))
        log.info("resuming at epoch %d step %d", self.state["epoch"], self.state["step"])
        if self.env.main:  # drop metric lines of epochs that will be redone
            mpath = self.out / "metrics.jsonl"
            if mpath.is_file():
                keep = [ln for ln in mpath.read_text().splitlines()
                        if ln.strip() and json.loads(ln)["epoch"] < self.state["epoch"]]

                atomic_write_text(mpath, "".join(k + "\n" for k in keep))

    # ------------------------------------------------------------------ one step
    def _batch(self, order: np.ndarray, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        cfg, bs = self.cfg, self.cfg.optim.batch_size
        idx = order[step * bs:(step + 1) * bs][self.env.rank::self.env.world]
        rng = np.random.default_rng([cfg.seed, epoch, step, self.env.rank, 101])
        tr = self.data.train
        imgs = self.data.train_src.get(idx)
        rel = [tr.rel[i] for i in idx]
        src = [tr.source[i] for i in idx]
        sev = tr.severity[idx].astype(np.float32)
        a = cfg.augment
        if self.data.teacher is not None:  # online: degrade views, then ask the teacher
            if a.degrade_pairs:
                deg, s2 = degrade_batch(imgs, rng, p=1.0, kinds=a.degrade_kinds)
                imgs = np.concatenate([imgs, deg])
                rel, src = rel + [f"{r}#deg" for r in rel], src + rel
                sev = np.concatenate([sev, s2])
            elif a.degrade_p > 0:
                imgs, sev = degrade_batch(imgs, rng, p=a.degrade_p, kinds=a.degrade_kinds)
        imgs = augment_batch(imgs, rng, hflip=a.hflip, shift=a.shift)
        if self.data.teacher is not None:
            y = self.data.score_online(imgs)
        else:
            y = tr.labels[idx]
        y = (np.asarray(y, np.float64) - self.data.norm["mean"]) / self.data.norm["std"]
        x = to_tensor(imgs, self.pp).to(self.device)
        if self.cuda and cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        extra = {"severity": torch.from_numpy(sev).to(self.device),
                 "clean_index": torch.from_numpy(clean_index(rel, src)).to(self.device)}
        if self.data.train_vectors is not None:
            extra["vectors"] = torch.from_numpy(self.data.train_vectors[idx]).to(self.device)
        return x, torch.as_tensor(y, dtype=torch.float32, device=self.device), extra

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, extra: dict[str, Any], lr: float,
                    trunk_frozen: bool = False) -> dict[str, float]:
        set_lr(self.opt, lr, trunk_frozen=trunk_frozen)
        self.opt.zero_grad(set_to_none=True)
        ctx = torch.autocast("cuda") if self.scaler is not None else contextlib.nullcontext()
        vectors = extra.pop("vectors", None)
        with ctx:
            out = self.net(x)
        pred, vec = out if self.fkd is not None else (out, None)
        terms = self.loss(pred.float(), y, **extra)
        if vec is not None:
            f = feature_loss(vec.float(), vectors, self.cfg.feature_kd.loss)
            terms["loss"] = terms["loss"] + self.cfg.feature_kd.weight * f
            terms["feature_kd"] = f.detach()
        if self.scaler is not None:
            self.scaler.scale(terms["loss"]).backward()
            self.scaler.unscale_(self.opt)
        else:
            terms["loss"].backward()
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.trained.parameters(), self.cfg.optim.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return {k: float(v.detach()) for k, v in terms.items()}

    # ------------------------------------------------------------------ epochs
    def _start_qat_epoch(self) -> None:
        """Observe activation ranges (at an epoch's start; a mid-epoch resume reuses the saved ones),
        round over them while training, and freeze batch norm."""
        st = self.state
        if st["step"] == 0 or "qat_ranges" not in st:
            n = len(self.data.train.rel)
            idx = np.unique(np.linspace(0, n - 1, min(RANGE_IMAGES, n)).round().astype(int))
            x = to_tensor(self.data.train_src.get(idx), self.pp).to(self.device)
            st["qat_ranges"] = self.qat.observe(x, batch_size=self.cfg.val_batch_size)
        self.qat.activate(st["qat_ranges"])
        self.qat.freeze_norms()

    def _end_epoch(self, epoch: int, seconds: float, images: int) -> dict[str, Any]:
        cfg, st = self.cfg, self.state
        seen = max(1, st["seen"])
        row: dict[str, Any] = {"epoch": epoch, "lr": lr_at(cfg.optim, step=(epoch + 1) * self.steps - 1,
                                                            steps_per_epoch=self.steps,
                                                            plateau_scale=st["plateau_scale"])}
        row.update({f"train_{k}": ddp.all_mean(v / seen, self.env) for k, v in sorted(st["sums"].items())})
        row.update(validate(self._scores_module(), self.data, self.pp, self.device, cfg.val_batch_size))
        row.update({"time_s": round(seconds, 3), "images_per_s": round(images / max(seconds, 1e-9), 1)})
        srcc = row["val_srcc"] if np.isfinite(row["val_srcc"]) else -math.inf
        if epoch < self.qat_start:   # before quantisation-aware training: not a candidate for best.pt
            pass
        elif srcc > st["best_srcc"]:
            st.update(best_srcc=srcc, best_epoch=epoch, bad_epochs=0)
            self.best_metrics = {k: v for k, v in row.items() if k not in TIMING_KEYS}
            if self.env.main:
                save_checkpoint(self.out / "best.pt", self._scores_module(), arch=cfg.student,
                                arch_kwargs=cfg.student_options, preprocess=self.pp,
                                meta={**self._meta(), "epoch": epoch, "metrics": self.best_metrics})
        else:
            st["bad_epochs"] += 1
        if cfg.optim.schedule == "plateau":
            if srcc > st["plateau_best"]:
                st["plateau_best"], st["plateau_wait"] = srcc, 0
            else:
                st["plateau_wait"] = st.get("plateau_wait", 0) + 1
                if st["plateau_wait"] >= cfg.optim.patience:
                    st["plateau_scale"] *= cfg.optim.gamma
                    st["plateau_wait"] = 0
        if cfg.early_stop and epoch >= self.qat_start and st["bad_epochs"] >= cfg.early_stop:
            st["stopped"] = True
        if self.env.main:
            with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        st.update(epoch=epoch + 1, step=0, sums={}, seen=0)
        self._save_last()
        return row

    def run(self) -> DistillResult:
        cfg, st = self.cfg, self.state
        bs = cfg.optim.batch_size
        self.net.train()
        while st["epoch"] < cfg.optim.epochs and not st["stopped"]:
            epoch = st["epoch"]
            self._freeze_trunk()   # validation put every module back in train mode
            order = epoch_order(self.data.train.labels, epoch=epoch, seed=cfg.seed, kind=cfg.sampler,
                                bins=cfg.sampler_bins)
            if cfg.clean_share > 0:
                train = self.data.train
                order = with_clean_share(order, np.array([r == s for r, s in zip(train.rel, train.source)]),
                                         cfg.clean_share, epoch=epoch, seed=cfg.seed)
            t0, images = time.perf_counter(), 0
            if self.qat is not None and epoch >= self.qat_start:
                self._start_qat_epoch()
            bar = progress(total=(self.steps - st["step"]) * bs, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
                           unit="img")
            with bar:
                while st["step"] < self.steps:
                    step = st["step"]
                    x, y, extra = self._batch(order, epoch, step)
                    lr = lr_at(cfg.optim, step=epoch * self.steps + step, steps_per_epoch=self.steps,
                               plateau_scale=st["plateau_scale"])
                    terms = self._train_step(x, y, extra, lr, self._trunk_frozen(epoch, step))
                    k = int(y.shape[0])
                    for name, v in terms.items():
                        st["sums"][name] = st["sums"].get(name, 0.0) + v * k
                    st["seen"] += k
                    st["step"] = step + 1
                    images += k * self.env.world
                    bar.update(k * self.env.world)
                    if cfg.save_every_steps and st["step"] % cfg.save_every_steps == 0 and st["step"] < self.steps:
                        self._save_last()
            row = self._end_epoch(epoch, time.perf_counter() - t0, images)
            eta = (cfg.optim.epochs - epoch - 1) * row["time_s"]
            log.info("epoch %d/%d loss %.4f val SRCC %.4f PLCC %.4f (%.0f img/s, eta %.0f s)", epoch + 1,
                     cfg.optim.epochs, row.get("train_loss", float("nan")), row["val_srcc"], row["val_plcc"],
                     row["images_per_s"], eta)
        return self._finish()

    def _finish(self) -> DistillResult:
        history = []
        mpath = self.out / "metrics.jsonl"
        if mpath.is_file():
            history = [json.loads(ln) for ln in mpath.read_text().splitlines() if ln.strip()]
        if self.env.main:
            write_json(self.out / "model.json", {
                "arch": self.cfg.student, "arch_kwargs": self.cfg.student_options,
                "preprocess": self.pp.to_dict(), "params": self.profile["params"], "macs": self.profile["macs"],
                "macs_counted": "conv, linear, matmul (torch.utils.flop_counter FLOPs / 2)",
                "input_size": list(self.cfg.input_size), "best_epoch": self.state["best_epoch"],
                "best_metrics": self.best_metrics, "epochs_run": self.state["epoch"],
                "early_stopped": bool(self.state["stopped"]), "target_norm": self.data.norm,
                "teacher": self.data.teacher_desc, "train_images": len(self.data.train.rel),
                "left_out": list(self.cfg.data.leave_out),
                "val_images": len(self.data.val.rel)})
        ddp.barrier(self.env)
        ddp.teardown(self.env)
        return DistillResult(best=self.out / "best.pt", last=self.out / "last.pt", metrics=self.best_metrics,
                             history=history)


def distill(cfg: DistillConfig, out_dir: str | Path, *, resume: bool = False, model: torch.nn.Module | None = None,
            teacher: Any = None) -> DistillResult:
    """Train ``cfg.student`` against the teacher's labels; write the run folder ``out_dir``.

    Args:
        cfg: the run's configuration (see ``DistillConfig``).
        out_dir: run folder (created).
        resume: continue from ``out_dir/last.pt`` if present (exactly: same final metrics as an
            uninterrupted run on CPU with the same seed).
        model: train this module (in place) instead of building ``cfg.student`` from the registry
            (e.g. a pruned model); checkpoints still record ``cfg.student`` as the architecture name.
        teacher: an online teacher object (``score_images``/``score_paths``) used instead of building
            ``cfg.data.teacher`` from the registry; ``cfg.data.teacher`` then only names it.

    Returns:
        ``DistillResult(best, last, metrics, history)``.

    Raises:
        UsageError: bad configuration, or ``out_dir`` holds a run and ``resume`` is False.
        DataError: unreadable labels or images.

    Example:
        >>> res = distill(cfg, "runs/distill")          # doctest: +SKIP
        >>> res.metrics["val_srcc"]                     # doctest: +SKIP
        0.91
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(cfg, out, resume, model=model, teacher=teacher)
    if trainer.env.main:
        dump_resolved(cfg, out / "recipe.yaml")
    try:
        return trainer.run()
    finally:
        for h in trainer.hooks:   # the model may be the caller's (pruning recovery)
            h.remove()
