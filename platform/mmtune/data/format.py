"""The prepared data set format: the contract between ``mmtune data prepare`` and every reader.

A prepared data set is a directory::

    manifest.json            # Manifest below: tasks, image shape, clinical feature names + stats, counts, ...
    shards/part-00000.parquet
    shards/part-00001.parquet ...

One row per patient with these columns (``F`` clinical features, tasks named by the card):

=====================  ==============================  ====================================================
column                 Arrow type                      meaning
=====================  ==============================  ====================================================
``patient_id``         string                          id from the card's id column (unique in the set)
``group``              string                          hospital / centre ("" when the card has none)
``split``              string                          ``train`` / ``val`` / ``test``
``fold``               int32                           CV fold of train+val patients (0..k-1), -1 for test
``y_<task>``           int64 / float32 / list          label; masked = -1 (class tasks) or NaN
``clinical``           fixed_size_list<float32>[F]     features standardised with train-split stats, 0 if missing
``clinical_missing``   fixed_size_list<float32>[F]     1.0 where the raw value was missing
``clinical_raw``       fixed_size_list<float32>[F]     parsed raw values, NaN if missing (refit per fold)
``image``              binary                          raw little-endian bytes, dtype/shape in the manifest
``mask``               binary (nullable)               lesion mask bytes (uint8) or null when absent
=====================  ==============================  ====================================================

With no clinical features (F = 0) the three clinical columns are plain empty ``list<float32>`` (pyarrow cannot
round-trip a size-0 fixed list through Parquet). ``mask`` is always present; it is null in every row when the card
has no masks (``Manifest.mask`` is then None). The schema metadata repeats the image spec (``mmtune.image``).

Images are stored as raw bytes (not nested lists) because a binary column can be decoded with one
``np.frombuffer`` over the column's data buffer: ~20x faster than ``fixed_size_list<halffloat>`` (DESIGN.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from mmtune.errors import DataError
from mmtune.tasks import TaskKind, TaskSpec

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_DIR = "shards"
SHARD_PATTERN = "part-{index:05d}.parquet"

PATIENT_ID = "patient_id"
GROUP = "group"
SPLIT = "split"
FOLD = "fold"
CLINICAL = "clinical"
CLINICAL_MISSING = "clinical_missing"
CLINICAL_RAW = "clinical_raw"
IMAGE = "image"
MASK = "mask"
SPLITS = ("train", "val", "test")


class ArraySpec(BaseModel):
    """dtype + per-patient shape of a tensor stored as raw bytes in a binary column."""

    model_config = ConfigDict(extra="forbid")

    dtype: str
    shape: list[int]

    @property
    def nbytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * np.prod(self.shape))


class ImageInfo(ArraySpec):
    """``layout`` says how to read ``shape``: ``stack2d`` = [K slices, H, W]; ``volume3d`` = [D, H, W]."""

    layout: Literal["stack2d", "volume3d"] = "stack2d"
    spacing: list[float] | None = None
    value_range: list[float] = Field(default_factory=lambda: [0.0, 1.0])


class ClinicalInfo(BaseModel):
    """Feature names in column order and the train-split statistics used to standardise them."""

    model_config = ConfigDict(extra="forbid")

    features: list[str] = Field(default_factory=list)
    mean: list[float] = Field(default_factory=list)
    std: list[float] = Field(default_factory=list)
    missing_rate: list[float] = Field(default_factory=list)
    fitted_on: str = "train"


class SplitInfo(BaseModel):
    """How patients were assigned to ``split`` and ``fold``."""

    model_config = ConfigDict(extra="allow")

    method: str
    seed: int = 0
    k_folds: int = 1
    stratify_by: str | None = None
    group_column: str | None = None
    test_fraction: float = 0.0
    val_fold: int = 0  # with k_folds >= 2, split == "val" exactly where fold == val_fold


class DroppedPatient(BaseModel):
    patient_id: str
    reason: str


class SkippedFile(BaseModel):
    path: str
    reason: str


class ShardInfo(BaseModel):
    """What ``prepare`` wrote for one shard, checked before training (``mmtune.data.integrity``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    rows: int
    bytes: int
    sha256: str


class Manifest(BaseModel):
    """``manifest.json`` of a prepared data set (no PHI: ids, counts, names and statistics only)."""

    model_config = ConfigDict(extra="allow")

    format_version: int = FORMAT_VERSION
    name: str
    card_sha256: str = ""
    source_sha256: str = ""
    source_files: int = 0
    mmtune_version: str = ""
    n_patients: int
    shards: list[str]
    # one entry per shard (same order): size, rows and SHA-256; empty in manifests of mmtune before issue 11
    shard_info: list[ShardInfo] = Field(default_factory=list)
    image: ImageInfo
    mask: ArraySpec | None = None
    tasks: list[TaskSpec]
    clinical: ClinicalInfo = Field(default_factory=ClinicalInfo)
    split: SplitInfo
    # counts[split][task]: class names + "masked" (binary/multiclass); label names (positives) + "masked" (all NaN)
    # for multilabel; "labelled"/"masked" for regression; "with_mask"/"masked" for segmentation.
    counts: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)
    split_sizes: dict[str, int] = Field(default_factory=dict)
    source_layout: str = ""
    groups: dict[str, int] = Field(default_factory=dict)
    dropped: list[DroppedPatient] = Field(default_factory=list)
    skipped_files: list[SkippedFile] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.name == name:
                return spec
        known = ", ".join(t.name for t in self.tasks)
        raise DataError(f"task {name!r} is not in prepared data set {self.name!r}; it has: {known}")

    @property
    def has_mask(self) -> bool:
        return self.mask is not None


