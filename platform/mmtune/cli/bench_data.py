"""``mmtune bench data``."""

from __future__ import annotations


def bench_data() -> None:
    """Benchmark a trial's data path against the fastest plain pyarrow read."""
    raise NotImplementedError
