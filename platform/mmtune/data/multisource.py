"""What a run reads from one or more prepared data sets: merged tasks, union of clinical features, row selection.

Several prepared data sets can train one model (multi-dataset multi-task learning). Each source keeps its own rows
and labels; tasks a source does not label are masked for its rows, clinical features it lacks are marked missing.
This module only reads manifests and builds pyarrow expressions, so it is cheap to import and call on the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow.compute as pc

from mmtune.config.run import DataConfig
from mmtune.data.format import (
    FOLD,
    GROUP,
    PATIENT_ID,
    SPLIT,
    ImageInfo,
    Manifest,
    read_manifest,
    shard_paths,
)
from mmtune.data.integrity import verify_prepared
from mmtune.errors import DataError
from mmtune.tasks import TaskKind, TaskSpec


@dataclass(frozen=True)
class Source:
    """One prepared data set of a run."""

    index: int
    name: str
    path: Path
    manifest: Manifest
    weight: float

    @property
    def shards(self) -> list[Path]:
        return shard_paths(self.path, self.manifest)

    def has_task(self, task: str) -> bool:
        return any(t.name == task for t in self.manifest.tasks)


@dataclass(frozen=True)
class DataInfo:
    """Everything a model, a loss or a loader needs to know about the data of one run."""

    image: ImageInfo
    features: list[str]
    tasks: list[TaskSpec]
    sources: list[Source]
    fold: int | None = None
    test_group: str | None = None
    warnings: list[str] = field(default_factory=list)
    val_ids: frozenset[str] | None = None  # data.cv: this run's validation patients (mmtune.data.cv)

    @property
    def n_clinical(self) -> int:
        return len(self.features)

    @property
    def needs_mask(self) -> bool:
        return any(t.kind == TaskKind.SEGMENTATION for t in self.tasks)

    @property
    def refit_clinical(self) -> bool:
        """A fold or a held-out group changes the training rows, so clinical statistics are refitted on them."""
        return self.fold is not None or self.test_group is not None or self.val_ids is not None

    def val_ids_for(self, source: Source) -> frozenset[str] | None:
        """``data.cv`` partitions the first (primary) data source; the others keep their stored split, so their
        labelled rows keep training every fold (multi-dataset multi-task learning with k-fold CV)."""
        return self.val_ids if source.index == 0 else None

    @property
    def multi_source(self) -> bool:
        return len(self.sources) > 1

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise KeyError(name)


def resolve_data(cfg: DataConfig, task_names: list[str]) -> DataInfo:
    """Read the manifests of ``cfg``'s sources and merge what they say; disagreements are one-line ``DataError``s."""
    sources = _sources(cfg)
    if not sources:
        raise DataError("data.path: no prepared data set given")
    image = _common_image(sources)
    tasks = [_merged_task(name, sources) for name in task_names]
    features: list[str] = []
    for source in sources:
        features += [f for f in source.manifest.clinical.features if f not in features]
    warnings = []
    for spec in tasks:
        if spec.kind == TaskKind.SEGMENTATION:
            for source in sources:
                if source.manifest.mask is None:
                    warnings.append(f"{source.path}: no lesion masks; task {spec.name!r} is masked for its patients")
    if cfg.test_group is not None and not any(cfg.test_group in s.manifest.groups for s in sources):
        known = sorted({g for s in sources for g in s.manifest.groups})
        raise DataError(f"data.test_group: group {cfg.test_group!r} is not in the data; groups: {', '.join(known)}")
    if cfg.fold is not None:
        k = max(s.manifest.split.k_folds for s in sources)
        if cfg.fold >= k:
            raise DataError(f"data.fold: fold {cfg.fold} does not exist; the data has {k} fold(s) (0..{k - 1})")
    val_ids = None
    if cfg.cv is not None:  # --- data.cv hook (ablations): a fresh stratified partition, see mmtune.data.cv
        from mmtune.data.cv import validation_ids

        cv = cfg.cv  # several sources: the partition is the first source's (see DataInfo.val_ids_for)
        val_ids = validation_ids(sources[0].path, sources[0].manifest, cv.k, cv.fold, cv.seed, cv.stratify_by)
    return DataInfo(image, features, tasks, sources, cfg.fold, cfg.test_group, warnings, val_ids)


