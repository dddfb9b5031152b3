"""``nash_mtl``: multi-task learning as a bargaining game (Navon et al., ICML 2022)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import least_squares
from torch import Tensor, nn

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import GradientWeighting, WeightingContext


@WEIGHTINGS.register("nash_mtl", family="gradient")
class NashMTL(GradientWeighting):
    """Nash bargaining weights alpha > 0 solving (G G^T alpha)_t = 1 / alpha_t: scale-invariant task balance

    The fixed point is solved on the Gram matrix normalised by its Frobenius norm ``n`` (well conditioned, as in
    the authors' code) with scipy ``least_squares`` (bounded, warm-started) instead of a CVXPY program; the
    solution ``a`` of ``a * (G/n a) = 1`` is then rescaled to ``alpha = a / sqrt(n)``, the solution for the raw
    ``G`` (the authors fold ``n`` back in through their constraint). Multiplying every loss by ``c`` scales ``G``
    by ``c^2`` and ``alpha`` by ``1/c``, so the update ``sum alpha_t g_t`` does not change. Heads and shared
    parameters both get ``alpha``-weighted gradients; the shared gradient norm is then clipped to ``max_norm``
    (0 disables).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        context: WeightingContext | None = None,
        *,
        max_norm: float = 1.0,
        update_every: int = 1,
    ) -> None:
        super().__init__(tasks, context)
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        self.max_norm = max_norm
        self.update_every = update_every
        self.register_buffer("alpha", torch.ones(len(self.tasks)))
        self.register_buffer("normalised", torch.ones(len(self.tasks)))  # warm start, in normalised-Gram units
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def coefficients(self, grads: Tensor, losses: Tensor, names: list[str]) -> tuple[Tensor, Tensor]:
        index = [self.tasks.index(n) for n in names]
        if int(self.steps) % self.update_every == 0:
            gram = (grads @ grads.T).double().cpu().numpy()
            norm = max(float(np.linalg.norm(gram)), 1e-24)
            gram = gram / norm
            start = self.normalised[index].double().cpu().numpy()
            start = np.where(start > 1e-6, start, 1.0)
            solution = least_squares(
                lambda a: a * (gram @ a) - 1.0, start, bounds=(1e-6, np.inf), method="trf", max_nfev=200
            )
            self.normalised[index] = torch.as_tensor(solution.x, dtype=self.alpha.dtype, device=self.alpha.device)
            alpha = solution.x / np.sqrt(norm)
            self.alpha[index] = torch.as_tensor(alpha, dtype=self.alpha.dtype, device=self.alpha.device)
        self.steps += 1
        alpha = self.alpha[index].to(device=grads.device, dtype=grads.dtype)
        return alpha, alpha

    def after_backward(self, shared_params: Sequence[nn.Parameter]) -> None:
        if self.max_norm > 0:
            torch.nn.utils.clip_grad_norm_([p for p in shared_params if p.grad is not None], self.max_norm)

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.alpha.tolist()))
