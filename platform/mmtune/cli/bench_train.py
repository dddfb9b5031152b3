"""``mmtune bench train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def bench_train(
    patients: Annotated[int, typer.Option("--patients", min=12, help="Synthetic patients to generate.")] = 120,
    size: Annotated[int, typer.Option("--size", min=16, help="Slice size S.")] = 64,
    slices: Annotated[int, typer.Option("--slices", min=1, help="Slices per patient K.")] = 8,
    replicate: Annotated[int, typer.Option("--replicate", min=1, help="Copies of every prepared row.")] = 16,
    epochs: Annotated[int, typer.Option("--epochs", min=2, help="Epochs per run (the first is warm-up).")] = 4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    width: Annotated[int, typer.Option("--width", min=1, help="small_cnn width (compute per step).")] = 8,
    aim: Annotated[bool, typer.Option("--aim/--no-aim", help="Track the trials in a temporary Aim repo.")] = True,
    gpu: Annotated[bool, typer.Option("--gpu", help="Run all three sides on one CUDA GPU (Ray Train: nccl).")] = False,
    epoch_seconds: Annotated[
        float, typer.Option("--epoch-seconds", min=0, help="Grow the generated data to epochs this long (0: off).")
    ] = 10.0,
    data: Annotated[
        Path | None, typer.Option("--data", help="Use this prepared data set instead of making one.")
    ] = None,
    scaling: Annotated[
        bool, typer.Option("--scaling/--no-scaling", help="Also train a 2-worker Ray Train trial (efficiency).")
    ] = True,
) -> None:
    """Benchmark a trial's epoch time (inline and Ray Train) against a plain PyTorch loop (prints one JSON)."""
    from mmtune.bench.train import run
    from mmtune.data.format import read_manifest

    if data is not None:
        read_manifest(data)  # a DataError (exit 2) when it is not a prepared data set
    if gpu:
        _require_cuda()
    result = run(
        patients=patients,
        size=size,
        slices=slices,
        replicate=replicate,
        epochs=epochs,
        batch_size=batch_size,
        width=width,
        aim=aim,
        data=data,
        gpu=gpu,
        epoch_seconds=epoch_seconds,
        scaling=scaling,
    )
    print(json.dumps(result, sort_keys=True))


def _require_cuda() -> None:
    """``--gpu`` on a machine without a visible CUDA device is a user error, said before Ray starts."""
    import torch

    from mmtune.errors import UserError

    if not torch.cuda.is_available():
        raise UserError("bench train --gpu: no CUDA device is visible to torch (check CUDA_VISIBLE_DEVICES)")
