"""What the stages of ``edgefiq run`` hand each other: one typed record per stage, and the artifact names.

A stage returns a record; the engine stores its JSON form (``to_json``) in ``state.json`` and hands
the next stages the record again (``from_json``), so no stage reads another's output through string
keys. Paths in records are relative to the run folder.

An artifact is one model exported to one target at one precision (:class:`ArtifactRecord`): its
``variant`` is ``<target>-<precision>`` (``onnx-int8``: the export folder and a built-in model's
artifact name); its ``key`` adds the model (``face_trunk_64/structured-0.5/onnx-int8``: the eval,
bench and report rows, score files and the per-family table).

Example:
    >>> artifact_key("face_trunk_64/structured-0.5", "onnx", "int8")
    'face_trunk_64/structured-0.5/onnx-int8'
    >>> DataOutput.from_json(DataOutput("data/images", "data/train.txt", "data/val.txt").to_json()).val
    'data/val.txt'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, TypeVar, Union

R = TypeVar("R", bound="Record")

Json = dict[str, Any]   # the JSON form of a record, as stored in state.json
# a JSON document carried as it is: a sidecar's parity record, a teacher's options
JsonValue = Union[str, int, float, bool, None, list["JsonValue"], dict[str, "JsonValue"]]


def variant(target: str, precision: str) -> str:
    """``<target>-<precision>``, e.g. ``onnx-int8``."""
    return f"{target}-{precision}"


def artifact_key(model: str, target: str, precision: str) -> str:
    """``<model>/<target>-<precision>``: the artifact's name in every stage and report of a run."""
    return f"{model}/{variant(target, precision)}"


def row_key(row: Mapping[str, Any]) -> str:
    """:func:`artifact_key` of a report row (``model``, ``target``, ``precision``; report.json's layout)."""
    return artifact_key(row.get("model") or row["name"], row["target"], row["precision"])


def pruned_name(student: str, method: str, rho: float) -> str:
    """The model name of a pruned student, e.g. ``face_trunk_64/structured-0.5`` (its folder in prune/ and export/)."""
    return f"{student}/{method}-{rho:g}"


def score_file(key: str) -> str:
    """The file name of an artifact's validation scores in the eval stage folder (``scores/<name>``)."""
    return key.replace("/", "__") + ".csv"


