"""One writer per study: ``results/<study>/study.lock`` names the host, pid and start time of the run writing it.

Two ``mmtune tune`` (or ``ablate``) runs of one study would interleave two Tune experiments in ``tune/`` and
overwrite each other's ``trials.parquet``. The lock is created with an atomic exclusive link (a reader never
sees half a file), removed when the run ends however it ends, and a lock whose process is gone (same host, dead
pid, or a pid reused by a younger process) is reported as stale with the command that clears it. ``mmtune
report`` reads it to say that a study is still running.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from mmtune.errors import UserError

LOCK_FILE = "study.lock"


class StudyLockedError(UserError):
    """Another run writes this study (or a stale lock says so)."""


@dataclass(frozen=True)
class LockInfo:
    """Who holds a study's lock."""

    host: str
    pid: int
    started: float  # time.time() when the run took the lock
    command: str = ""

    @property
    def since(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))

    def alive(self) -> bool | None:
        """True / False on this host; None when the holder runs on another host (cannot be checked here)."""
        if self.host != socket.gethostname():
            return None
        import psutil

        try:
            created = psutil.Process(self.pid).create_time()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        except psutil.AccessDenied:
            return True
        return created <= self.started + 1.0  # a younger process reuses the pid of a dead holder


def read_lock(root: str | Path) -> LockInfo | None:
    """The lock of the study at ``root``, or None when there is none (an unreadable one counts as held by ?)."""
    path = Path(root) / LOCK_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockInfo(str(data["host"]), int(data["pid"]), float(data["started"]), str(data.get("command", "")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return LockInfo("?", -1, path.stat().st_mtime if path.exists() else 0.0)


def held_message(root: Path, info: LockInfo) -> str:
    """One line: who holds the lock, or that it is stale and how to clear it."""
    lock = root / LOCK_FILE
    alive = info.alive()
    who = f"pid {info.pid} on {info.host}, started {info.since}"
    if alive is False:
        return (
            f"{lock}: stale lock ({who}; that process is gone). If no mmtune run uses this study, remove it "
            f"(rm {lock}) and run again with --resume"
        )
    where = "" if alive else " (another host: cannot check it from here; if that run is gone, remove the lock)"
    return f"{root}: study is being run by {who}{where}; wait for it to finish or stop it first ({lock})"


def check_unlocked(root: str | Path) -> None:
    """``StudyLockedError`` when a lock is there (checked first, so a second run hears about the lock rather than
    about the study the first run is writing)."""
    root = Path(root)
    held = read_lock(root)
    if held is not None:
        raise StudyLockedError(held_message(root, held))


def running_message(root: str | Path) -> str | None:
    """One line when a live run holds the study at ``root`` (``mmtune report`` on a running study), else None."""
    root = Path(root).expanduser().resolve()
    info = read_lock(root)
    if info is None or info.alive() is False:
        return None
    return (
        f"{root}: study {root.name} is still running (pid {info.pid} on {info.host}, started {info.since}); "
        "run `mmtune report` when it has finished"
    )


@contextlib.contextmanager
def study_lock(root: str | Path, command: str = "") -> Iterator[LockInfo]:
    """Hold ``root/study.lock`` for the ``with`` block; ``StudyLockedError`` (one line, exit 2) when another run
    holds it or a stale lock is left. A study folder this call created and that is still empty is removed again,
    so a run that fails before writing anything leaves nothing behind."""
    root = Path(root)
    created = [d for d in (root, *root.parents) if not d.exists()]  # removed again when left empty
    root.mkdir(parents=True, exist_ok=True)
    info = LockInfo(socket.gethostname(), os.getpid(), time.time(), command)
    lock = root / LOCK_FILE
    part = root / f".{LOCK_FILE}.{info.pid}.part"
    part.write_text(json.dumps(asdict(info), sort_keys=True) + "\n", encoding="utf-8")
    try:
        os.link(part, lock)  # atomic and exclusive: fails when the lock exists
    except FileExistsError:
        part.unlink(missing_ok=True)
        held = read_lock(root)
        raise StudyLockedError(held_message(root, held or info)) from None
    finally:
        part.unlink(missing_ok=True)
    try:
        yield info
    finally:
        if read_lock(root) == info:
            lock.unlink(missing_ok=True)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
