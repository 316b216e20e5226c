"""The stage engine: run stages in order, skip the ones whose inputs did not change, resume.

Each stage has a *key*: the SHA-256 of its configuration (a JSON-able mapping) and of the
content fingerprints of the outputs of the stages it depends on. After a stage succeeds
its key, outputs and an output fingerprint are recorded in ``<run_dir>/state.json``
(written atomically). On the next run a stage is skipped when its key is unchanged and
its outputs are still there, unaltered; otherwise it runs again, and so does everything
downstream whose key therefore changes. A stage that returns with failed items
(``Stage.failures``, e.g. refused exports) is recorded ``incomplete``: its outputs feed the
later stages, and the next run calls it again with ``resume=True``. A stage interrupted half-way is recorded as
``running`` with its key: the next run calls it with ``resume=True`` (distill then
continues from its ``last.pt``); a stage whose key changed starts from an empty folder.

Fingerprints: files by content (SHA-256); folders by their sorted listing of
``(relative path, size, mtime)`` (hashing tens of thousands of images on every run would
cost more than the stages it protects).

Example:
    >>> eng = Engine("runs/demo", [Stage("a", lambda ctx: {"x": 1}, config={"n": 1})])   # doctest: +SKIP
    >>> eng.run()                                                                       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgefiq.errors import DataError, UsageError
from edgefiq.pipeline.records import Record, ReportOutput, revive
from edgefiq.registry import suggest
from edgefiq.utils import sha256_file, write_json

log = logging.getLogger("edgefiq.pipeline")

STATE_FILE = "state.json"
INCOMPLETE = "incomplete"  # returned, but some of its items failed: run again next time, outputs still usable
FINISHED = ("done", INCOMPLETE)


@dataclass
class StageContext:
    """What a stage function receives.

    Attributes:
        run_dir: the run folder.
        stage_dir: ``run_dir / name``, the stage's own output folder (created).
        name: stage name.
        outputs: what every earlier stage returned, by stage name: its record
            (``edgefiq.pipeline.records``) when the stage declares one, else its mapping.
        resume: True when an earlier attempt with the same key was interrupted.
        seconds: wall time of every stage recorded in the run so far, by name (for the report).
    """

    run_dir: Path
    stage_dir: Path
    name: str
    outputs: dict[str, Any]
    resume: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def path(self, rel: str | Path) -> Path:
        """Absolute path of a run-relative output path."""
        return self.run_dir / rel

    def rel(self, p: str | Path) -> str:
        """Run-relative POSIX form of a path inside the run folder (stored in outputs)."""
        return Path(p).resolve().relative_to(self.run_dir.resolve()).as_posix()


@dataclass
class Stage:
    """One step of a run.

    Attributes:
        name: unique stage name.
        fn: ``fn(ctx) -> record`` (an instance of ``record``) or, without one, a JSON-able mapping;
            values that are run-relative paths (strings naming existing files/folders under the run
            folder) are fingerprinted.
        config: the configuration that determines the stage's result.
        depends: names of earlier stages whose outputs it consumes (default: all earlier).
        inputs: external files/folders it reads (fingerprinted into the key).
        failures: ``failures(outputs) -> int``, the items that failed inside a stage that returned
            (e.g. refused exports). With failures the stage is recorded ``incomplete``, not
            ``done``: later stages still get its outputs, and the next run calls it again with
            ``resume=True`` (keeping its folder, so what succeeded can be reused).
        record: the ``edgefiq.pipeline.records.Record`` type ``fn`` returns; state.json stores its
            ``to_json()`` and later stages get it back through ``from_json``.
    """

    name: str
    fn: Callable[[StageContext], Any]
    config: Any = None
    depends: tuple[str, ...] | None = None
    inputs: tuple[str | Path, ...] = ()
    failures: Callable[[Any], int] | None = None
    record: type[Record] | None = None

    def revive(self, data: dict[str, Any]) -> Any:
        """This stage's output from its JSON form in state.json."""
        return self.record.from_json(data) if self.record is not None else data


@dataclass
class StageReport:
    """What happened to one stage in one ``Engine.run``."""

    name: str
    status: str  # "ran", "resumed", "skipped", "not selected"
    seconds: float = 0.0
    outputs: Any = field(default_factory=dict)   # the stage's record, or its mapping (``Stage.record``)
    failed: int = 0  # items that failed inside the stage (``Stage.failures``)


