"""Loss-based weightings from LibMTL's family: ``rlw``, ``gls`` and ``imtl_l`` (one scalar, automatic backward).

Only the tasks labelled in the step enter the formulas (``Weighting.present``); an unlabelled task's exact-zero
loss is added unweighted so its head stays in the graph with a zero gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import StepInfo, Weighting, WeightingContext


def _absent_terms(weighting: Weighting, losses: Mapping[str, Tensor], present: Sequence[str]) -> list[Tensor]:
    return [losses[n] for n in weighting.tasks if n not in present]


@WEIGHTINGS.register("rlw", family="loss")
class RLW(Weighting):
    """Random loss weighting (Lin et al., TMLR 2022): T * softmax of Gaussian draws each step, sum kept at T

    LibMTL uses ``softmax(randn(T))`` (weights sum to 1); mmtune multiplies by the number of present tasks so the
    expected scale matches ``equal`` and learning rates carry over. Draws come from a generator seeded with
    ``seed`` (the same sequence on every DDP rank).
    """

    def __init__(self, tasks: Sequence[str], context: WeightingContext | None = None, *, seed: int = 0) -> None:
        super().__init__(tasks, context)
        self.generator = torch.Generator().manual_seed(seed)
        self.register_buffer("last", torch.ones(len(self.tasks)))

    def combine(self, losses: Mapping[str, Tensor], step_info: StepInfo | None = None) -> Tensor:
        present = self.present(losses, step_info)
        draws = torch.randn(len(present), generator=self.generator)
        weights = len(present) * torch.softmax(draws, dim=0)
        reference = next(iter(losses.values()))
        weights = weights.to(device=reference.device, dtype=reference.dtype)
        self.last.zero_()
        for i, name in enumerate(present):
            self.last[self.tasks.index(name)] = weights[i]
        terms = [weights[i] * losses[n] for i, n in enumerate(present)]
        return torch.stack(terms + _absent_terms(self, losses, present)).sum()

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.last.tolist()))


@WEIGHTINGS.register("gls", family="loss")
class GLS(Weighting):
    """Geometric loss strategy (Chennupati et al., CVPRW 2019): the geometric mean of the task losses

    ``(prod_t L_t)^(1/T)`` = ``exp(mean_t log L_t)``; its gradient weights task t by ``GLS / (T L_t)``, so a task
    whose loss is already small gets more weight, and multiplying one loss by a constant changes no direction.
    """

    def __init__(self, tasks: Sequence[str], context: WeightingContext | None = None, *, eps: float = 1e-12) -> None:
        super().__init__(tasks, context)
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = eps
        self.register_buffer("last", torch.ones(len(self.tasks)))

    def combine(self, losses: Mapping[str, Tensor], step_info: StepInfo | None = None) -> Tensor:
        present = self.present(losses, step_info)
        if not present:
            return torch.stack([losses[n] for n in self.tasks]).sum()
        stacked = torch.stack([losses[n] for n in present]).clamp_min(self.eps)
        geometric = torch.exp(torch.log(stacked).mean())
        with torch.no_grad():
            self.last.zero_()
            for i, name in enumerate(present):
                self.last[self.tasks.index(name)] = geometric / (len(present) * stacked[i])
        return torch.stack([geometric, *_absent_terms(self, losses, present)]).sum()

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.last.tolist()))


@WEIGHTINGS.register("imtl_l", family="loss")
class IMTLL(Weighting):
    """IMTL-L (Liu et al., ICLR 2021): learned scales s_t, loss sum_t (exp(s_t) L_t - s_t) (scale-balanced losses)

    At its optimum ``exp(s_t) L_t = 1`` for every task, so the scaled losses are equal. The ``s_t`` are
    parameters (the Lightning module optimises every parameter of the weighting).
    """

    def __init__(self, tasks: Sequence[str], context: WeightingContext | None = None, *, init: float = 0.0) -> None:
        super().__init__(tasks, context)
        self.log_scales = nn.Parameter(torch.full((len(self.tasks),), float(init)))

    def combine(self, losses: Mapping[str, Tensor], step_info: StepInfo | None = None) -> Tensor:
        present = set(self.present(losses, step_info))
        terms = []
        for i, name in enumerate(self.tasks):
            if name in present:
                s = self.log_scales[i]
                terms.append(torch.exp(s) * losses[name] - s)
            else:
                terms.append(losses[name])
        return torch.stack(terms).sum()

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, torch.exp(self.log_scales.detach()).tolist()))
