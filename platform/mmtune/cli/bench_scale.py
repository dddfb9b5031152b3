"""``mmtune bench scale``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def bench_scale(
    patients: Annotated[int, typer.Option("--patients", min=12, help="iCTCF-like patients (512 px slices).")] = 1500,
    size: Annotated[int, typer.Option("--size", min=16, help="Raw slice size in pixels.")] = 512,
    slices: Annotated[int, typer.Option("--slices", min=1, help="Raw slices per patient.")] = 16,
    prepared_size: Annotated[int, typer.Option("--prepared-size", min=4, help="Prepared slice size S.")] = 128,
    prepared_slices: Annotated[int, typer.Option("--prepared-slices", min=1, help="Prepared slices K.")] = 16,
    volumes: Annotated[int, typer.Option("--volumes", min=12, help="3D NIfTI volumes.")] = 300,
    volume_size: Annotated[int, typer.Option("--volume-size", min=16, help="Raw volume width/height.")] = 256,
    volume_slices: Annotated[int, typer.Option("--volume-slices", min=1, help="Raw volume depth.")] = 64,
    volume_prepared_size: Annotated[int, typer.Option("--volume-prepared-size", min=4)] = 128,
    volume_prepared_depth: Annotated[int, typer.Option("--volume-prepared-depth", min=1)] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Synth processes (0 = one per CPU).")] = 0,
    ray_paths: Annotated[
        bool, typer.Option("--ray-paths/--no-ray-paths", help="Also time the Ray Data stream (a Ray Train run).")
    ] = True,
    keep: Annotated[
        Path | None, typer.Option("--keep", help="Write the raw and prepared sets here and keep them.")
    ] = None,
) -> None:
    """Realistic sizes: synth, prepare vs the decode bound at 1 and all CPUs, loaders, memory (prints one JSON)."""
    from mmtune.bench.scale import run

    result = run(
        patients=patients,
        size=size,
        slices=slices,
        prepared_size=prepared_size,
        prepared_slices=prepared_slices,
        volumes=volumes,
        volume_size=volume_size,
        volume_slices=volume_slices,
        volume_prepared_size=volume_prepared_size,
        volume_prepared_depth=volume_prepared_depth,
        batch_size=batch_size,
        workers=workers,
        ray_paths=ray_paths,
        keep=keep,
    )
    print(json.dumps(result, sort_keys=True))
