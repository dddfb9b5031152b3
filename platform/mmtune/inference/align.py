"""Map a prepared data set onto what a trained model expects (``ModelSpec``), or say in one line why not.

* Image geometry (layout, slices x size, value range) must equal the model's: a model does not rescale.
* Clinical features are matched by name; each is standardised with the model's *training* statistics from the
  data's raw values. Features the model knows but the data lacks become missing (value 0, missing indicator 1,
  as in training); features only the data has are ignored. Both lists are returned so reports can print them.
* Tasks are matched by name, classes by class name (the data may use another order or a subset of the model's
  classes). Model tasks the data lacks are predicted with masked labels; data tasks the model lacks are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmtune.data.format import Manifest
from mmtune.errors import DataError
from mmtune.tasks import TaskKind, TaskSpec
from mmtune.training.model_spec import ModelSpec

SPLIT_CHOICES = ("test", "val", "train", "all")


class AlignmentError(DataError):
    """Data that the model cannot score (geometry, task kinds, class names)."""


@dataclass
class Aligned:
    """Model-ready numpy columns of the selected patients plus what had to be adapted."""

    info: object  # mmtune.data.multisource.DataInfo (the model's view of this data)
    columns: dict[str, np.ndarray]
    meta: pd.DataFrame  # patient_id, group, split
    manifest: Manifest
    missing_features: list[str] = field(default_factory=list)
    extra_features: list[str] = field(default_factory=list)
    unlabelled_tasks: list[str] = field(default_factory=list)
    ignored_tasks: list[str] = field(default_factory=list)

    @property
    def labelled_tasks(self) -> list[str]:
        return [t.name for t in self.info.tasks if t.name not in self.unlabelled_tasks]  # type: ignore[attr-defined]


def _geometry(image: object) -> str:
    return f"{image.layout} {list(image.shape)} values {list(image.value_range)}"  # type: ignore[attr-defined]


def check_geometry(spec: ModelSpec, manifest: Manifest, data_path: Path) -> None:
    a, b = spec.image, manifest.image
    if (a.layout, list(a.shape), list(a.value_range)) != (b.layout, list(b.shape), list(b.value_range)):
        raise AlignmentError(
            f"{data_path}: image geometry {_geometry(b)} differs from the model's {_geometry(a)}; prepare the data "
            "with the model's image settings (card image: kind, slices, size, window)"
        )


def task_mapping(model_task: TaskSpec, data_task: TaskSpec, data_path: Path) -> np.ndarray | None:
    """Data class index -> model class index (None when identical); a kind or class-name mismatch is an error."""
    if model_task.kind != data_task.kind:
        raise AlignmentError(
            f"{data_path}: task {model_task.name!r} is {data_task.kind.value} in the data but "
            f"{model_task.kind.value} in the model"
        )
    if model_task.kind not in (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.MULTILABEL):
        return None
    unknown = [c for c in data_task.classes if c not in model_task.classes]
    binary_differs = model_task.kind == TaskKind.BINARY and set(data_task.classes) != set(model_task.classes)
    if unknown or binary_differs:
        raise AlignmentError(
            f"{data_path}: task {model_task.name!r} has classes {list(data_task.classes)} in the data but "
            f"{list(model_task.classes)} in the model (classes are matched by name)"
        )
    mapping = np.array([model_task.classes.index(c) for c in data_task.classes], dtype=np.int64)
    if list(mapping) == list(range(len(model_task.classes))):
        return None
    return mapping


def align(spec: ModelSpec, data_path: str | Path, split: str = "test") -> Aligned:
    """See the module docstring; ``split`` is ``test``, ``val``, ``train`` or ``all``."""
    import pyarrow.dataset as pads

    from mmtune.data.format import (
        CLINICAL_RAW,
        GROUP,
        IMAGE,
        MASK,
        PATIENT_ID,
        SPLIT,
        decode_binary_column,
        read_manifest,
        shard_paths,
        task_has_label_column,
    )
    from mmtune.data.loading import DATASET, HAS_MASK, _labels_to_numpy, fixed_list_to_numpy, masked_labels
    from mmtune.data.multisource import DataInfo, Source

    if split not in SPLIT_CHOICES:
        raise AlignmentError(f"--split: expected one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    path = Path(data_path).expanduser().resolve()
    manifest = read_manifest(path)
    check_geometry(spec, manifest, path)
    data_tasks = {t.name: t for t in manifest.tasks}
    mappings: dict[str, np.ndarray | None] = {}
    for task in spec.tasks:
        if task.name in data_tasks and task_has_label_column(task):
            mappings[task.name] = task_mapping(task, data_tasks[task.name], path)
    needs_mask = any(t.kind == TaskKind.SEGMENTATION for t in spec.tasks)
    columns = [PATIENT_ID, GROUP, SPLIT, IMAGE, CLINICAL_RAW]
    columns += [data_tasks[name].label_column for name in mappings]
    if needs_mask and manifest.mask is not None:
        columns.append(MASK)
    dataset = pads.dataset([str(p) for p in shard_paths(path, manifest)], format="parquet")
    table = dataset.to_table(columns=columns)
    if split != "all":
        import pyarrow.compute as pc

        table = table.filter(pc.field(SPLIT) == pc.scalar(split))
    if table.num_rows == 0:
        raise AlignmentError(f"{path}: no patients in split {split!r} (splits: {manifest.split_sizes})")
    n = table.num_rows
    own = manifest.clinical.features
    raw = fixed_list_to_numpy(table[CLINICAL_RAW], len(own)).astype(np.float64)
    model_raw = np.full((n, len(spec.features)), np.nan)
    for j, name in enumerate(spec.features):
        if name in own:
            model_raw[:, j] = raw[:, own.index(name)]
    missing = ~np.isfinite(model_raw)
    values = (model_raw - np.asarray(spec.mean)) / np.asarray(spec.std)
    values[missing] = 0.0
    cols: dict[str, np.ndarray] = {
        IMAGE: decode_binary_column(table[IMAGE], manifest.image),
        DATASET: np.zeros(n, np.int64),
        "clinical": values.astype(np.float32),
        "clinical_missing": missing.astype(np.float32),
        PATIENT_ID: np.asarray(table[PATIENT_ID].to_pylist(), dtype=object),
    }
    for task in spec.tasks:
        if not task_has_label_column(task):
            continue
        if task.name not in mappings:
            cols[task.label_column] = _labels_to_numpy(masked_labels(task, n), task)
            continue
        labels = _labels_to_numpy(
            table[data_tasks[task.name].label_column],
            task if task.kind != TaskKind.MULTILABEL else data_tasks[task.name],
        )
        cols[task.label_column] = _remap(labels, task, data_tasks[task.name], mappings[task.name])
    if needs_mask:
        spec_mask = manifest.mask
        if spec_mask is not None:
            cols[MASK] = decode_binary_column(table[MASK], spec_mask)
            cols[HAS_MASK] = np.asarray(table[MASK].is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        else:
            cols[MASK] = np.zeros((n, *spec.image.shape), np.uint8)
            cols[HAS_MASK] = np.zeros(n, bool)
    source = Source(0, manifest.name, path, manifest, 1.0)
    image = manifest.image
    info = DataInfo(image, list(spec.features), list(spec.tasks), [source])
    meta = pd.DataFrame(
        {"patient_id": cols[PATIENT_ID], "group": table[GROUP].to_pylist(), "split": table[SPLIT].to_pylist()}
    )
    unlabelled = [t.name for t in spec.tasks if t.name not in mappings and task_has_label_column(t)]
    ignored = [name for name in data_tasks if name not in {t.name for t in spec.tasks}]
    return Aligned(
        info=info,
        columns=cols,
        meta=meta,
        manifest=manifest,
        missing_features=[f for f in spec.features if f not in own],
        extra_features=[f for f in own if f not in spec.features],
        unlabelled_tasks=unlabelled,
        ignored_tasks=ignored,
    )


def _remap(labels: np.ndarray, task: TaskSpec, data_task: TaskSpec, mapping: np.ndarray | None) -> np.ndarray:
    if mapping is None:
        return labels
    if task.kind == TaskKind.MULTILABEL:
        out = np.full((labels.shape[0], len(task.classes)), np.nan, np.float32)
        out[:, mapping] = labels
        return out
    return np.where(labels >= 0, mapping[np.clip(labels, 0, None)], -1).astype(np.int64)