def fingerprint(path: str | Path) -> str:
    """Content fingerprint of a file (SHA-256) or a folder (sorted listing with sizes and mtimes).

    Example:
        >>> fingerprint("runs/quickstart/distill/mobilenetv3_small_100/best.pt")   # doctest: +SKIP
        'sha256:4f1c...'
    """
    p = Path(path)
    if p.is_file():
        return "sha256:" + sha256_file(p)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(p.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(p).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return "dir:" + h.hexdigest()
    return "missing"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class Engine:
    """Runs ``stages`` in order inside ``run_dir`` with skip-if-unchanged and resume.

    Example:
        >>> def double(ctx):
        ...     return {"value": ctx.outputs["make"]["value"] * 2}
        >>> import tempfile
        >>> eng = Engine(tempfile.mkdtemp(), [Stage("make", lambda ctx: {"value": 21}, config={}),
        ...                                   Stage("double", double, config={})])
        >>> [r.status for r in eng.run()]
        ['ran', 'ran']
        >>> [r.status for r in eng.run()]
        ['skipped', 'skipped']
    """

    def __init__(self, run_dir: str | Path, stages: list[Stage]) -> None:
        self.run_dir = Path(run_dir)
        self.stages = stages
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names in {names}")

    # state -----------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    def load_state(self) -> dict[str, Any]:
        """The recorded state (``{"stages": {name: {...}}}``); empty when the run is new."""
        if self.state_path.is_file():
            try:
                return json.loads(self.state_path.read_text())
            except json.JSONDecodeError:
                log.warning("%s is unreadable; starting the run afresh", self.state_path)
        return {"stages": {}}

    def _save(self, state: dict[str, Any]) -> None:
        write_json(self.state_path, state)

    # keys ------------------------------------------------------------------
    def _outputs_fingerprint(self, outputs: dict[str, Any]) -> str:
        prints: dict[str, str] = {}
        for k, v in _flatten(outputs):
            if isinstance(v, str) and v and not v.startswith("/") and _is_file_or_dir(self.run_dir / v):
                prints[k] = fingerprint(self.run_dir / v)
        return _digest({"values": outputs, "files": prints})

    def stage_key(self, stage: Stage, state: dict[str, Any]) -> str:
        """The key of ``stage`` given the recorded state of its dependencies."""
        earlier = [s.name for s in self.stages[: self.stages.index(stage)]]
        deps = earlier if stage.depends is None else list(stage.depends)
        dep_prints = {d: state["stages"].get(d, {}).get("output_fingerprint", "missing") for d in deps}
        ext = {str(p): fingerprint(p) for p in stage.inputs}
        return _digest({"stage": stage.name, "config": stage.config, "deps": dep_prints, "inputs": ext})

    # running ---------------------------------------------------------------
    def select(self, only: str | None = None, start: str | None = None) -> list[str]:
        """Names of the stages to consider (``only`` one, or ``start`` and everything after)."""
        names = [s.name for s in self.stages]
        for opt, val in (("--only", only), ("--from", start)):
            if val is not None and val not in names:
                raise UsageError(f"{opt} {val!r}: no such stage (stages: {', '.join(names)}){suggest(val, names)}")
        if only is not None and start is not None:
            raise UsageError("use --only or --from, not both")
        if only is not None:
            return [only]
        if start is not None:
            return names[names.index(start):]
        return names

    def run(self, only: str | None = None, start: str | None = None) -> list[StageReport]:
        """Run the selected stages; return what happened to each stage.

        ``only``: run that stage alone (always re-run; earlier stages must have completed).
        ``start``: re-run that stage and every later one, even if unchanged (earlier stages
        must have completed).

        Raises:
            UsageError: unknown stage name, or an earlier stage needed by the selection has not run.
        """
        selected = self.select(only, start)
        forced = set(selected) if (only or start) else set()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = self.load_state()
        state.setdefault("stages", {})
        reports: list[StageReport] = []
        outputs = {s.name: s.revive(state["stages"][s.name].get("outputs", {})) for s in self.stages
                   if state["stages"].get(s.name, {}).get("status") in FINISHED}
        for stage in self.stages:
            rec = state["stages"].get(stage.name, {})
            if stage.name not in selected:
                if (only or start) and self.stages.index(stage) < self.stages.index(self._by_name(selected[0])):
                    if rec.get("status") not in FINISHED:
                        raise UsageError(f"stage {stage.name!r} has not completed in {self.run_dir}; "
                                         f"run without --only/--from first")
                reports.append(StageReport(stage.name, "not selected", outputs=outputs.get(stage.name),
                                           failed=int(rec.get("failed", 0))))
                continue
            key = self.stage_key(stage, state)
            if (stage.name not in forced and rec.get("status") == "done" and rec.get("key") == key
                    and self._outputs_fingerprint(rec.get("outputs", {})) == rec.get("output_fingerprint")):
                log.info("[%s] unchanged: skipped", stage.name)
                reports.append(StageReport(stage.name, "skipped", outputs=outputs.get(stage.name)))
                continue
            resume = rec.get("status") in ("running", INCOMPLETE) and rec.get("key") == key and stage.name not in forced
            stage_dir = self.run_dir / stage.name
            if not resume and stage_dir.exists():
                shutil.rmtree(stage_dir)  # stale results of another configuration
            stage_dir.mkdir(parents=True, exist_ok=True)
            state["stages"][stage.name] = {"status": "running", "key": key, "started": time.time()}
            self._save(state)
            log.info("[%s] %s", stage.name, "resuming" if resume else "running")
            t0 = time.perf_counter()
            ctx = StageContext(run_dir=self.run_dir, stage_dir=stage_dir, name=stage.name,
                               outputs=dict(outputs), resume=resume,
                               seconds={n: r["seconds"] for n, r in state["stages"].items() if "seconds" in r})
            out = stage.fn(ctx) or {}
            dt = time.perf_counter() - t0
            failed = int(stage.failures(out)) if stage.failures is not None else 0
            stored = out.to_json() if isinstance(out, Record) else out
            state["stages"][stage.name] = {"status": INCOMPLETE if failed else "done", "key": key, "outputs": stored,
                                           "seconds": round(dt, 3), "failed": failed,
                                           "output_fingerprint": self._outputs_fingerprint(stored),
                                           "finished": time.time()}
            self._save(state)
            outputs[stage.name] = out
            reports.append(StageReport(stage.name, "resumed" if resume else "ran", dt, out, failed))
        return reports

    def _by_name(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [kv for k, v in obj.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(obj, list):
        return [kv for i, v in enumerate(obj) for kv in _flatten(v, f"{prefix}[{i}]")]
    return [(prefix, obj)]


def run_recipe(recipe: Any, run_dir: str | Path | None = None, *, only: str | None = None,
               start: str | None = None) -> list[StageReport]:
    """Run a ``RunRecipe`` end to end (or ``only`` one stage / ``start`` from one) in ``run_dir``.

    The resolved recipe is written to ``<run_dir>/recipe.yaml``; ``recipe.threads`` sets
    torch's CPU threads for the whole run.

    Example:
        >>> from edgefiq.pipeline.recipe import load_recipe
        >>> run_recipe(load_recipe("recipes/quickstart.yaml"), "runs/quickstart")   # doctest: +SKIP
    """
    from edgefiq.pipeline.stages import build_stages
    from edgefiq.recipe import dump_resolved

    out = Path(run_dir) if run_dir is not None else recipe.default_run_dir()
    out.mkdir(parents=True, exist_ok=True)
    dump_resolved(recipe, out / "recipe.yaml")
    if recipe.threads:
        import torch

        torch.set_num_threads(recipe.threads)
    return Engine(out, build_stages(recipe)).run(only=only, start=start)


def stage_outputs(run_dir: str | Path, stage: str) -> Any:
    """The record (``edgefiq.pipeline.records``) of a finished ``stage`` of the run in ``run_dir``
    (paths relative to it).

    Raises:
        DataError: the run has no finished ``stage``.

    Example:
        >>> stage_outputs("runs/lfw-capture", "label").val   # doctest: +SKIP
        'label/val.csv'
    """
    rec = Engine(run_dir, []).load_state()["stages"].get(stage, {})
    if rec.get("status") != "done":
        raise DataError(f"{run_dir}: stage {stage!r} has not finished (run `edgefiq run RECIPE -o {run_dir}`)")
    return revive(stage, rec["outputs"])


def failed_rows(reports: list[StageReport]) -> int:
    """Artifact rows of a run that failed: the report's count if it exists, else the stages' failures.

    ``edgefiq run`` exits non-zero when this is positive (the report is written all the same).

    Example:
        >>> from edgefiq.pipeline.records import ReportOutput
        >>> failed_rows([StageReport("report", "ran", outputs=ReportOutput("report.md", "report.json", n_failed=2))])
        2
    """
    rep = next((r for r in reports if r.name == "report" and isinstance(r.outputs, ReportOutput)), None)
    if rep is not None:
        return rep.outputs.n_failed
    return sum(r.failed for r in reports)


def _is_file_or_dir(path: Path) -> bool:
    """``path.exists()`` for any string an output holds: a failure reason is no path (and may be too long for one)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
