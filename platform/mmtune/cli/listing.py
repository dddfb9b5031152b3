"""``mmtune list``: the registered components, chosen by name in YAML."""

from __future__ import annotations


def list_components() -> None:
    """List registered backbones, fusions, heads, weightings and tasks."""
    raise NotImplementedError
