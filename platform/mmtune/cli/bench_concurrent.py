"""``mmtune bench concurrent``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def bench_concurrent(
    trials: Annotated[int, typer.Option("--trials", min=1, help="Concurrent trial processes on this node.")] = 4,
    patients: Annotated[int, typer.Option("--patients", min=12, help="Synthetic patients to generate.")] = 120,
    size: Annotated[int, typer.Option("--size", min=16, help="Slice size S.")] = 128,
    slices: Annotated[int, typer.Option("--slices", min=1, help="Slices per patient K.")] = 16,
    replicate: Annotated[int, typer.Option("--replicate", min=1, help="Copies of every prepared row.")] = 16,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    data: Annotated[
        Path | None, typer.Option("--data", help="Use this prepared data set instead of making one.")
    ] = None,
) -> None:
    """Memory of N concurrent trials against N x one trial, node cache vs private copies (prints one JSON)."""
    from mmtune.bench.concurrent import run
    from mmtune.data.format import read_manifest

    if data is not None:
        read_manifest(data)  # a DataError (exit 2) when it is not a prepared data set
    result = run(
        trials=trials,
        patients=patients,
        size=size,
        slices=slices,
        replicate=replicate,
        batch_size=batch_size,
        data=data,
    )
    print(json.dumps(result, sort_keys=True))
