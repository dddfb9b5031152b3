"""``mmtune data inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def inspect(
    data: Annotated[Path, typer.Argument(help="A prepared data set (output of `mmtune data prepare`).")],
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG montage of slices per class here.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Task whose classes the montage shows.")] = None,
    per_class: Annotated[int, typer.Option("--per-class", min=1, help="Patients per class in the montage.")] = 6,
) -> None:
    """Show counts per split x class and clinical missingness of a prepared data set."""
    from mmtune.console import console
    from mmtune.data.inspect import montage, render, summarize

    summary = summarize(data)
    for table in render(summary):
        console.print(table)
    manifest = summary.manifest
    for line in [*(f"dropped {d.patient_id}: {d.reason}" for d in manifest.dropped)][:20]:
        console.print(line, highlight=False, markup=False)
    if manifest.skipped_files:
        console.print(f"{len(manifest.skipped_files)} file(s) skipped (see manifest.json)", highlight=False)
    for line in manifest.warnings[:20]:
        console.print(f"warning: {line}", highlight=False, markup=False)
    if plot is not None:
        path = montage(data, plot, task=task, per_class=per_class)
        console.print(f"wrote {path}", highlight=False, markup=False)
