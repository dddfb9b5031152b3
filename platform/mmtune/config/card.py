"""The dataset card: what a user edits to describe a raw CT + clinical data set (``datasets/*.yaml``).

A card says where the raw files are and how they are laid out (``source``), how to turn images into a fixed-size
tensor (``image``), which table columns are clinical features (``clinical``), which columns define labels and how
raw values map to classes (``tasks``, ``label_columns``), and how patients are split (``split``). Every mistake is
a one-line ``ConfigError`` naming the YAML key path, raised before any file is read.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mmtune.config.loading import StrictModel, apply_overrides, load_yaml, validate
from mmtune.errors import ConfigError
from mmtune.registry import Registry
from mmtune.tasks import TaskKind, TaskSpec

# Source layouts (``source.layout``): one module per layout in ``mmtune.data.layouts`` registers its class here
# (options, keys, structural columns, discovery); imported by name on first lookup, so config imports no data code.
SOURCE_LAYOUTS: Registry = Registry("source layout", populate="mmtune.data.layouts")

TASK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

# Raw cells that mean "no value" in clinical tables (compared after stripping whitespace, case-insensitively).
DEFAULT_MISSING = ["", "na", "n/a", "nan", "none", "null", "-", "--", "/", "unknown", "not available"]
# Yes/no style cells of a multilabel column.
DEFAULT_MULTILABEL_MAP: dict[str, float] = {
    "0": 0.0,
    "1": 1.0,
    "0.0": 0.0,
    "1.0": 1.0,
    "no": 0.0,
    "yes": 1.0,
    "false": 0.0,
    "true": 1.0,
    "negative": 0.0,
    "positive": 1.0,
}


def inside_source(value: str) -> str:
    """``value`` unchanged when it is a path below the source folder; ``ValueError`` when it could leave it."""
    text = value.replace("\\", "/")
    if not text.strip():
        raise ValueError("expected a path inside the source folder, got an empty string")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or text.startswith("~"):
        raise ValueError(f"{value!r} is absolute; give a path relative to the source folder (source.path)")
    if ".." in text.split("/"):
        raise ValueError(f"{value!r}: '..' would leave the source folder (source.path)")
    return value


class SourceSpec(StrictModel):
    """Where the raw data live and how they are laid out.

    ``ictcf``: one folder per patient (``patient_dir`` with ``{id}`` = the table's patient id) holding image files
    matched by ``image_glob`` (JPG/PNG slices, a DICOM series, or one NIfTI/MHA volume) and an optional mask file
    (``mask_glob``); the clinical table sits in ``path``.
    ``manifest``: ``clinical_table`` is a CSV with one row per patient whose ``image_column`` holds a volume file,
    a DICOM folder, or slice files separated by ``path_separator`` (paths relative to the CSV).
    """

    layout: str = Field(description="a registered source layout (`mmtune list layouts`)")
    path: str = Field(".", description="raw data folder, relative to the card file (overridable by --source)")
    clinical_table: str = Field("clinical.csv", description="CSV table inside `path`, one row per patient")
    patient_dir: str = Field("{id}", description="ictcf: a patient's folder name, `{id}` = its patient id")
    image_glob: str = Field("CT/*", description="ictcf: image files inside a patient folder")
    mask_glob: str | None = Field(None, description="ictcf: optional lesion mask file inside a patient folder")
    image_column: str = Field("image", description="manifest: column with the image path(s)")
    mask_column: str | None = Field(None, description="manifest: optional column with a mask path")
    path_separator: str = Field(";", min_length=1, description="manifest: separator of several slice files")
    # --- path-template layouts (mmtune.data.layouts): `files` (patients = files matching a template) and `table`
    options: dict[str, Any] = Field(
        default_factory=dict, description="files/table: templates and parsing options (mmtune.data.layouts)"
    )

    @field_validator("clinical_table", "patient_dir", "image_glob", "mask_glob")
    @classmethod
    def _inside_source(cls, value: str | None) -> str | None:
        """Paths and globs relative to the source folder may not leave it (no absolute path, no ``..`` part)."""
        return None if value is None else inside_source(value)

    @field_validator("layout", mode="before")
    @classmethod
    def _known_layout(cls, value: Any) -> Any:
        if not (isinstance(value, str) and value in SOURCE_LAYOUTS):
            names = [repr(n) for n in SOURCE_LAYOUTS.registration_order()]
            shown = type(value).__name__ if isinstance(value, (dict, list)) else repr(value)
            raise ValueError(f"Input should be {', '.join(names[:-1])} or {names[-1]} (got {shown})")
        return value

    @model_validator(mode="after")
    def _layout_keys(self) -> SourceSpec:
        given = self.model_fields_set
        for layout in SOURCE_LAYOUTS:
            wrong = sorted(layout.factory.keys & given) if layout.name != self.layout else []
            if wrong:
                raise ValueError(
                    f"{', '.join(wrong)} only applies to layout {layout.name!r} (layout is {self.layout!r})"
                )
        own = self.layout_class
        own.check_source(self)
        if own.options_model is not None:
            own.parse_options(self.options)
            if not own.reads_clinical_table and "clinical_table" in given:
                raise ValueError(
                    f"clinical_table does not apply to layout {self.layout!r} (labels come from the paths)"
                )
        elif self.options:
            with_options = [e.name for e in SOURCE_LAYOUTS if e.factory.options_model is not None]
            raise ValueError(
                f"options only applies to layouts {' and '.join(with_options)} (layout is {self.layout!r})"
            )
        return self

    @property
    def layout_class(self) -> Any:
        """The registered layout class (``mmtune.data.layouts``) that reads this source."""
        return SOURCE_LAYOUTS.get(self.layout, "source.layout")

    @property
    def has_masks(self) -> bool:
        return self.layout_class.has_masks(self)


class Window(StrictModel):
    """An intensity window in Hounsfield units: values map linearly from [center - width/2, center + width/2]."""

    center: float = -600.0
    width: float = Field(1500.0, gt=0)


class ClaheSpec(StrictModel):
    """Contrast-limited adaptive histogram equalisation (SimpleITK ``AdaptiveHistogramEqualization``)."""

    radius: int = Field(8, ge=1, description="half-size of the local neighbourhood in pixels of the output")
    alpha: float = Field(0.3, ge=0, le=1, description="0 = classic histogram equalisation, 1 = unsharp mask")
    beta: float = Field(0.3, ge=0, le=1, description="0 = unsharp mask, 1 = no change; the contrast limit")


class ImageSpec(StrictModel):
    """How raw images become one fixed-size tensor per patient, values in [0, 1]."""

    kind: Literal["stack2d", "volume3d"] = "stack2d"
    size: int = Field(ge=4, le=2048, description="output height = width in pixels")
    slices: int | None = Field(None, ge=1, le=1024, description="stack2d: K slices chosen evenly (padded if fewer)")
    depth: int | None = Field(None, ge=1, le=1024, description="volume3d: output depth D")
    spacing: list[float] | None = Field(
        None, description="volume3d: resample to this [z, y, x] spacing in mm, then centre crop/pad to D x S x S"
    )
    window: Window = Field(default_factory=Window, description="HU window for DICOM / NIfTI / MHA sources")
    scale_8bit: list[float] = Field(
        default_factory=lambda: [0.0, 255.0], description="[low, high] raw range of 8-bit JPG/PNG slices -> [0, 1]"
    )
    clahe: bool | ClaheSpec = Field(False, description="contrast-limited adaptive histogram equalisation")
    intensity: Literal["window", "percentile"] = Field(
        "window",
        description="window: `window` (HU) / `scale_8bit`; percentile: each patient's 0.5-99.5th percentile -> [0, 1] "
        "(radiographs and volumes without Hounsfield units)",
    )

    @model_validator(mode="after")
    def _shape_keys(self) -> ImageSpec:
        if self.kind == "stack2d":
            if self.slices is None:
                raise ValueError("stack2d needs `slices` (K slices per patient)")
            if self.depth is not None or self.spacing is not None:
                raise ValueError("`depth` and `spacing` apply to kind volume3d; stack2d uses `slices`")
        else:
            if self.depth is None:
                raise ValueError("volume3d needs `depth` (output slices D)")
            if self.slices is not None:
                raise ValueError("`slices` applies to kind stack2d; volume3d uses `depth` (and `spacing`)")
            if self.spacing is not None and (len(self.spacing) != 3 or min(self.spacing) <= 0):
                raise ValueError("`spacing` must be three positive numbers [z, y, x] in mm")
        if len(self.scale_8bit) != 2 or self.scale_8bit[1] <= self.scale_8bit[0]:
            raise ValueError("`scale_8bit` must be [low, high] with low < high")
        return self

    @property
    def shape(self) -> list[int]:
        depth = self.slices if self.kind == "stack2d" else self.depth
        return [int(depth or 1), self.size, self.size]

    @property
    def clahe_spec(self) -> ClaheSpec | None:
        if self.clahe is True:
            return ClaheSpec()
        return self.clahe or None


class ParseSpec(StrictModel):
    """How quirky raw clinical cells become numbers (``36.6°C`` -> 36.6, ``<0.5`` -> 0.25, ``12&#8593;`` -> 12)."""

    strip_flags: bool = Field(True, description="drop abnormal-value flags (↑ ↓ &#8593; &#8595; and `flags`)")
    flags: list[str] = Field(default_factory=list, description="extra flag strings to drop, e.g. ['(H)', '(L)']")
    censored: Literal["half", "value", "missing"] = Field(
        "half", description="`<x`: x/2 (half), x (value) or missing; `>x` is x unless missing"
    )
    strip_units: bool = Field(True, description="ignore text after the number (units such as °C, mg/L, %)")
    missing: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING), description="cells meaning missing")
    numeric_threshold: float = Field(
        0.9, gt=0, le=1, description="auto-selected columns need this share of present cells to parse as numbers"
    )


