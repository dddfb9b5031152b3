"""``uncertainty``: homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import StepInfo, Weighting, WeightingContext
from mmtune.tasks import TaskKind

# Kendall et al.: regression  L/(2 sigma^2) + log sigma ; classification  L/sigma^2 + log sigma.
# With s = log sigma^2: factor * exp(-s) * L + s / 2, factor 1/2 for regression-like, 1 for classification-like.
REGRESSION_LIKE = frozenset({TaskKind.REGRESSION, TaskKind.RECONSTRUCTION})


@WEIGHTINGS.register("uncertainty", family="loss")
class Uncertainty(Weighting):
    """Learned log-variances s_t: exp(-s_t) * L_t + s_t / 2 (classification and regression forms)

    The log-variances are parameters: add ``weighting.parameters()`` to the optimizer. A task without labels in
    a step contributes neither its loss nor its ``s_t / 2`` term, so ``s_t`` is not pushed down by absence.
    """

    def __init__(self, tasks: Sequence[str], context: WeightingContext | None = None, *, init: float = 0.0) -> None:
        super().__init__(tasks, context)
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init)))
        kinds = self.context.kinds
        factors = [0.5 if kinds.get(n, TaskKind.REGRESSION) in REGRESSION_LIKE else 1.0 for n in self.tasks]
        self.register_buffer("factors", torch.tensor(factors))

    def combine(self, losses: Mapping[str, torch.Tensor], step_info: StepInfo | None = None) -> torch.Tensor:
        present = set(self.present(losses, step_info))
        terms = []
        for i, name in enumerate(self.tasks):
            if name in present:
                s = self.log_vars[i]
                terms.append(self.factors[i] * torch.exp(-s) * losses[name] + 0.5 * s)
            else:
                terms.append(losses[name])  # exact zero, keeps the head in the graph
        return torch.stack(terms).sum()

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, (self.factors * torch.exp(-self.log_vars.detach())).tolist()))
