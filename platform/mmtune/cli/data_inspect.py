"""``mmtune data inspect``."""

from __future__ import annotations


def inspect() -> None:
    """Show counts per split x class and clinical missingness of a prepared data set."""
    raise NotImplementedError
