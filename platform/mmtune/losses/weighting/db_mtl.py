"""``db_mtl``: dual-balancing multi-task learning (Lin et al., 2023), as in LibMTL's ``DB_MTL``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import GradientWeighting, WeightingContext


@WEIGHTINGS.register("db_mtl", family="gradient")
class DBMTL(GradientWeighting):
    """Log losses (loss-scale balance) + EMA task gradients rescaled to the largest norm (gradient-scale balance)

    Gradients of ``log L_t`` are ``g_t / L_t``; their EMA ``m_t <- g + (beta / k^beta_sigma) (m_t - g)`` (step k,
    from zero, as LibMTL) is rescaled by ``max_s |m_s| / |m_t|`` and summed into the shared gradient. Heads get
    the gradient of ``log L_t``. The EMA is kept in memory (not in checkpoints: it restarts with a resumed run).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        context: WeightingContext | None = None,
        *,
        beta: float = 0.9,
        beta_sigma: float = 0.5,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(tasks, context)
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.beta, self.beta_sigma, self.eps = beta, beta_sigma, eps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.buffer: Tensor | None = None  # [T, P] EMA of log-loss gradients

    def shared_update(self, grads: Tensor, losses: Tensor, names: list[str]) -> tuple[Tensor, Tensor]:
        self.steps += 1
        k = int(self.steps)
        losses = losses.to(grads.dtype).clamp_min(self.eps)
        log_grads = grads / losses.unsqueeze(1)
        if self.buffer is None or self.buffer.shape[1] != grads.shape[1]:
            self.buffer = torch.zeros(len(self.tasks), grads.shape[1], dtype=grads.dtype, device=grads.device)
        index = torch.tensor([self.tasks.index(n) for n in names], device=grads.device)
        rows = self.buffer[index]
        rows = log_grads + (self.beta / k**self.beta_sigma) * (rows - log_grads)
        self.buffer[index] = rows
        norms = rows.norm(dim=1)
        alpha = norms.max() / (norms + self.eps)
        self.remember_weights(alpha / losses, names)  # in units of the raw task gradients (for logging)
        return alpha @ rows, 1.0 / losses