class ClinicalSpec(StrictModel):
    """Which table columns become clinical features and how they are parsed."""

    include: list[str] | None = Field(None, description="feature columns; default: every numeric column")
    exclude: list[str] = Field(default_factory=list, description="columns never used as features")
    categorical: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="column -> {raw value: number}, e.g. Gender: {Male: 1, Female: 0}"
    )
    parse: ParseSpec = Field(default_factory=ParseSpec)


class TaskSpecCard(StrictModel):
    """A task to derive from the table: which column(s), which classes, how raw values map to them."""

    name: str
    kind: TaskKind
    column: str | None = Field(None, description="table column holding the raw label")
    columns: list[str] | None = Field(None, description="multilabel: one column per label")
    classes: list[str] | None = Field(None, description="ordered class names (index = label value)")
    map: dict[str, Any] = Field(
        default_factory=dict,
        description="raw value -> class name (binary/multiclass) or 0/1 (multilabel); absent = identity",
    )
    drop: list[str] = Field(default_factory=list, description="raw values that drop the patient (globs allowed)")
    unlabelled: list[str] = Field(
        default_factory=list, description="raw values meaning 'no label' (masked); empty cells are always masked"
    )

    @field_validator("map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # YAML reads `0: Control` with an int key; raw table cells are text.
        if isinstance(value, dict):
            return {_as_text(k): v for k, v in value.items()}
        return value

    @field_validator("drop", "unlabelled", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_as_text(v) for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpecCard:
        if not TASK_NAME.match(self.name):
            raise ValueError(f"task name {self.name!r} must be an identifier (letters, digits, _)")
        kind = self.kind
        if kind == TaskKind.MULTILABEL:
            if not self.columns:
                raise ValueError("multilabel needs `columns` (one table column per label)")
            if self.column is not None:
                raise ValueError("multilabel takes `columns`, not `column`")
            if self.classes is not None and len(self.classes) != len(self.columns):
                raise ValueError(f"`classes` names {len(self.classes)} labels but `columns` has {len(self.columns)}")
            for raw, value in self.map.items():
                if value not in (0, 1, True, False):
                    raise ValueError(f"map[{raw!r}] must be 0 or 1 for a multilabel task (got {value!r})")
        elif kind in (TaskKind.SEGMENTATION, TaskKind.RECONSTRUCTION):
            if self.column or self.columns or self.map or self.drop or self.unlabelled:
                raise ValueError(f"{kind.value} tasks take their target from the images; remove column/map/drop")
        else:
            if not self.column:
                raise ValueError(f"{kind.value} needs `column` (the table column with the raw label)")
            if self.columns is not None:
                raise ValueError(f"{kind.value} takes `column`, not `columns`")
        if kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
            need = 2
            if not self.classes or len(self.classes) < need or (kind == TaskKind.BINARY and len(self.classes) != 2):
                expect = "exactly 2" if kind == TaskKind.BINARY else "at least 2"
                raise ValueError(f"{kind.value} needs `classes` with {expect} names (index = label)")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("`classes` repeats a name")
            for raw, target in self.map.items():
                if target not in self.classes:
                    raise ValueError(f"map[{raw!r}] = {target!r} is not one of classes {self.classes}")
        if kind == TaskKind.REGRESSION and (self.map or self.classes):
            raise ValueError("regression takes numbers from `column`; `map` and `classes` do not apply")
        return self

    @property
    def source_columns(self) -> list[str]:
        if self.columns:
            return list(self.columns)
        return [self.column] if self.column else []

    def spec(self) -> TaskSpec:
        """The ``TaskSpec`` written into the prepared manifest."""
        if self.kind == TaskKind.MULTILABEL:
            classes = list(self.classes or self.columns or [])
        elif self.kind == TaskKind.SEGMENTATION:
            classes = list(self.classes or ["background", "lesion"])
        else:
            classes = list(self.classes or [])
        return TaskSpec(name=self.name, kind=self.kind, classes=classes)


class SplitSpec(StrictModel):
    """Patient-level split: a held-out test set plus k folds (val = fold ``val_fold``), or a given column.

    ``stratified``: test and folds stratified by the labels of ``stratify_by`` (random when unset).
    ``group``: whole groups (hospitals) go to test (``test_groups`` or a ``test_fraction`` of groups) and to folds.
    ``given``: the table's ``column`` says train / val / test per patient.
    """

    method: Literal["stratified", "group", "given"] = "stratified"
    test_fraction: float = Field(0.2, ge=0, lt=1)
    k_folds: int = Field(5, ge=1, le=100, description="folds of non-test patients; 1 = one train/val split")
    val_fraction: float | None = Field(None, gt=0, lt=1, description="k_folds 1 only: share of non-test for val")
    val_fold: int = Field(0, ge=0, description="the fold marked split=val")
    seed: int = 0
    stratify_by: str | None = Field(None, description="a binary/multiclass task whose labels stratify the split")
    column: str | None = Field(None, description="given: table column with train/val/test")
    group_column: str | None = Field(None, description="group: the column whose groups stay whole (default `group`)")
    test_groups: list[str] | None = Field(None, description="group: these groups are the test set")

    @field_validator("test_groups", mode="before")
    @classmethod
    def _groups_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_as_text(v) for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SplitSpec:
        given = self.model_fields_set
        if self.method == "given":
            if not self.column:
                raise ValueError("method given needs `column` (table column with train/val/test)")
            wrong = sorted(given & {"test_fraction", "val_fraction", "k_folds", "test_groups", "stratify_by"})
            if wrong:
                raise ValueError(f"{', '.join(wrong)} do not apply to method given (the column decides)")
            self.k_folds = 1
        elif self.column is not None:
            raise ValueError("`column` applies to method given only")
        if self.method != "group" and ("test_groups" in given or "group_column" in given):
            raise ValueError("`test_groups` and `group_column` apply to method group only")
        if self.k_folds > 1 and self.val_fraction is not None:
            raise ValueError("`val_fraction` is implied by k_folds (1/k); set k_folds: 1 to use val_fraction")
        if self.k_folds > 1 and self.val_fold >= self.k_folds:
            raise ValueError(f"val_fold {self.val_fold} must be below k_folds {self.k_folds}")
        return self

    @property
    def effective_val_fraction(self) -> float:
        return self.val_fraction if self.val_fraction is not None else 0.2


class DatasetCard(StrictModel):
    """A dataset card (``datasets/<name>.yaml``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    source: SourceSpec
    patient_id: str = Field("Patient ID", description="table column with the patient id")
    group: str | None = Field(None, description="table column with the hospital / centre")
    image: ImageSpec
    clinical: ClinicalSpec = Field(default_factory=ClinicalSpec)
    label_columns: list[str] = Field(
        default_factory=list, description="columns that define or leak a label; never features (task columns are)"
    )
    tasks: list[TaskSpecCard] = Field(min_length=1)
    split: SplitSpec = Field(default_factory=SplitSpec)

    @property
    def label_defining_columns(self) -> dict[str, str]:
        """Column -> why it is a label column: every task's source column plus ``label_columns``."""
        out: dict[str, str] = {}
        for column in self.label_columns:
            out[column] = "listed in label_columns"
        for task in self.tasks:
            for column in task.source_columns:
                out[column] = f"source of task {task.name!r}"
        return out

    @property
    def structural_columns(self) -> dict[str, str]:
        """Columns with a job other than being a feature: id, group, given split, image/mask paths."""
        out = {self.patient_id: "patient_id"}
        if self.group:
            out[self.group] = "group"
        if self.split.column:
            out[self.split.column] = "split.column"
        if self.split.group_column:
            out[self.split.group_column] = "split.group_column"
        self.source.layout_class.add_structural_columns(self.source, self.patient_id, out)
        return out

    @property
    def task_specs(self) -> list[TaskSpec]:
        return [t.spec() for t in self.tasks]

    @property
    def split_group_column(self) -> str | None:
        return self.split.group_column or self.group


class LoadedCard:
    """A validated card plus where it came from (relative source paths resolve against the card's folder).

    ``sha256`` hashes the card file's bytes plus the ``--set`` overrides (sorted JSON): any edit of the card, or
    another override, changes it; a new mmtune version with new card defaults does not.
    """

    def __init__(self, card: DatasetCard, path: Path, overrides: dict[str, Any] | None = None) -> None:
        self.card = card
        self.path = path
        digest = hashlib.sha256(path.read_bytes())
        if overrides:
            digest.update(b"\n--set " + json.dumps(overrides, sort_keys=True, default=str).encode("utf-8"))
        self.sha256 = digest.hexdigest()

    def source_root(self, override: str | Path | None = None) -> Path:
        if override is not None:
            return Path(override).expanduser().resolve()
        return (self.path.parent / self.card.source.path).resolve()


def _as_text(value: Any) -> str:
    """YAML scalars as the text a CSV cell would hold (``1`` -> ``"1"``, ``true`` -> ``"true"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def cross_check(card: DatasetCard) -> tuple[str, str] | None:
    """Checks spanning several sections; the first problem as (YAML key path, message)."""
    names = [t.name for t in card.tasks]
    for i, task in enumerate(card.tasks):
        if names.count(task.name) > 1:
            return f"tasks[{i}].name", f"task {task.name!r} is listed twice"
        if task.kind == TaskKind.SEGMENTATION and not card.source.has_masks:
            key = card.source.layout_class.mask_key
            return f"tasks[{i}].kind", f"a segmentation task needs masks; set {key}"
    if card.split.stratify_by is not None:
        task = next((t for t in card.tasks if t.name == card.split.stratify_by), None)
        if task is None:
            return "split.stratify_by", f"no task named {card.split.stratify_by!r}; tasks: {', '.join(names)}"
        if task.kind not in (TaskKind.BINARY, TaskKind.MULTICLASS):
            return "split.stratify_by", f"task {task.name!r} is {task.kind.value}; expected a binary/multiclass task"
    if card.split.method == "group" and not card.split_group_column:
        return "split.method", "method group needs `group` (or split.group_column): the column of whole groups"
    leaky = card.label_defining_columns
    structural = card.structural_columns
    for i, column in enumerate(card.clinical.include or []):
        if column in leaky:
            return f"clinical.include[{i}]", f"{column!r} defines a label ({leaky[column]}); it cannot be a feature"
        if column in structural:
            return f"clinical.include[{i}]", f"{column!r} is the {structural[column]} column; it cannot be a feature"
    for column in card.clinical.categorical:
        if column in leaky:
            return f"clinical.categorical.{column}", f"defines a label ({leaky[column]}); it cannot be a feature"
    return None


def load_card(path: str | Path, overrides: dict[str, Any] | None = None) -> DatasetCard:
    """Load and validate a dataset card; any problem is a one-line ``ConfigError`` naming the YAML key path.

    ``overrides`` are dotted ``--set`` keys (``{"image.size": 64}``) applied before validation.
    """
    return load_card_with_source(path, overrides).card


def load_card_with_source(path: str | Path, overrides: dict[str, Any] | None = None) -> LoadedCard:
    """Like ``load_card`` but keeps the card's path and hash (for the manifest and relative source paths)."""
    path = Path(path).expanduser()
    path = path.resolve() if path.exists() else path
    data = apply_overrides(load_yaml(path), overrides or {})
    card = validate(DatasetCard, data, str(path))
    problem = cross_check(card)
    if problem is not None:
        raise card_error(path, *problem)
    return LoadedCard(card, path, overrides)


def card_error(path: str | Path, key: str, message: str) -> ConfigError:
    """A ``ConfigError`` in the card's usual ``file: key.path: message`` form."""
    return ConfigError(f"{path}: {key}: {message}")
