"""``mmtune data synth``."""

from __future__ import annotations


def synth() -> None:
    """Write the built-in synthetic iCTCF-like raw data set."""
    raise NotImplementedError
