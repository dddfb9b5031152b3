"""Undo process-wide locale changes made by native libraries.

GDCM (SimpleITK's DICOM I/O) switches the C locale to ``"C"`` while formatting numbers and does not switch it back.
Python then decodes subprocess output and opens text files as ASCII for the rest of the process, so a later
``mmtune report`` in the same process (or a test) fails on the first non-ASCII character.
"""

from __future__ import annotations

import contextlib
import functools
import locale
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextlib.contextmanager
def preserved_locale() -> Iterator[None]:
    """Restore every locale category on exit, whatever the wrapped native code set."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL) != saved:
            locale.setlocale(locale.LC_ALL, saved)


def keeps_locale(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`preserved_locale` for functions that call into GDCM."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with preserved_locale():
            return func(*args, **kwargs)

    return wrapper
