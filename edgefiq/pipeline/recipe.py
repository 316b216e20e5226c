"""The run recipe: one YAML file describing a whole ``edgefiq run`` (data -> ... -> bench).

``RunRecipe`` composes one frozen section per stage. Every setting is typed: the rarely
changed ones of a stage sit in its ``options`` dataclass (``PruneOptions``, ``ExportRecipeOptions``,
``BenchOptions``, whose fields are the keywords of the stage's library function). Sections
whose library defines its own config (``DistillConfig``) keep those settings as a mapping
here and are validated against that library's dataclass when the recipe is loaded, and
``teacher.options`` against the teacher's constructor, so the library stays the one source
of truth and a typo anywhere is an error with a suggestion before any stage runs.

Loading is strict (``edgefiq.recipe.from_mapping``): unknown keys and wrong types are
errors naming the key. ``${NAME:-default}`` variables expand from ``--var`` then the
environment; ``--set a.b=value`` overrides apply to the raw mapping before validation, so
they reach free-form sections (``distill.defaults.epochs=1``) and list items
(``distill.students.0.arch=emo_1m``) too.

Example:
    >>> cfg = load_recipe("recipes/quickstart.yaml", overrides=["distill.defaults.epochs=1"])  # doctest: +SKIP
    >>> cfg.export.targets                                                                      # doctest: +SKIP
    ('onnx', 'openvino', 'tflite')
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edgefiq.errors import RecipeError
from edgefiq.recipe import from_mapping, load_yaml, to_dict
from edgefiq.registry import suggest

STAGES: tuple[str, ...] = ("data", "label", "distill", "prune", "export", "eval", "bench", "report")


@dataclass(frozen=True)
class SyntheticSection:
    """Generate the built-in synthetic sample instead of reading real images (quickstart, tests)."""

    n_identities: int = 24
    per_identity: int = 6
    seed: int = 0


@dataclass(frozen=True)
class DegradeSection:
    """Degraded copies of every source image (``edgefiq.data.degrade.make_degraded_set``)."""

    enabled: bool = True
    kinds: tuple[str, ...] = ("gaussian_blur", "motion_blur", "noise", "jpeg", "downscale", "occlusion",
                              "exposure_under", "exposure_over")
    severities: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    per_image: int = 1
    jitter: float = 0.0   # seeded per-copy severity offset in [-jitter, jitter]: near-continuous labels
    seed: int = 0


@dataclass(frozen=True)
class SplitSection:
    """Identity-disjoint train/validation split.

    With ``pairs`` (an LFW ``pairs.txt``), validation identities are those appearing in
    ``val_folds``; otherwise a seeded ``val_fraction`` of identities is held out.
    """

    pairs: str | None = None
    val_folds: tuple[int, ...] = (6, 7)
    val_fraction: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class DataSection:
    """Where the images come from and how they are split.

    ``images`` is an identity tree ``<identity>/<image>``; required unless the recipe has
    a ``synthetic`` section. ``max_identities`` keeps a seeded subset (for CI budgets).
    """

    images: str | None = None
    max_identities: int | None = None
    degrade: DegradeSection = field(default_factory=DegradeSection)
    split: SplitSection = field(default_factory=SplitSection)
    on_bad_image: Literal["error", "skip"] = "error"


@dataclass(frozen=True)
class TeacherSection:
    """The quality teacher (``TEACHERS`` registry name + its options)."""

    name: str = "severity"
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64


@dataclass(frozen=True)
class StudentSection:
    """One student to distill: an architecture and ``DistillConfig`` fields for it only.

    ``taught_by`` names an earlier student of the list: two-stage distillation, where that
    student's best checkpoint labels every augmented (and, with ``augment.degrade_p``, degraded)
    training view online, and validation still uses the run teacher's labels. ``prune_rhos``
    replaces ``prune.rhos`` for this student (e.g. a larger ratio to reach a compute budget).
    """

    def key(self) -> dict[str, Any]:
        """The student as stage keys hash it: the optional fields only when set, so run folders of
        recipes written before they existed keep their keys."""
        out = to_dict(self)
        return {k: v for k, v in out.items() if k not in ("taught_by", "prune_rhos") or v is not None}

    arch: str
    name: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    taught_by: str | None = None
    prune_rhos: tuple[float, ...] | None = None   # this student's pruning ratios instead of prune.rhos

    @property
    def label(self) -> str:
        """Folder/report name of this student."""
        return self.name or self.arch


@dataclass(frozen=True)
class DistillSection:
    """Students and the ``DistillConfig`` fields they share (``defaults``)."""

    students: tuple[StudentSection, ...] = (StudentSection(arch="mobilenetv3_small_100"),)
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PruneOptions:
    """Rarely changed pruning settings (``edgefiq.pipeline.pruning.prune_checkpoint`` keywords)."""

    importance: Literal["l1", "l2"] = "l1"
    scope: Literal["global", "layer", "channel", "normalized"] = "global"
    round_to: int | None = None
    ignored_layers: tuple[str, ...] = ()
    iterative_steps: int = 1
    seed: int = 0
    quant_aware: bool = False


@dataclass(frozen=True)
class PruneSection:
    """Every (method, rho) pair is applied to every student; ``rhos: []`` disables pruning."""

    methods: tuple[Literal["structured", "l1", "random"], ...] = ("structured",)
    rhos: tuple[float, ...] = (0.3,)
    finetune_epochs: int = 0
    finetune_max_steps: int = 0   # cap on recovery steps per epoch (0 = full epochs)
    options: PruneOptions = field(default_factory=PruneOptions)


@dataclass(frozen=True)
class ExportRecipeOptions:
    """Rarely changed export settings (``edgefiq.export.export_checkpoint`` keywords).

    ``calibration_method`` is ``default``, ``auto`` or a method of the targets' backends
    (checked against the backend registry when the recipe loads); ``accuracy_control``
    applies to int8 exports only. ``workers``: processes exporting targets in parallel (0 = one per core,
    at most one per target; 1 = in the run's own process). A worker's torch runs on its share of the cores,
    and TFLite int8 calibrates through torch, so a TFLite int8 artifact can differ at the 4th decimal of
    its SRCC between 1 and more workers (results/lfw/check-2026-12-07-same-host); nothing else changes.
    """

    calibration_method: str = "default"
    accuracy_control: float | None = None
    channels_last: bool = False
    calibration_limit: int | None = 300
    verify_limit: int | None = 500
    threads: int | None = None
    workers: int = 0


@dataclass(frozen=True)
class ExportSection:
    """Every model (students and pruned students) is exported to every target x precision."""

    targets: tuple[str, ...] = ("onnx", "openvino", "tflite")
    precisions: tuple[Literal["fp32", "fp16", "int8"], ...] = ("fp32", "int8")
    calibration_size: int = 64
    options: ExportRecipeOptions = field(default_factory=ExportRecipeOptions)


@dataclass(frozen=True)
class EvalSection:
    """Evaluation on the validation identities.

    ``fr_model`` is a face recognition model file for the EDC comparisons; ``fr_arch`` with
    no file means a randomly initialised network of that architecture (seed ``fr_seed``), and
    ``fr_arch: pixels`` a 16x16 thumbnail embedding: both only for the synthetic demo, and
    labelled as such in the report. ``edc: false`` skips the
    EDC/pAUC columns (e.g. a flat folder of MOS-labelled images has no identities).
    ``bootstrap``: identity resamples for the 90% interval of each artifact's pAUC relative to the
    teacher in every degradation family (``edgefiq.metrics.bootstrap``; 0 = none).
    """

    edc: bool = True
    fr_model: str | None = None
    fr_arch: str | None = None
    fr_seed: int = 0
    fmr: tuple[float, ...] = (1e-3, 1e-4)
    discard_limit: float = 0.3
    convention: Literal["fixed", "reestimate"] = "fixed"
    max_impostors: int | None = 200000
    max_images: int | None = None
    batch_size: int = 64
    bootstrap: int = 0


@dataclass(frozen=True)
class BenchOptions:
    """The timing protocol (``edgefiq.bench.benchmark`` keywords; ``edgefiq.timing``)."""

    warmup: int = 5
    min_runs: int = 30
    min_time_s: float = 1.0
    rounds: int = 1


@dataclass(frozen=True)
class BenchSection:
    """Latency benchmark of every artifact."""

    threads: tuple[int, ...] = (1,)
    batches: tuple[int, ...] = (1,)
    options: BenchOptions = field(default_factory=BenchOptions)


@dataclass(frozen=True)
class RunRecipe:
    """A whole run: data -> label -> distill -> prune -> export -> eval -> bench -> report."""

    name: str
    run_dir: str | None = None
    seed: int = 0
    threads: int | None = None
    synthetic: SyntheticSection | None = None
    data: DataSection = field(default_factory=DataSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    distill: DistillSection = field(default_factory=DistillSection)
    prune: PruneSection = field(default_factory=PruneSection)
    export: ExportSection = field(default_factory=ExportSection)
    eval: EvalSection = field(default_factory=EvalSection)
    bench: BenchSection = field(default_factory=BenchSection)

    def default_run_dir(self) -> Path:
        """``run_dir`` if set, else ``runs/<name>``."""
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.name


def load_recipe(path: str | Path, variables: dict[str, str] | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> RunRecipe:
    """Load, override and strictly validate a run recipe.

    Args:
        path: the YAML file.
        variables: values for ``${NAME}`` placeholders (before the environment).
        overrides: ``key.sub=value`` strings (values parsed as YAML), applied before validation.

    Raises:
        RecipeError: missing file, bad YAML, unknown key (with suggestion), wrong type, bad value.

    Example:
        >>> load_recipe("recipes/lfw-mobilefacenet.yaml", {"LFW": "../shared/data/lfw-dev"},   # doctest: +SKIP
        ...             ["distill.defaults.epochs=2"]).name
        'lfw-mobilefacenet'
    """
    raw = load_yaml(path, variables)
    raw = apply_raw_overrides(raw, overrides)
    cfg = from_mapping(RunRecipe, raw, "")
    validate(cfg)
    return cfg


def apply_raw_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a raw recipe mapping (list items by index).

    Example:
        >>> apply_raw_overrides({"a": {"b": 1}}, ["a.b=2", "a.c=[1, 2]"])
        {'a': {'b': 2, 'c': [1, 2]}}
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"override {item!r} must look like key.sub=value")
        key, text = item.split("=", 1)
        keys = [k for k in key.strip().split(".") if k]
        if not keys:
            raise RecipeError(f"override {item!r} has an empty key")
        value = yaml.safe_load(text)
        node: Any = out
        for i, k in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, list):
                if not k.isdigit() or int(k) >= len(node):
                    raise RecipeError(f"override {key!r}: {k!r} is not an index of a {len(node)}-item list")
                if last:
                    node[int(k)] = value
                else:
                    node = node[int(k)]
                continue
            if not isinstance(node, dict):
                raise RecipeError(f"override {key!r}: {'.'.join(keys[:i])!r} has no sub-keys")
            if last:
                node[k] = value
            else:
                if node.get(k) is None:
                    node[k] = {}
                node = node[k]
    return out


def validate(cfg: RunRecipe) -> None:
    """Cross-section checks, and each student's distill settings against ``DistillConfig``.

    Raises:
        RecipeError: naming the offending key.
    """
    if cfg.synthetic is None and not cfg.data.images:
        raise RecipeError("data.images: required (or add a `synthetic:` section for the built-in sample)", key="data.images")
    labels = [s.label for s in cfg.distill.students]
    if not labels:
        raise RecipeError("distill.students: list at least one student", key="distill.students")
    dup = {n for n in labels if labels.count(n) > 1}
    if dup:
        raise RecipeError(f"distill.students: duplicate student name(s) {sorted(dup)}; set `name:` to tell them apart",
                          key="distill.students")
    for r in cfg.prune.rhos:
        if not 0.0 < r < 1.0:
            raise RecipeError(f"prune.rhos: {r} is not in (0, 1)", key="prune.rhos")
    for i, s in enumerate(cfg.distill.students):
        if any(not 0.0 < r < 1.0 for r in s.prune_rhos or ()):
            raise RecipeError(f"distill.students.{i}.prune_rhos: {list(s.prune_rhos or ())} must be in (0, 1)",
                              key=f"distill.students.{i}.prune_rhos")
    if not 0.0 < cfg.data.split.val_fraction < 1.0:
        raise RecipeError("data.split.val_fraction: must be in (0, 1)", key="data.split.val_fraction")
    if cfg.eval.bootstrap < 0:
        raise RecipeError(f"eval.bootstrap: {cfg.eval.bootstrap} resamples; use 0 (none) or more", key="eval.bootstrap")
    for i, s in enumerate(cfg.distill.students):
        if s.taught_by is not None and s.taught_by not in labels[:i]:
            raise RecipeError(f"distill.students.{i}.taught_by: {s.taught_by!r} is not a student listed before "
                              f"{s.label!r} (earlier: {', '.join(labels[:i]) or 'none'})", key=f"distill.students.{i}.taught_by")
        distill_config(cfg.distill, s, seed=cfg.seed, where=f"distill[{s.label}]")
    _check_names(cfg)
    _check_teacher_options(cfg.teacher)
    _check_calibration_method(cfg.export)


def _check_names(cfg: RunRecipe) -> None:
    """Registry names: students, teacher, export targets."""
    from edgefiq.registry import BACKENDS, STUDENTS, TEACHERS

    for reg, names, where in ((STUDENTS, [s.arch for s in cfg.distill.students], "distill.students.arch"),
                              (TEACHERS, [cfg.teacher.name], "teacher.name"),
                              (BACKENDS, list(cfg.export.targets), "export.targets")):
        known = reg.names()
        for n in names:
            if n not in known:
                raise RecipeError(f"{where}: unknown {reg.kind} {n!r}{suggest(n, known)}", key=where)


def _check_teacher_options(t: TeacherSection) -> None:
    """``teacher.options`` keys must be parameters of that teacher (its constructor is the schema)."""
    import inspect

    from edgefiq.registry import TEACHERS

    params = inspect.signature(TEACHERS.get(t.name)).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    known = sorted(n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)
    for key in t.options:
        if key not in known and not open_ended:
            raise RecipeError(f"unknown key 'teacher.options.{key}' for teacher {t.name!r}{suggest(str(key), known)}",
                              key=f"teacher.options.{key}")
    _check_teacher_values(t)


def _check_teacher_values(t: TeacherSection) -> None:
    """``teacher.options`` values the teacher itself refuses (its ``check_options``: what ``label`` says)."""
    from edgefiq.errors import UsageError
    from edgefiq.registry import TEACHERS

    try:
        TEACHERS.get(t.name).check_options(dict(t.options))
    except UsageError as e:
        raise RecipeError(f"teacher.options: {str(e).replace('--', '')}", key="teacher.options") from None


def _check_calibration_method(ex: ExportSection) -> None:
    """``export.options.calibration_method``: default, auto, or a method one of the targets offers."""
    from edgefiq.registry import BACKENDS

    method = ex.options.calibration_method
    offered = ["default", "auto"] + [m for t in ex.targets for m in BACKENDS.get(t).calibration_methods]
    if method not in offered:
        raise RecipeError(f"export.options.calibration_method: {method!r} is not offered by "
                          f"{', '.join(ex.targets)}{suggest(method, offered)}", key="export.options.calibration_method")


def option_kwargs(options: PruneOptions | ExportRecipeOptions | BenchOptions) -> dict[str, Any]:
    """The typed options of a section as keyword arguments of its library function (field = parameter).

    Example:
        >>> option_kwargs(BenchOptions(min_runs=3))["min_runs"]
        3
    """
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def stage_config(section: Any) -> dict[str, Any]:
    """A section as the stage key hashes it: its ``options`` reduced to the values that differ from
    the defaults (what a recipe writes), so typed options keep the keys of existing run folders.

    Example:
        >>> stage_config(BenchSection(options=BenchOptions(min_runs=3)))["options"]
        {'min_runs': 3}
    """
    out = to_dict(section)
    opts = getattr(section, "options", None)
    if dataclasses.is_dataclass(opts):
        default = type(opts)()
        out["options"] = {k: v for k, v in out["options"].items() if getattr(opts, k) != getattr(default, k)}
    return out


def distill_mapping(section: DistillSection, student: StudentSection, seed: int) -> dict[str, Any]:
    """The merged ``DistillConfig`` fields of one student (defaults, then the student's own; the run's seed
    unless they set one)."""
    merged = _deep_merge(copy.deepcopy(section.defaults), student.config)
    merged.setdefault("seed", seed)
    return merged


def distill_config(section: DistillSection, student: StudentSection, *, seed: int, where: str = "distill",
                   data: dict[str, Any] | None = None) -> Any:
    """Build the distill team's ``DistillConfig`` for ``student`` of the recipe's ``distill`` section
    (validating it).

    ``data`` holds the run-specific fields the pipeline fills in (images root, label CSVs).
    """
    from edgefiq.distill.config import DistillConfig

    mapping = distill_mapping(section, student, seed)
    mapping = _fill_student(DistillConfig, mapping, student, data)
    return from_mapping(DistillConfig, mapping, where)


def _fill_student(cls: Any, mapping: dict[str, Any], student: StudentSection,
                  data: dict[str, Any] | None) -> dict[str, Any]:
    """Put the architecture and (when given) the run's data paths into the ``DistillConfig`` mapping."""
    out = dict(mapping)
    if "student" in out and out["student"] != student.arch:
        raise RecipeError(f"distill: student {student.label!r} sets `student: {out['student']}`; "
                          "name the architecture in `arch:` only")
    out["student"] = student.arch
    if data:
        out = _deep_merge(out, data)
    return out


def data_fields_for(*, images: str, train_labels: str, val_labels: str, index: str | None = None) -> dict[str, Any]:
    """The ``DistillConfig`` fields a run fills in: images root, train/val label CSVs, degradation index.

    Example:
        >>> data_fields_for(images="img", train_labels="t.csv", val_labels="v.csv")["data"]["labels"]
        't.csv'
    """
    data: dict[str, Any] = {"images": images, "labels": train_labels, "val_labels": val_labels}
    if index:
        data["index"] = index
    return {"data": data}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = _deep_merge(dict(base[k]), v)
        else:
            base[k] = copy.deepcopy(v)
    return base
