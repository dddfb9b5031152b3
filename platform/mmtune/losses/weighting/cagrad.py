"""``cagrad``: conflict-averse gradient descent (Liu et al., NeurIPS 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import GradientWeighting, WeightingContext


@WEIGHTINGS.register("cagrad", family="gradient")
class CAGrad(GradientWeighting):
    """Update within a ball (radius c * |mean gradient|) around the mean gradient maximising the worst task's gain

    Solves the dual over the simplex with scipy SLSQP on the T x T Gram matrix (as the authors' code does); the
    shared update ``T * (g0 + lambda * g_w) / (1 + c^2)`` matches the scale of the summed loss.
    """

    def __init__(self, tasks: Sequence[str], context: WeightingContext | None = None, *, c: float = 0.5) -> None:
        super().__init__(tasks, context)
        if c < 0:
            raise ValueError(f"c must be >= 0, got {c}")
        self.c = c

    def coefficients(self, grads: Tensor, losses: Tensor, names: list[str]) -> tuple[Tensor, Tensor]:
        n = grads.shape[0]
        gram = (grads @ grads.T).double().cpu().numpy()
        g0_norm = float(np.sqrt(max(gram.mean(), 0.0) + 1e-8))
        radius = self.c * g0_norm + 1e-8
        mean_weights = np.full(n, 1.0 / n)

        def objective(w: np.ndarray) -> float:
            return float(w @ gram @ mean_weights + radius * np.sqrt(max(w @ gram @ w, 0.0) + 1e-8))

        result = minimize(
            objective,
            mean_weights,
            bounds=[(0.0, 1.0)] * n,
            constraints={"type": "eq", "fun": lambda w: 1.0 - w.sum()},
            method="SLSQP",
        )
        w = np.clip(result.x, 0.0, 1.0)
        gw_norm = float(np.sqrt(max(w @ gram @ w, 0.0)))
        lam = radius / (gw_norm + 1e-8)
        beta = n * (mean_weights + lam * w) / (1.0 + self.c**2)
        beta_t = torch.as_tensor(beta, dtype=grads.dtype, device=grads.device)
        return beta_t, torch.ones(n, dtype=grads.dtype, device=grads.device)
