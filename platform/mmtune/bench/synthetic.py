"""Prepared data for the training and data benchmarks: the built-in synthetic data set, generated and prepared
through the real pipeline, then optionally replicated row-wise (new patient ids, same split) so the shards are large
enough to time without preparing thousands of patients through SimpleITK on a small machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mmtune.data.format import MANIFEST_NAME, SHARD_DIR, SHARD_PATTERN, read_manifest, shard_paths
from mmtune.data.integrity import record_shards

REPO_CARD = Path(__file__).resolve().parents[3] / "datasets" / "synthetic.yaml"


def bench_prepared(
    root: str | Path, *, patients: int, size: int, slices: int, replicate: int = 1, seed: int = 0
) -> Path:
    """``root/prepared``: synthetic raw data -> ``prepare`` -> ``replicate`` copies of every row."""
    from mmtune.data.prepare import prepare
    from mmtune.data.synthetic import generate

    root = Path(root)
    raw, prepared = root / "raw", root / "prepared"
    generate(raw, patients=patients, size=size, slices=slices, seed=seed)
    prepare(REPO_CARD, prepared, source=raw, overrides={"image.size": size, "image.slices": slices})
    if replicate > 1:
        replicate_rows(prepared, replicate)
    return prepared


def replicate_rows(prepared: Path, copies: int) -> None:
    """Rewrite the shards with ``copies`` copies of each row (ids ``<id>~<i>``); one shard per copy."""
    manifest = read_manifest(prepared)
    table = pa.concat_tables([pq.read_table(str(p)) for p in shard_paths(prepared, manifest)])
    ids = table["patient_id"].to_pylist()
    for path in shard_paths(prepared, manifest):
        os.unlink(path)
    names = []
    for i in range(copies):
        copy = table.set_column(
            table.schema.get_field_index("patient_id"), "patient_id", pa.array([f"{p}~{i}" for p in ids])
        )
        name = f"{SHARD_DIR}/{SHARD_PATTERN.format(index=i)}"
        pq.write_table(copy, prepared / name)
        names.append(name)
    data = json.loads((prepared / MANIFEST_NAME).read_text(encoding="utf-8"))
    data["shards"] = names
    data["shard_info"] = record_shards(prepared, names)
    data["n_patients"] = table.num_rows * copies
    (prepared / MANIFEST_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