def manifest_path(root: str | Path) -> Path:
    return Path(root) / MANIFEST_NAME


def read_manifest(root: str | Path) -> Manifest:
    """Load ``root/manifest.json``; a directory that is not a prepared data set is a ``DataError``."""
    path = manifest_path(root)
    if not Path(root).is_dir():
        raise DataError(f"{root}: data directory not found")
    if not path.is_file():
        raise DataError(f"{root}: not a prepared data set (no {MANIFEST_NAME}); run `mmtune data prepare` first")
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: unreadable manifest ({str(exc).splitlines()[0]})") from None


def shard_paths(root: str | Path, manifest: Manifest | None = None) -> list[Path]:
    """Absolute shard paths in manifest order (missing shards are a ``DataError``)."""
    manifest = manifest or read_manifest(root)
    paths = [Path(root).resolve() / name for name in manifest.shards]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: shard listed in {MANIFEST_NAME} is missing")
    return paths


def encode_array(array: np.ndarray, dtype: str) -> bytes:
    """Raw little-endian C-order bytes of ``array`` cast to ``dtype``."""
    return np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def decode_binary_column(column: pa.Array | pa.ChunkedArray, spec: ArraySpec) -> np.ndarray:
    """Decode a binary column of equal-length raw arrays into ``[N, *shape]`` without per-row Python work.

    Null entries (e.g. patients without a mask) decode to zeros.
    """
    if isinstance(column, pa.ChunkedArray):
        parts = [decode_binary_column(chunk, spec) for chunk in column.chunks]
        if not parts:
            return np.zeros((0, *spec.shape), dtype=spec.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    dtype = np.dtype(spec.dtype).newbyteorder("<")
    n = len(column)
    if n == 0:
        return np.zeros((0, *spec.shape), dtype=dtype)
    if column.null_count:
        out = np.zeros((n, *spec.shape), dtype=dtype)
        for i, value in enumerate(column.to_pylist()):
            if value is not None:
                out[i] = np.frombuffer(value, dtype=dtype).reshape(spec.shape)
        return out
    if pa.types.is_large_binary(column.type):
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)
    else:
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    offsets = offsets[column.offset : column.offset + n + 1]
    start, stop = int(offsets[0]), int(offsets[-1])
    if stop - start != n * spec.nbytes:
        raise DataError(f"image column holds {stop - start} bytes for {n} rows; expected {spec.nbytes} per row")
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[start:stop]
    return data.view(dtype).reshape(n, *spec.shape)


def label_arrow_type(task: TaskSpec) -> pa.DataType:
    """Arrow type of a task's label column."""
    if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
        return pa.int64()
    if task.kind == TaskKind.MULTILABEL:
        return pa.list_(pa.float32(), len(task.classes))
    return pa.float32()


def task_has_label_column(task: TaskSpec) -> bool:
    """Segmentation labels live in ``mask`` and reconstruction targets are the image itself."""
    return task.kind not in (TaskKind.SEGMENTATION, TaskKind.RECONSTRUCTION)


def json_dumps(data: Any) -> str:
    """Stable JSON (sorted keys) so identical inputs give byte-identical manifests."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
