"""``gradnorm``: GradNorm (Chen et al., ICML 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import GradientWeighting, WeightingContext


@WEIGHTINGS.register("gradnorm", family="gradient")
class GradNorm(GradientWeighting):
    """Task weights tuned so weighted gradient norms follow each task's relative training rate (alpha)

    Gradient norms are measured on the model's last shared layer (``model.last_shared_parameters()``; all shared
    parameters without a model). The weights live in a buffer and take a gradient step on
    ``sum_t |w_t ||g_t|| - mean(w ||g||) * r_t^alpha|`` after every backward, normalised so the largest change
    is ``lr`` times the weight total (scale-free, like Adam), then are renormalised to sum to T.
    A task faster than average (small ``L_t / L_t(0)``) loses weight.
    """

    def __init__(
        self, tasks: Sequence[str], context: WeightingContext | None = None, *, alpha: float = 1.5, lr: float = 0.025
    ) -> None:
        super().__init__(tasks, context)
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.alpha = alpha
        self.lr = lr
        n = len(self.tasks)
        self.register_buffer("weights", torch.ones(n))
        self.register_buffer("initial_losses", torch.full((n,), float("nan")))

    def gradient_params(self, shared_params: Sequence[nn.Parameter]) -> list[nn.Parameter]:
        model = self.context.model
        last = getattr(model, "last_shared_parameters", None) if model is not None else None
        params = list(last()) if callable(last) else list(shared_params)
        return [p for p in params if p.requires_grad]

    def coefficients(self, grads: Tensor, losses: Tensor, names: list[str]) -> tuple[Tensor, Tensor]:
        index = torch.tensor([self.tasks.index(n) for n in names], device=self.weights.device)
        losses = losses.to(self.weights)  # device and dtype (float64 gradients work too)
        first = self.initial_losses[index]
        self.initial_losses[index] = torch.where(torch.isnan(first), losses, first)
        weights = self.weights[index].clone()
        coefficients = weights.clone().to(grads)  # this step backpropagates with the current weights
        with torch.no_grad():
            norms = grads.norm(dim=1).to(weights)
            weighted = weights * norms
            rates = losses / self.initial_losses[index].clamp_min(1e-12)
            rates = rates / rates.mean().clamp_min(1e-12)
            target = weighted.mean() * rates**self.alpha
            grad_w = torch.sign(weighted - target) * norms
            step = self.lr * grad_w / grad_w.abs().max().clamp_min(1e-12)
            self.weights[index] = (weights - step * weights.sum()).clamp_min(1e-3)
            self.weights *= len(self.tasks) / self.weights.sum()
        return coefficients, coefficients

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.weights.tolist()))
