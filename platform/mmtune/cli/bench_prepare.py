"""``mmtune bench prepare``."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def bench_prepare(
    patients: Annotated[int, typer.Option("--patients", min=12, help="Synthetic patients to generate.")] = 300,
    size: Annotated[int, typer.Option("--size", min=16, help="Slice size S (also the prepared size).")] = 64,
    slices: Annotated[int, typer.Option("--slices", min=1, help="Slices per patient K.")] = 8,
    cpus: Annotated[str, typer.Option("--cpus", help="Comma-separated CPU counts to time prepare at.")] = "1,2",
) -> None:
    """Benchmark prepare against a single-process SimpleITK decode loop (prints one JSON object)."""
    from mmtune.bench.prepare import run
    from mmtune.errors import UserError

    try:
        counts = tuple(int(c) for c in cpus.split(",") if c.strip())
    except ValueError:
        raise UserError(f"--cpus {cpus!r}: expected comma-separated integers such as 1,2") from None
    if not counts or min(counts) < 1:
        raise UserError(f"--cpus {cpus!r}: expected positive integers such as 1,2")
    print(json.dumps(run(patients=patients, size=size, slices=slices, cpus=counts), sort_keys=True))
