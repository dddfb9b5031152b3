"""The work of ``prepare`` that runs in Ray tasks: decode a few patients into rows of the prepared schema, and
write one shard from its parts (hashing the bytes as they are written).

The driver only plans and collects small per-patient facts, so preparing scales with the cluster's CPUs. Shard
``i`` holds the plan's patients ``[i * per_shard, (i + 1) * per_shard)`` that decoded, in plan order, however the
decode work was cut into tasks: the shard bytes do not depend on the number of CPUs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmtune.data.decode import PatientDecoder
from mmtune.data.shards import fixed_list, label_array, write_shard


def decode_rows(
    jobs: list[dict[str, Any]],
    rows: dict[str, Any],
    spec: Any,
    root: str,
    with_masks: bool,
    scaler: Any,
    tasks: list[Any],
    schema: pa.Schema,
    label_tasks: list[str],
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Decode ``jobs`` (plan order); the decoded ones as a table of the prepared schema, and per-patient facts.

    ``rows`` holds the plan's small columns for these jobs (ids, groups, split, fold, labels, raw clinical).
    """
    decoder = PatientDecoder(spec, root, with_masks)
    facts: list[dict[str, Any]] = []
    keep: list[int] = []
    images: list[bytes] = []
    masks: list[bytes | None] = []
    for i, job in enumerate(jobs):
        row = decoder.decode(job)
        facts.append(
            {
                "patient_id": row["patient_id"],
                "files": json.loads(row["files"]),
                "skipped": json.loads(row["skipped"]),
                "warnings": json.loads(row["warnings"]),
                "error": row["error"],
                "image_sha256": row["image_sha256"],
                "has_mask": row["mask"] is not None,
            }
        )
        if row["error"]:
            continue
        keep.append(i)
        images.append(row["image"])
        masks.append(row["mask"] if with_masks else None)
    pos = np.array(keep, dtype=np.int64)
    raw = rows["clinical_raw"][pos]
    n_features = raw.shape[1]
    values, missing = scaler.transform(raw)
    columns: list[pa.Array] = [
        pa.array([rows["ids"][i] for i in keep], pa.string()),
        pa.array([rows["groups"][i] for i in keep], pa.string()),
        pa.array([str(rows["split"][i]) for i in keep], pa.string()),
        pa.array(rows["fold"][pos], pa.int32()),
    ]
    by_name = {t.name: t for t in tasks}
    columns += [label_array(by_name[name], rows["labels"][name][pos]) for name in label_tasks]
    columns += [
        fixed_list(values, n_features),
        fixed_list(missing, n_features),
        fixed_list(raw, n_features),
        pa.array(images, pa.binary()),
        pa.array(masks, pa.binary()),
    ]
    return pa.Table.from_arrays(columns, schema=schema), facts


def write_parts(out: str, name: str, schema: pa.Schema, *parts: pa.Table) -> dict[str, Any]:
    """Concatenate one shard's parts and write it under ``out``; its size, rows and SHA-256 (hashed once, from
    the bytes being written). When ``out`` is not on this node's file system the bytes come back instead."""
    table = pa.concat_tables([p for p in parts if p.num_rows] or [schema.empty_table()]).combine_chunks()
    buffer = io.BytesIO()
    write_shard(table, buffer)
    data = buffer.getvalue()
    result: dict[str, Any] = {
        "name": name,
        "rows": table.num_rows,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if os.path.isdir(out):
        path = Path(out) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:  # another node without the driver's file system: the driver writes it
        result["data"] = data
    return result
