"""``mmtune bench search``."""

from __future__ import annotations


def bench_search() -> None:
    """Benchmark ASHA's compute against running every config to full budget."""
    raise NotImplementedError
