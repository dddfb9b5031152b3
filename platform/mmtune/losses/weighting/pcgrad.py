"""``pcgrad``: gradient surgery (Yu et al., NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import GradientWeighting, WeightingContext


@WEIGHTINGS.register("pcgrad", family="gradient")
class PCGrad(GradientWeighting):
    """Project each task gradient off the normal plane of every other task gradient it conflicts with

    Each projected gradient stays a linear combination of the original task gradients; we track those
    coefficients, so the shared update is ``sum_k beta_k g_k`` and heads keep their plain gradients (as in
    LibMTL). The order of projections is shuffled with a seeded generator (same on every DDP rank).
    """

    def __init__(self, tasks: Sequence[str], context: WeightingContext | None = None, *, seed: int = 0) -> None:
        super().__init__(tasks, context)
        self.generator = torch.Generator().manual_seed(seed)

    def coefficients(self, grads: Tensor, losses: Tensor, names: list[str]) -> tuple[Tensor, Tensor]:
        n = grads.shape[0]
        gram = grads @ grads.T  # [n, n]
        mix = torch.eye(n, dtype=grads.dtype, device=grads.device)  # row i: g_i' = mix[i] @ grads
        for i in range(n):
            for j in torch.randperm(n, generator=self.generator).tolist():
                if j == i:
                    continue
                dot = mix[i] @ gram[:, j]  # g_i' . g_j
                if dot < 0 and gram[j, j] > 0:
                    mix[i, j] -= dot / gram[j, j]
        return mix.sum(dim=0), torch.ones(n, dtype=grads.dtype, device=grads.device)
