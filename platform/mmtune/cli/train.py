"""``mmtune train CONFIG.yaml``: one run with plain Lightning (no Tune)."""

from __future__ import annotations


def train() -> None:
    """Train one model from a run config."""
    raise NotImplementedError
