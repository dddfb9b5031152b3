"""``mmtune data prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def prepare(
    card: Annotated[Path, typer.Option("--card", help="Dataset card YAML (datasets/*.yaml).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory for Parquet shards + manifest.json.")],
    source: Annotated[
        Path | None, typer.Option("--source", help="Raw data folder; overrides the card's source.path.")
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address; default: start a local Ray.")
    ] = None,
    num_cpus: Annotated[int | None, typer.Option("--num-cpus", min=1, help="CPUs for decoding (local Ray).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty OUT.")] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a card key, e.g. --set image.size=64 (repeatable).")
    ] = None,
) -> None:
    """Prepare raw CT + clinical data into patient-split Parquet shards."""
    from mmtune.config.loading import parse_overrides
    from mmtune.console import console
    from mmtune.data.prepare import prepare as run_prepare

    manifest = run_prepare(
        card,
        out,
        source=source,
        address=address or "local",
        num_cpus=num_cpus,
        overwrite=overwrite,
        progress=True,
        overrides=parse_overrides(set_),
    )
    sizes = getattr(manifest, "split_sizes", {}) or {}
    split_text = ", ".join(f"{k} {v}" for k, v in sizes.items())
    console.print(
        f"prepared {manifest.n_patients} patients ({split_text}) in {len(manifest.shards)} shard(s) to {out}; "
        f"{len(manifest.dropped)} dropped, {len(manifest.skipped_files)} file(s) skipped, "
        f"{len(manifest.warnings)} warning(s) (see {out}/manifest.json)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
