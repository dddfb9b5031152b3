"""``mmtune ablate STUDY.yaml``: every cell x fold x seed of an ablation study as Ray Tune trials."""

from __future__ import annotations


def ablate() -> None:
    """Run an ablation study."""
    raise NotImplementedError
