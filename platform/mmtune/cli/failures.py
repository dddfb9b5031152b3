"""What the CLI prints when a command fails: one line naming the path and the cause, and an exit code.

Why: a full disk, a permission problem or a corrupt Parquet file is not a bug in mmtune; a 500-line traceback hides
the one fact the user needs (which path, what went wrong). User mistakes (``UserError``) exit 2; environment
errors (``OSError``: disk full, permission denied, a missing file) exit 1; unreadable data files (Arrow / Parquet
errors) exit 2. Anything else is a bug and keeps its traceback. ``--verbose`` (anywhere on the command line) or
``MMTUNE_TRACEBACK=1`` prints the traceback of every failure as well.

Errors raised inside Ray tasks and actors arrive wrapped (``RayTaskError``); the cause is found through the wrapper's
``cause`` and the usual ``__cause__`` / ``__context__`` chain.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from typer.exceptions import Abort as Abort  # re-exported for the CLI entry point

from mmtune.errors import UserError

TRACEBACK_ENV = "MMTUNE_TRACEBACK"
ENVIRONMENT_EXIT = 1
HINTS = {
    errno.ENOSPC: "free some space or point the output elsewhere",
    errno.EDQUOT: "free some space or point the output elsewhere",
    errno.EFBIG: "the file size limit (ulimit -f) was reached",
    errno.EACCES: "check the file's owner and permissions",
    errno.EPERM: "check the file's owner and permissions",
    errno.EROFS: "the file system is read-only; point the output elsewhere",
}


@dataclass(frozen=True)
class Failure:
    """A failure the CLI reports in one line."""

    message: str
    exit_code: int


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what caused it: a Ray task error's ``cause``, ``__cause__``, ``__context__`` (each once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        cause = getattr(current, "cause", None)  # ray.exceptions.RayTaskError
        current = cause if isinstance(cause, BaseException) else current.__cause__ or current.__context__


def find_user_error(exc: BaseException) -> UserError | None:
    """The ``UserError`` behind ``exc``: itself, a Ray task error's cause, or a chained cause."""
    return next((e for e in chain(exc) if isinstance(e, UserError)), None)


def describe(exc: BaseException) -> Failure | None:
    """The one-line report of ``exc``, or None when it is a bug (keep the traceback)."""
    user_error = find_user_error(exc)
    if user_error is not None:
        return Failure(f"error: {user_error}", user_error.exit_code)
    for cause in chain(exc):
        if isinstance(cause, OSError) and cause.errno is not None:
            return Failure(f"error: {_os_message(cause)}", ENVIRONMENT_EXIT)
        if _is_arrow_error(cause):
            return Failure(f"error: unreadable data file: {_first_line(cause)}", 2)
        if isinstance(cause, EOFError):
            return Failure(
                f"error: a file ended before it was complete ({_first_line(cause)}): it was truncated, often by a "
                "full disk; check the free space of the output folders (--verbose shows where)",
                ENVIRONMENT_EXIT,
            )
    return None


QUIETED_LOGGERS = ("ray.tune", "ray.train", "ray.air")


@contextlib.contextmanager
def one_line_library_errors() -> Iterator[None]:
    """Ray Tune logs every failed trial with its full traceback (hundreds of lines when the disk is full); inside
    the block such records keep their line and gain the cause in one line instead. The traceback stays in the
    trial's ``error.txt``; ``--verbose`` keeps Ray's output as it is."""
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.exc_info and record.name.startswith(QUIETED_LOGGERS):
            error = record.exc_info[1]
            if error is not None:
                record.msg = f"{record.getMessage()} -- {summary(error)}"
                record.args = ()
                record.exc_info = None
                record.exc_text = None
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


def summary(exc: BaseException) -> str:
    """One line saying what went wrong: the report of a known failure, else the innermost cause's first line."""
    failure = describe(exc)
    if failure is not None:
        return failure.message.removeprefix("error: ")
    innermost = list(chain(exc))[-1]
    return f"{type(innermost).__name__}: {_first_line(innermost)}"


def wants_traceback(argv: list[str]) -> bool:
    return "--verbose" in argv or os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0", "false", "no")


def _os_message(exc: OSError) -> str:
    """``<path>: <cause> (<ERRNO>); <hint>``: the path when the error carries one."""
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    cause = exc.strerror or os.strerror(exc.errno or 0)
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.filename2:
        where = f"{exc.filename} -> {exc.filename2}: "
    hint = HINTS.get(exc.errno or 0)
    return f"{where}{cause} ({name})" + (f"; {hint}" if hint else "")


def _is_arrow_error(exc: BaseException) -> bool:
    """An Arrow error (corrupt or truncated Parquet, wrong schema); pyarrow is only consulted when loaded."""
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(exc, pa.ArrowException)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__
