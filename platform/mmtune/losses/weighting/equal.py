"""``equal``: the sum of task losses."""

from __future__ import annotations

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import Weighting


@WEIGHTINGS.register("equal", family="loss")
class Equal(Weighting):
    """Sum of task losses, every weight 1 (the baseline every other weighting must beat)"""
