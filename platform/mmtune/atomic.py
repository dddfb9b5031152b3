"""Write outputs atomically: to a temporary sibling first, renamed into place only when complete.

A failed or interrupted command therefore never leaves a half-written file or directory behind. An environment
error while writing (disk full, permission denied, a read-only file system) is re-raised as an ``OSError`` naming
the output the user asked for, not the temporary sibling, so the CLI's one-line message points at it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def located_error(exc: BaseException, path: Path, tmp: Path) -> OSError | None:
    """``exc`` as an ``OSError`` naming ``path`` when it is an OS error with no file name or one inside the
    temporary ``tmp`` (also when raised in a Ray task: its ``cause``); None for anything else."""
    cause = getattr(exc, "cause", None)
    error = cause if isinstance(cause, OSError) else exc
    if not isinstance(error, OSError) or error.errno is None:
        return None
    names = [os.path.abspath(n) for n in (error.filename, error.filename2) if isinstance(n, (str, os.PathLike))]
    if names and not any(n.startswith(os.path.abspath(tmp)) for n in names):
        return None
    return OSError(error.errno, error.strerror or os.strerror(error.errno), str(path))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno or 0), str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        located = located_error(exc, path, Path(tmp))
        if located is not None:
            raise located from exc
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp directory beside ``path``; on success it replaces ``path``, on error it is removed.

    ``overwrite=False`` refuses to replace an existing non-empty directory (caller decides the message).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite and any(path.iterdir()):
        raise FileExistsError(str(path))
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:  # e.g. a folder the user may not write: name the output, not the temp name
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno or 0), str(path)) from exc
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        located = located_error(exc, path, tmp)
        if located is not None:
            raise located from exc
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
