"""``mmtune tune SPACE.yaml``: a joint ASHA search over fusion x weighting x backbone on Ray Tune."""

from __future__ import annotations


def tune() -> None:
    """Run a search space on Ray Tune."""
    raise NotImplementedError