def _sources(cfg: DataConfig) -> list[Source]:
    out: list[Source] = []
    names: set[str] = set()
    for index, src in enumerate(cfg.sources):
        path = Path(src.path).expanduser().resolve()
        manifest = read_manifest(path)
        verify_prepared(path, manifest)  # hashed once per node, then remembered (mmtune.data.integrity)
        name = src.name or manifest.name
        if name in names:
            name = f"{name}_{index}"
        names.add(name)
        out.append(Source(index, name, path, manifest, src.weight))
    return out


def _common_image(sources: list[Source]) -> ImageInfo:
    first = sources[0]
    for other in sources[1:]:
        a, b = first.manifest.image, other.manifest.image
        if (a.shape, a.layout, a.dtype) != (b.shape, b.layout, b.dtype):
            raise DataError(
                f"{other.path}: image {b.layout} {b.dtype} {b.shape} differs from {first.path}: "
                f"{a.layout} {a.dtype} {a.shape}; prepare both with the same image spec"
            )
    return first.manifest.image


def _merged_task(name: str, sources: list[Source]) -> TaskSpec:
    """The task as all sources that label it agree on it (same kind, same classes in the same order)."""
    found: list[tuple[Source, TaskSpec]] = [(s, t) for s in sources for t in s.manifest.tasks if t.name == name]
    if not found:
        paths = ", ".join(str(s.path) for s in sources)
        known = sorted({t.name for s in sources for t in s.manifest.tasks})
        raise DataError(f"tasks: task {name!r} is not in the prepared data ({paths}); it has: {', '.join(known)}")
    first_source, spec = found[0]
    for source, other in found[1:]:
        if other.kind != spec.kind or list(other.classes) != list(spec.classes):
            raise DataError(
                f"task {name!r}: {first_source.path} has {spec.kind.value} {spec.classes} but {source.path} has "
                f"{other.kind.value} {other.classes}; the data sets must agree on a shared task's classes"
            )
    return spec


def split_expression(
    split: str,
    fold: int | None = None,
    test_group: str | None = None,
    *,
    engine: Literal["arrow", "ray"] = "arrow",
    val_ids: frozenset[str] | None = None,
) -> Any:
    """Rows of ``split`` (train/val/test) as a predicate: a pyarrow expression, or a Ray Data expression that
    ``Dataset.filter(expr=...)`` pushes down into the Parquet read.

    * default: the ``split`` column;
    * ``fold = f``: validation is ``fold == f``, training every other non-test row;
    * ``test_group = g``: the test set is ``group == g``; training and validation use the other groups only
      (with no fold, rows whose split was ``test`` in other groups join training: leave-one-group-out tests on g).
    """
    if split not in ("train", "val", "test"):
        raise ValueError(split)
    if engine == "ray":
        from ray.data.expressions import col, lit
    else:
        col, lit = pc.field, pc.scalar
    if val_ids is not None:  # data.cv: validation = this fold of a fresh partition of the non-test rows
        not_test = col(SPLIT) != lit("test")
        if split == "test":
            return ~not_test
        ids = sorted(val_ids)
        in_val = col(PATIENT_ID).is_in(ids) if engine == "ray" else col(PATIENT_ID).isin(ids)
        return not_test & (in_val if split == "val" else ~in_val)
    if test_group is not None:
        if split == "test":
            return col(GROUP) == lit(test_group)
        other = col(GROUP) != lit(test_group)
        val = (col(FOLD) == lit(fold)) & (col(SPLIT) != lit("test")) if fold is not None else col(SPLIT) == lit("val")
        return other & (val if split == "val" else ~val)
    if fold is None:
        return col(SPLIT) == lit(split)
    if split == "test":
        return col(SPLIT) == lit("test")
    in_fold = col(FOLD) == lit(fold)
    not_test = col(SPLIT) != lit("test")
    return not_test & (in_fold if split == "val" else ~in_fold)
