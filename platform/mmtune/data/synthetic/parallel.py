"""Run one function per patient in worker processes, results in patient order (``mmtune data synth --workers``).

Every patient draws from its own random streams (``SynthConfig.rng(purpose, patient)``) and writes only its own
files, so which process renders a patient cannot change a byte: 1 and N workers give identical data sets. Workers
are forked (no re-import of the caller's script), except in a Ray driver, whose threads a fork would copy
mid-flight: there they are spawned.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
MAX_CHUNK = 8


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def _in_ray_driver() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def map_in_order(
    fn: Callable[[T], R], items: Sequence[T], workers: int, on_done: Callable[[], None] | None = None
) -> list[R]:
    """``[fn(x) for x in items]``, spread over ``workers`` processes (inline for 1); ``on_done`` after each item.

    ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one).
    """
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        out = []
        for item in items:
            out.append(fn(item))
            if on_done is not None:
                on_done()
        return out
    chunk = max(1, min(MAX_CHUNK, len(items) // (4 * workers)))
    context = multiprocessing.get_context("spawn" if _in_ray_driver() else "fork")
    results: list[R] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for result in pool.map(fn, items, chunksize=chunk):
            results.append(result)
            if on_done is not None:
                on_done()
    return results
