"""The local Ray a benchmark runs on: started (every CPU, no dashboard, quiet) unless one is already up, and shut
down afterwards only when the benchmark started it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bench_ray() -> Iterator[None]:
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(
        address="local",
        num_cpus=max(2, os.cpu_count() or 2),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
