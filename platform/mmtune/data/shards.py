"""Arrow schema and deterministic Parquet shard writing for prepared data sets (``mmtune.data.format``).

Shards hold a fixed number of patients in patient order and are written with fixed pyarrow options (no timestamps
in any metadata), so the same rows always give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmtune.data import format as fmt
from mmtune.tasks import TaskKind, TaskSpec

TARGET_SHARD_BYTES = 128 * 1024 * 1024
MAX_SHARD_PATIENTS = 1024


def clinical_arrow_type(n_features: int) -> pa.DataType:
    """``fixed_size_list<float32>[F]``; with no features a plain empty ``list<float32>`` (size-0 fixed lists do not
    survive a Parquet round trip in pyarrow)."""
    return pa.list_(pa.float32(), n_features) if n_features > 0 else pa.list_(pa.float32())


def prepared_schema(tasks: list[TaskSpec], n_features: int, image: fmt.ImageInfo) -> pa.Schema:
    """The exact column order and types of ``mmtune.data.format``; image spec in the schema metadata."""
    fields = [
        pa.field(fmt.PATIENT_ID, pa.string(), nullable=False),
        pa.field(fmt.GROUP, pa.string(), nullable=False),
        pa.field(fmt.SPLIT, pa.string(), nullable=False),
        pa.field(fmt.FOLD, pa.int32(), nullable=False),
    ]
    fields += [pa.field(t.label_column, fmt.label_arrow_type(t)) for t in tasks if fmt.task_has_label_column(t)]
    clinical = clinical_arrow_type(n_features)
    fields += [
        pa.field(fmt.CLINICAL, clinical),
        pa.field(fmt.CLINICAL_MISSING, clinical),
        pa.field(fmt.CLINICAL_RAW, clinical),
        pa.field(fmt.IMAGE, pa.binary(), nullable=False),
        pa.field(fmt.MASK, pa.binary(), nullable=True),
    ]
    metadata = {
        b"mmtune.format_version": str(fmt.FORMAT_VERSION).encode(),
        b"mmtune.image": json.dumps(image.model_dump(), sort_keys=True).encode(),
    }
    return pa.schema(fields, metadata=metadata)


def fixed_list(values: np.ndarray, n_features: int) -> pa.Array:
    """``[N, F]`` float32 -> one list column of the clinical type."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if n_features == 0:
        return pa.array([[] for _ in range(values.shape[0])], type=pa.list_(pa.float32()))
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), n_features)


def label_array(task: TaskSpec, values: np.ndarray) -> pa.Array:
    if task.kind == TaskKind.MULTILABEL:
        width = len(task.classes)
        flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, width)
    return pa.array(values, type=fmt.label_arrow_type(task))


def shard_size(row_bytes: int) -> int:
    """Patients per shard: about 128 MiB of image bytes, at most 1024 (fixed by the card, so deterministic)."""
    return int(max(1, min(MAX_SHARD_PATIENTS, TARGET_SHARD_BYTES // max(1, row_bytes))))


def _compression(schema: pa.Schema) -> dict[str, str]:
    """zstd everywhere except the image bytes, which stay uncompressed for the loader's one-``frombuffer`` read."""
    out: dict[str, str] = {}
    for field in schema:
        leaf = (
            f"{field.name}.list.element"
            if pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type)
            else field.name
        )
        out[leaf] = "NONE" if field.name == fmt.IMAGE else "ZSTD"
    return out


def write_shard(table: pa.Table, path: Path | BinaryIO) -> None:
    """One shard, one row group, fixed options (to a path or an open binary file)."""
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        path,
        compression=_compression(table.schema),
        row_group_size=max(1, table.num_rows),
        use_dictionary=[fmt.GROUP, fmt.SPLIT],
        write_statistics=[fmt.PATIENT_ID, fmt.GROUP, fmt.SPLIT, fmt.FOLD],
        store_schema=True,
    )
