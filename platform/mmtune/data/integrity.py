"""Check a prepared data set's shards against its manifest before anything trains on them.

Why: a truncated, swapped or bit-flipped shard otherwise trains silently (or fails deep inside a trial). The
manifest records each shard's size, row count and SHA-256 (``Manifest.shard_info``, written by ``prepare`` from the
bytes it wrote); :func:`verify_prepared` compares them and raises a one-line ``DataError`` naming the shard.

Hashing is done once per node: a verified shard's hash is remembered in a small JSON file per shard under the node
cache (``$MMTUNE_CACHE_DIR/verified``), keyed by the file's path, size, mtime, ctime and inode. Any write to the
file changes its ctime (which no user can set back), so a remembered hash is never trusted for changed bytes; the
folder is private to the user (0700) and ignored when someone else owns it, so nobody else can plant an entry.

Manifests written before shard hashes existed are checked structurally: every shard's Parquet footer must be
readable and the rows must add up to ``n_patients``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from mmtune.data.cache_dir import cache_root
from mmtune.data.format import MANIFEST_NAME, Manifest, ShardInfo, read_manifest
from mmtune.errors import DataError

VERIFIED_DIR = "verified"
CHUNK = 8 * 1024 * 1024
REPREPARE = "re-run `mmtune data prepare` (with --overwrite) to rebuild it"


def verify_prepared(root: str | Path, manifest: Manifest | None = None) -> None:
    """Raise a one-line ``DataError`` unless every shard of ``root`` matches what its manifest records."""
    root = Path(root).expanduser().resolve()
    manifest = manifest or read_manifest(root)
    if not manifest.shard_info:
        _verify_structure(root, manifest)
        return
    names = [info.name for info in manifest.shard_info]
    if names != list(manifest.shards):
        raise DataError(f"{root / MANIFEST_NAME}: shard_info does not list the same shards as shards; {REPREPARE}")
    for info in manifest.shard_info:
        verify_shard(root / info.name, info)


def verify_shard(path: Path, info: ShardInfo) -> None:
    """One shard's size, then its SHA-256 (remembered per node while the file is unchanged)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: shard listed in {MANIFEST_NAME} is missing; {REPREPARE}") from None
    if st.st_size != info.bytes:
        raise DataError(
            f"{path}: shard is {st.st_size} bytes but {MANIFEST_NAME} records {info.bytes} (truncated or replaced); "
            f"{REPREPARE}"
        )
    stamp = _stamp(path, st)
    if _remembered(path) == {**stamp, "sha256": info.sha256}:
        return
    digest = sha256_file(path)
    if digest != info.sha256:
        raise DataError(
            f"{path}: shard content does not match {MANIFEST_NAME} (SHA-256 {digest[:12]}..., recorded "
            f"{info.sha256[:12]}...): the file was modified or corrupted; {REPREPARE}"
        )
    _remember(path, {**stamp, "sha256": digest})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(CHUNK):
                digest.update(block)
    except PermissionError:
        raise DataError(f"{path}: shard is not readable (permission denied)") from None
    return digest.hexdigest()


def record_shards(root: str | Path, names: list[str]) -> list[dict[str, Any]]:
    """``shard_info`` entries for shards rewritten outside ``prepare`` (benchmarks that enlarge a data set).

    Why: such a data set must pass :func:`verify_prepared` like any other, so whoever rewrites shards records what
    it wrote, in the manifest's JSON form.
    """
    import pyarrow.parquet as pq

    root = Path(root)
    return [
        ShardInfo(
            name=name,
            rows=pq.ParquetFile(root / name).metadata.num_rows,
            bytes=(root / name).stat().st_size,
            sha256=sha256_file(root / name),
        ).model_dump()
        for name in names
    ]


def _verify_structure(root: Path, manifest: Manifest) -> None:
    """Manifests without shard hashes: readable Parquet footers whose rows add up to ``n_patients``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    for name in manifest.shards:
        path = root / name
        if not path.is_file():
            raise DataError(f"{path}: shard listed in {MANIFEST_NAME} is missing; {REPREPARE}")
        try:
            rows += pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)}); {REPREPARE}") from None
    if rows != manifest.n_patients:
        raise DataError(
            f"{root}: shards hold {rows} rows but {MANIFEST_NAME} records {manifest.n_patients} patients; {REPREPARE}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------- the node's memory


def _stamp(path: Path, st: os.stat_result) -> dict[str, Any]:
    return {
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
        "device": st.st_dev,
    }


def _memory_dir() -> Path | None:
    """``$MMTUNE_CACHE_DIR/verified`` when it is this user's own private folder (created 0700); else None."""
    folder = cache_root() / VERIFIED_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = folder.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return folder


def _entry(path: Path) -> Path | None:
    folder = _memory_dir()
    if folder is None:
        return None
    return folder / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")


def _remembered(path: Path) -> dict[str, Any] | None:
    entry = _entry(path)
    if entry is None:
        return None
    try:
        return json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _remember(path: Path, record: dict[str, Any]) -> None:
    """Best effort (a full or read-only cache disk only costs a re-hash next time); written atomically."""
    from mmtune.atomic import atomic_write_text

    entry = _entry(path)
    if entry is not None:
        with contextlib.suppress(OSError):
            atomic_write_text(entry, json.dumps(record, sort_keys=True))
