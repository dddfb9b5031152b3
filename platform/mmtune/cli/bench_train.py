"""``mmtune bench train``."""

from __future__ import annotations


def bench_train() -> None:
    """Benchmark a trial's epoch time against a plain PyTorch loop."""
    raise NotImplementedError