class Record:
    """A stage output: a dataclass whose JSON form is its fields (nested records and lists of them
    declared in ``_nested``)."""

    _nested: ClassVar[dict[str, type[Record]]] = {}   # field -> record type of the field (or of its items)

    def to_json(self) -> Json:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}   # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        names = {f.name for f in dataclasses.fields(cls)}   # type: ignore[arg-type]
        kwargs = {k: v for k, v in data.items() if k in names}
        for name, kind in cls._nested.items():
            if isinstance(kwargs.get(name), list):
                kwargs[name] = [kind.from_json(v) for v in kwargs[name]]
            elif isinstance(kwargs.get(name), Mapping):
                kwargs[name] = kind.from_json(kwargs[name])
        return cls(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- data, label
@dataclass(frozen=True)
class DataOutput(Record):
    """The data stage: the images folder (with ``index.csv`` when degraded) and the split lists."""

    images: str
    train: str
    val: str
    n_images: int = 0
    n_train: int = 0
    n_val: int = 0
    synthetic: bool = False
    n_identities: int = 0


@dataclass(frozen=True)
class TeacherRef(Record):
    """The teacher that labelled a run: a ``make_teacher`` name and its options."""

    name: str
    options: dict[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelOutput(Record):
    """The label stage: every image's teacher score and the train/val label CSVs."""

    labels: str
    train: str
    val: str
    teacher: TeacherRef
    n_labelled: int = 0
    _nested: ClassVar[dict[str, type[Record]]] = {"teacher": TeacherRef}

    def split(self, name: str) -> str:
        """The label CSV of split ``train`` or ``val``."""
        return {"train": self.train, "val": self.val}[name]


# ----------------------------------------------------------------------------- distill, prune
@dataclass(frozen=True)
class ModelRecord(Record):
    """A checkpoint of the run: a distilled student (method ``none``, rho 0) or a pruned copy of one."""

    name: str
    student: str
    checkpoint: str
    method: str = "none"
    rho: float = 0.0
    arch: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)   # distill's last validated epoch (students only)


@dataclass(frozen=True)
class ModelsOutput(Record):
    """The distill stage (the students) or the prune stage (their pruned copies), by model name.

    JSON: ``{name: {...}}`` (the distill stage stores ``best``, not ``checkpoint``, for each student).
    """

    models: dict[str, ModelRecord] = field(default_factory=dict)

    def to_json(self) -> Json:
        out = {}
        for name, m in self.models.items():
            d = m.to_json()
            del d["name"]
            if m.method == "none":   # a student: its best checkpoint, as distill names it
                d["best"] = d.pop("checkpoint")
                d = {k: d[k] for k in ("arch", "best", "metrics")}
            else:
                d = {k: d[k] for k in ("student", "method", "rho", "checkpoint")}
            out[name] = d
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelsOutput:
        models = {}
        for name, d in data.items():
            if "best" in d:
                models[name] = ModelRecord(name, name, d["best"], arch=d.get("arch"), metrics=d.get("metrics") or {})
            else:
                models[name] = ModelRecord(name, d["student"], d["checkpoint"], d["method"], float(d["rho"]))
        return cls(models)


# ----------------------------------------------------------------------------- export
@dataclass(frozen=True)
class MixedPrecision(Record):
    """What accuracy control kept float in an int8 artifact: ``int8_units`` of ``units`` blocks are int8."""

    units: int
    int8_units: int
    float_units: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ArtifactRecord(Record):
    """One model exported to one target and precision: what export made of it, carried to eval, bench,
    report and ship. ``path`` is None and ``status`` ``failed: <reason>`` when the export was refused."""

    name: str
    student: str
    target: str
    precision: str
    checkpoint: str
    method: str = "none"
    rho: float = 0.0
    path: str | None = None
    status: str = "ok"
    parity: dict[str, JsonValue] = field(default_factory=dict)   # the sidecar's parity record (edgefiq.export.parity)
    mixed_precision: MixedPrecision | None = None
    _nested: ClassVar[dict[str, type[Record]]] = {"mixed_precision": MixedPrecision}

    @property
    def key(self) -> str:
        """:func:`artifact_key`: ``<model>/<target>-<precision>``."""
        return artifact_key(self.name, self.target, self.precision)

    @property
    def variant(self) -> str:
        return variant(self.target, self.precision)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.path is not None


@dataclass(frozen=True)
class ExportOutput(Record):
    """The export stage: every artifact (failed ones too) and the calibration / verification folders."""

    artifacts: list[ArtifactRecord] = field(default_factory=list)
    calibration: str | None = None
    verify: str | None = None
    _nested: ClassVar[dict[str, type[Record]]] = {"artifacts": ArtifactRecord}

    @property
    def written(self) -> list[ArtifactRecord]:
        """The artifacts that exist (export succeeded)."""
        return [a for a in self.artifacts if a.path]


# ----------------------------------------------------------------------------- eval
@dataclass(frozen=True)
class EvalRow(Record):
    """One quality source of the eval stage (teacher, random or an artifact key) on the validation images.

    JSON: ``pauc@<fmr>`` and ``fmr_resolvable@<fmr>`` keys, as report.json has them.
    """

    source: str
    kind: str
    path: str | None = None
    srcc: float | None = None
    plcc: float | None = None
    pauc: dict[str, float | None] = field(default_factory=dict)            # FMR (``0.001``) -> pAUC x1e3
    fmr_resolvable: dict[str, bool] = field(default_factory=dict)
    thresholds: list[dict[str, float]] = field(default_factory=list)     # edgefiq.metrics.thresholds rows

    def metrics(self) -> dict[str, float | None]:
        """``srcc``, ``plcc`` and ``pauc@<fmr>``: the report row's metric columns."""
        return {"srcc": self.srcc, "plcc": self.plcc, **{f"pauc@{f}": v for f, v in self.pauc.items()}}

    def to_json(self) -> Json:
        d: Json = {"source": self.source, "kind": self.kind, **({"path": self.path} if self.path else {}),
                   **self.metrics()}
        d |= {f"fmr_resolvable@{f}": v for f, v in self.fmr_resolvable.items()}
        return d | ({"thresholds": self.thresholds} if self.thresholds else {})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvalRow:
        at = {p: {k.split("@", 1)[1]: v for k, v in data.items() if k.startswith(p + "@")}
              for p in ("pauc", "fmr_resolvable")}
        return cls(data["source"], data.get("kind", "artifact"), data.get("path"), data.get("srcc"),
                   data.get("plcc"), at["pauc"], at["fmr_resolvable"], list(data.get("thresholds") or []))


@dataclass(frozen=True)
class FamilyRow(Record):
    """pAUC of every source on one degradation family and its SRCC with the teacher there
    (``edgefiq.eval.core.by_family``)."""

    family: str
    n_images: int
    pauc: dict[str, dict[str, float | None]] = field(default_factory=dict)   # source -> FMR -> pAUC x1e3
    srcc: dict[str, float | None] = field(default_factory=dict)              # source -> SRCC vs the teacher
    ratio_ci: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)  # source -> FMR -> 90% interval


