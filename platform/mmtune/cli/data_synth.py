"""``mmtune data synth``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def synth(
    out: Annotated[Path, typer.Argument(help="Output directory; must be absent or empty unless --overwrite.")],
    patients: Annotated[int, typer.Option("--patients", help="Number of patients (>= 12).")] = 300,
    size: Annotated[int, typer.Option("--size", help="Slice width and height in pixels (>= 16).")] = 64,
    slices: Annotated[int, typer.Option("--slices", help="Slices per patient (>= 1).")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same arguments give identical bytes.")] = 0,
    variant: Annotated[
        str, typer.Option("--variant", help="ictcf (iCTCF folders + clinical.csv) or prognosis (manifest + NIfTI).")
    ] = "ictcf",
    hospitals: Annotated[int, typer.Option("--hospitals", help="Hospitals/centres with their own scanner shift.")] = 3,
    dicom_fraction: Annotated[
        float, typer.Option("--dicom-fraction", help="Share of ictcf patients written as DICOM series.")
    ] = 0.25,
    quirks: Annotated[
        bool, typer.Option("--quirks/--no-quirks", help="Write the file defects (truncated JPG, missing folder, ...).")
    ] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty OUT.")] = False,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes rendering patients (0 = one per CPU); output is the same.")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of one line.")] = False,
) -> None:
    """Write the built-in synthetic iCTCF-like raw data set (raw files + posteriors.csv + truth.json)."""
    from mmtune.console import console, progress
    from mmtune.data.synthetic import SynthConfig, generate

    # Validate before drawing a progress bar, so a bad argument prints only its one-line error.
    SynthConfig(patients, size, slices, seed, variant, hospitals, dicom_fraction, quirks)
    with progress(transient=True) as bar:
        task = bar.add_task(f"synth {variant}", total=patients)
        summary = generate(
            out,
            patients=patients,
            size=size,
            slices=slices,
            seed=seed,
            variant=variant,  # type: ignore[arg-type]  # validated by SynthConfig
            hospitals=hospitals,
            dicom_fraction=dicom_fraction,
            quirks=quirks,
            overwrite=overwrite,
            on_patient=lambda: bar.advance(task),
            workers=workers,
        )
    if as_json:
        print(json.dumps(summary.to_dict(), sort_keys=True))
    else:
        console.print(summary.line(), highlight=False, markup=False, soft_wrap=True)
