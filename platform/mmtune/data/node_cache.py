"""A decoded, memory-mapped copy of a run's splits on the node's local disk, shared by every trial on the node.

Why: the in-memory path reads and decodes the whole data set into each trial's own memory (N trials on a node hold
N copies), and data past memory fell back to Ray Data streaming, which re-read and re-decoded every shard every
epoch (0.09x of the in-memory path). Here each split of a run is written once per node as raw numpy arrays:

    <cache dir>/<key>/<split>/image.npy   [N, *shape] float16, memory-mapped by every reader
    <cache dir>/<key>/<split>/mask.npy    (segmentation runs)
    <cache dir>/<key>/<split>/columns.npz  the small columns (labels, clinical, ids)

Readers ``np.load(mmap_mode="r")`` the images: the OS page cache holds one copy for all trials of the node, a
batch is one fancy-index of the rows it needs (the same code as the in-memory path, so identical batches), and
data larger than memory page in from local disk at disk speed instead of being re-decoded.

The key hashes everything that decides the harmonised rows (each source's path, manifest bytes and shard sizes and
mtimes, the run's tasks, features, fold / test group / CV validation ids), so a changed data set or run never
reads a stale cache. One process builds an entry (an ``flock`` serialises concurrent trials; the others wait and
then map it); entries appear only when complete (temp dir + rename). ``MMTUNE_CACHE_DIR`` moves the cache
(default ``<tmp>/mmtune-node-cache``); delete the directory to reclaim the space.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mmtune.data.cache_dir import CACHE_ENV as CACHE_ENV  # re-exported: benchmarks set it
from mmtune.data.cache_dir import cache_dir_env as cache_dir_env
from mmtune.data.cache_dir import cache_root
from mmtune.data.format import FOLD, GROUP, IMAGE, MASK, PATIENT_ID, SPLIT
from mmtune.data.multisource import DataInfo, split_expression

CACHE_VERSION = 1
IMAGE_FILE, MASK_FILE, COLUMNS_FILE = "image.npy", "mask.npy", "columns.npz"


def cache_key(info: DataInfo) -> str:
    """sha256 of what decides a run's harmonised rows (sources' content stamps and the run's data options)."""
    sources = []
    for source in info.sources:
        manifest_path = source.path / "manifest.json"
        shards = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in source.shards]
        sources.append(
            {
                "path": str(source.path.resolve()),
                "manifest": hashlib.sha256(manifest_path.read_bytes()).hexdigest() if manifest_path.exists() else "",
                "shards": shards,
                "index": source.index,
                "weight": source.weight,
            }
        )
    stamp = {
        "version": CACHE_VERSION,
        "sources": sources,
        "features": info.features,
        "tasks": [[t.name, str(t.kind), list(t.classes)] for t in info.tasks],
        "fold": info.fold,
        "test_group": info.test_group,
        "val_ids": sorted(info.val_ids) if info.val_ids is not None else None,
        "needs_mask": info.needs_mask,
    }
    return hashlib.sha256(json.dumps(stamp, sort_keys=True, default=str).encode()).hexdigest()[:24]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def entry_dir(info: DataInfo) -> Path:
    return cache_root() / cache_key(info)


Parts = Callable[[DataInfo, tuple[str, ...]], Iterator[tuple[str, dict[str, np.ndarray]]]]


def ensure_cached(info: DataInfo, splits: tuple[str, ...], parts: Parts) -> Path:
    """Build the node's cache entry of ``splits`` unless present; returns the entry directory.

    ``parts(info, splits)`` yields ``(split, decoded columns)`` one shard at a time (``mmtune.data.loading``
    harmonises and decodes them; this module only stores and maps).
    """
    entry = entry_dir(info)
    missing = [s for s in splits if not (entry / s / COLUMNS_FILE).exists()]
    if not missing:
        return entry
    with _locked(entry.with_suffix(".lock")):
        missing = [s for s in splits if not (entry / s / COLUMNS_FILE).exists()]
        if missing:
            _build(info, tuple(missing), entry, parts)
    return entry


def load_cached(info: DataInfo, split: str) -> dict[str, np.ndarray]:
    """One split's columns as ``table_to_numpy`` gives them; images (and masks) memory-mapped, read-only."""
    folder = entry_dir(info) / split
    with np.load(folder / COLUMNS_FILE, allow_pickle=False) as small:
        cols = {name: small[name] for name in small.files}
    cols[PATIENT_ID] = cols[PATIENT_ID].astype(object)
    cols[IMAGE] = np.load(folder / IMAGE_FILE, mmap_mode="r")
    if (folder / MASK_FILE).exists():
        cols[MASK] = np.load(folder / MASK_FILE, mmap_mode="r")
    return cols


def _count_rows(info: DataInfo, splits: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(splits, 0)
    for source in info.sources:
        for shard in source.shards:
            table = pq.read_table(str(shard), columns=[PATIENT_ID, SPLIT, FOLD, GROUP])
            for split in splits:
                expr = split_expression(split, info.fold, info.test_group, val_ids=info.val_ids_for(source))
                counts[split] += table.filter(expr).num_rows
    return counts


def _build(info: DataInfo, splits: tuple[str, ...], entry: Path, parts: Parts) -> None:
    """Write ``splits`` under ``entry`` (each into a temp sibling renamed when complete)."""
    entry.mkdir(parents=True, exist_ok=True)
    counts = _count_rows(info, splits)
    tmp = {s: Path(tempfile.mkdtemp(prefix=f".{s}-", dir=entry)) for s in splits}
    try:
        images: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        small: dict[str, dict[str, list[np.ndarray]]] = {s: {} for s in splits}
        offset = dict.fromkeys(splits, 0)
        for split, cols in parts(info, splits):
            image, mask = cols.pop(IMAGE), cols.pop(MASK, None)
            for name, values in cols.items():
                small[split].setdefault(name, []).append(values)
            if not len(image):
                continue
            if split not in images:
                images[split] = _open(tmp[split] / IMAGE_FILE, image, counts[split])
                if mask is not None:
                    masks[split] = _open(tmp[split] / MASK_FILE, mask, counts[split])
            n, start = len(image), offset[split]
            images[split][start : start + n] = image
            if mask is not None:
                masks[split][start : start + n] = mask
            offset[split] += n
        for split in splits:
            if split in images:
                images.pop(split).flush()
            else:
                np.save(tmp[split] / IMAGE_FILE, np.zeros((0, *info.image.shape), np.dtype(info.image.dtype)))
            if split in masks:
                masks.pop(split).flush()
            elif info.needs_mask:
                np.save(tmp[split] / MASK_FILE, np.zeros((0, *info.image.shape), np.uint8))
            arrays = {name: np.concatenate(parts) for name, parts in small[split].items()}
            arrays[PATIENT_ID] = arrays[PATIENT_ID].astype(str)
            np.savez(tmp[split] / COLUMNS_FILE, **arrays)
            target = entry / split
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp[split], target)
    finally:
        for folder in tmp.values():
            shutil.rmtree(folder, ignore_errors=True)


def _open(path: Path, like: np.ndarray, rows: int) -> np.ndarray:
    return np.lib.format.open_memmap(path, mode="w+", dtype=like.dtype, shape=(rows, *like.shape[1:]))


def evict_from_page_cache(entry: Path) -> None:
    """Drop the entry's pages from the OS page cache (``POSIX_FADV_DONTNEED``): the next epoch reads from disk,
    as it would for data larger than memory (benchmarks)."""
    for path in entry.rglob("*.npy"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