@dataclass(frozen=True)
class EvalOutput(Record):
    """The eval stage: one row per source, the per-family table, the protocol and the curves file."""

    rows: list[EvalRow] = field(default_factory=list)
    by_degradation: list[FamilyRow] | None = None
    fr_model: str | None = None
    protocol: str | None = None
    n_images: int = 0
    n_identities: int = 0
    n_genuine: int = 0
    n_impostor: int = 0
    curves: str | None = None
    _nested: ClassVar[dict[str, type[Record]]] = {"rows": EvalRow, "by_degradation": FamilyRow}

    def row(self, source: str) -> EvalRow | None:
        return next((r for r in self.rows if r.source == source), None)


# ----------------------------------------------------------------------------- bench, report
@dataclass(frozen=True)
class BenchRecord(Record):
    """One timed configuration of an artifact (``edgefiq.bench.benchmark``), by artifact key."""

    key: str
    path: str
    threads: int = 1
    batch: int = 1
    p50_ms: float | None = None
    status: str = "ok"
    size_bytes: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchRecord:
        """Also reads a bench row as ``edgefiq.bench.benchmark`` writes it (``size_mb``, no ``size_bytes``)."""
        mb = data.get("size_mb")
        size = data.get("size_bytes") or (round(mb * 1e6) if isinstance(mb, (int, float)) else None)
        return cls(data["key"], data["path"], int(data.get("threads", 1)), int(data.get("batch", 1)),
                   data.get("p50_ms"), str(data.get("status", "ok")), size)


@dataclass(frozen=True)
class TeacherBenchRecord(Record):
    """The teacher's network passes on one runtime (``edgefiq.bench.teacher.benchmark_teacher``)."""

    target: str
    precision: str
    threads: int = 1
    batch: int = 1
    p50_ms: float | None = None
    passes: int | None = None
    networks: list[str] = field(default_factory=list)
    status: str = "ok"
    reason: str | None = None


@dataclass(frozen=True)
class BenchOutput(Record):
    """The bench stage: artifact timings, the teacher's, and the file with every bench column."""

    rows: list[BenchRecord] = field(default_factory=list)
    teacher: list[TeacherBenchRecord] = field(default_factory=list)
    table: str | None = None   # bench/bench.json: the full rows (percentiles, RSS, load time, ...)
    _nested: ClassVar[dict[str, type[Record]]] = {"rows": BenchRecord, "teacher": TeacherBenchRecord}


@dataclass(frozen=True)
class ReportOutput(Record):
    """The report stage: its files and whether every artifact row is ok."""

    report_md: str
    report_json: str
    plots: list[str] = field(default_factory=list)
    all_ok: bool = True
    n_failed: int = 0


STAGE_RECORDS: dict[str, type[Record]] = {
    "data": DataOutput, "label": LabelOutput, "distill": ModelsOutput, "prune": ModelsOutput,
    "export": ExportOutput, "eval": EvalOutput, "bench": BenchOutput, "report": ReportOutput,
}


def revive(stage: str, data: Mapping[str, Any]) -> Any:
    """The record of ``stage`` from its JSON form (``state.json``); a stage without a record type keeps
    its mapping."""
    kind = STAGE_RECORDS.get(stage)
    return kind.from_json(data) if kind is not None else data
