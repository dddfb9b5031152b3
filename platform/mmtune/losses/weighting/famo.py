"""``famo``: fast adaptive multitask optimisation (Liu et al., NeurIPS 2023)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import StepInfo, Weighting, WeightingContext

EPS = 1e-8


@WEIGHTINGS.register("famo", family="loss")
class FAMO(Weighting):
    """Balances the rate at which every task's log-loss falls, with O(1) cost per step (no per-task gradients)

    The backpropagated loss is ``sum_t z_t log(L_t) / c`` with ``z = softmax(xi)`` and ``c = sum_t z_t / L_t``.
    The logits ``xi`` follow Adam (``lr``, ``weight_decay``) on the observed log-loss decrease between successive
    steps: a task whose loss fell faster gets less weight. Only tasks labelled in both steps are compared.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        context: WeightingContext | None = None,
        *,
        lr: float = 0.025,
        weight_decay: float = 0.001,
    ) -> None:
        super().__init__(tasks, context)
        self.lr = lr
        self.weight_decay = weight_decay
        n = len(self.tasks)
        self.register_buffer("logits", torch.zeros(n))
        self.register_buffer("adam_m", torch.zeros(n))
        self.register_buffer("adam_v", torch.zeros(n))
        self.register_buffer("adam_t", torch.zeros((), dtype=torch.long))
        self.register_buffer("previous", torch.full((n,), float("nan")))

    def _update_logits(self, current: torch.Tensor) -> None:
        both = ~torch.isnan(self.previous) & ~torch.isnan(current)
        if not bool(both.any()):
            return
        decrease = torch.where(
            both, torch.log(self.previous.clamp_min(EPS)) - torch.log(current.clamp_min(EPS)), torch.zeros_like(current)
        )
        logits = self.logits.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(torch.softmax(logits, 0), logits, grad_outputs=decrease)
        grad = grad + self.weight_decay * self.logits  # Adam with L2 weight decay, as in the authors' code
        self.adam_t += 1
        beta1, beta2 = 0.9, 0.999
        self.adam_m.mul_(beta1).add_(grad, alpha=1 - beta1)
        self.adam_v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = int(self.adam_t)
        m_hat = self.adam_m / (1 - beta1**t)
        v_hat = self.adam_v / (1 - beta2**t)
        self.logits -= self.lr * m_hat / (v_hat.sqrt() + 1e-8)

    def combine(self, losses: Mapping[str, torch.Tensor], step_info: StepInfo | None = None) -> torch.Tensor:
        present = self.present(losses, step_info)
        if not present:
            return torch.stack([losses[n] for n in self.tasks]).sum()
        values = self.loss_vector(losses, present).to(self.logits.device)
        current = torch.full_like(self.previous, float("nan"))
        current[[self.tasks.index(n) for n in present]] = values
        with torch.no_grad():
            self._update_logits(current)
            self.previous.copy_(current)
        index = [self.tasks.index(n) for n in present]
        z = torch.softmax(self.logits[index], 0)
        stacked = torch.stack([losses[n] for n in present])
        shifted = stacked.clamp_min(0) + EPS
        c = (z.to(stacked.device) / shifted.detach()).sum()
        total = (z.to(stacked.device) * torch.log(shifted)).sum() / c
        rest = [losses[n] for n in self.tasks if n not in present]  # exact zeros, keep heads in the graph
        return total + torch.stack(rest).sum() if rest else total

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, torch.softmax(self.logits, 0).tolist()))
