"""Where a node keeps what mmtune caches on local disk (decoded splits, verified shard hashes).

Its own module so the node cache and the shard checks share one setting without importing each other.
``MMTUNE_CACHE_DIR`` moves it (default ``<tmp>/mmtune-node-cache``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV = "MMTUNE_CACHE_DIR"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "mmtune-node-cache")


@contextlib.contextmanager
def cache_dir_env(path: Path) -> Iterator[None]:
    """Point ``MMTUNE_CACHE_DIR`` at ``path`` for the block (and the Ray started inside it): benchmarks keep their
    node cache in their own temporary directory."""
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = previous
