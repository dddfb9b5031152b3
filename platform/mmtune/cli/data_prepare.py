"""``mmtune data prepare``."""

from __future__ import annotations


def prepare() -> None:
    """Prepare raw CT + clinical data into patient-split Parquet shards."""
    raise NotImplementedError
