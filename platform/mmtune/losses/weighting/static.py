"""``static``: fixed per-task weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import StepInfo, Weighting, WeightingContext


@WEIGHTINGS.register("static", family="loss")
class Static(Weighting):
    """Fixed weights: each task's `tasks[].weight`, or `params.weights: {task: w}` overriding them

    ``params.weights`` lets a search space tune the weights with dotted keys (``weighting.params.weights.covid``).
    """

    def __init__(
        self, tasks: Sequence[str], context: WeightingContext | None = None, *, weights: dict[str, float] | None = None
    ) -> None:
        super().__init__(tasks, context)
        given = dict(self.context.static_weights)
        for name, value in (weights or {}).items():
            if name not in self.tasks:
                raise ValueError(f"weights.{name}: not a task of this run; tasks: {', '.join(self.tasks)}")
            if value < 0:
                raise ValueError(f"weights.{name}: a weight must be >= 0, got {value}")
            given[name] = float(value)
        self.register_buffer("weights", torch.tensor([float(given.get(n, 1.0)) for n in self.tasks]))

    def combine(self, losses: Mapping[str, torch.Tensor], step_info: StepInfo | None = None) -> torch.Tensor:
        return torch.stack([w * losses[n] for w, n in zip(self.weights, self.tasks)]).sum()

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.weights.tolist()))
