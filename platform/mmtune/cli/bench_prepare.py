"""``mmtune bench prepare``."""

from __future__ import annotations


def bench_prepare() -> None:
    """Benchmark prepare against a single-process SimpleITK decode loop."""
    raise NotImplementedError
