"""``dwa``: Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import StepInfo, Weighting, WeightingContext, sync_sum


@WEIGHTINGS.register("dwa", family="loss")
class DWA(Weighting):
    """Weights from each task's loss ratio over the last two epochs: slower-falling losses weigh more

    ``w_t = T * softmax_t(r_t / temperature)``, ``r_t = L_t(e-1) / L_t(e-2)`` (epoch means of labelled batches);
    equal weights for the first two epochs. ``combine`` records the epoch means itself; ``on_epoch_end()`` (or
    ``on_epoch_end(epoch_losses)`` with the means computed by the caller) moves to the next epoch.
    """

    def __init__(
        self, tasks: Sequence[str], context: WeightingContext | None = None, *, temperature: float = 2.0
    ) -> None:
        super().__init__(tasks, context)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        n = len(self.tasks)
        self.register_buffer("weights", torch.ones(n))
        self.register_buffer("history", torch.full((2, n), float("nan")))  # [e-2, e-1] epoch means
        self.register_buffer("sums", torch.zeros(n))
        self.register_buffer("counts", torch.zeros(n))

    def combine(self, losses: Mapping[str, torch.Tensor], step_info: StepInfo | None = None) -> torch.Tensor:
        present = set(self.present(losses, step_info))
        with torch.no_grad():
            for i, name in enumerate(self.tasks):
                if name in present:
                    self.sums[i] += float(losses[name].detach())
                    self.counts[i] += 1
        return torch.stack([w * losses[n] for w, n in zip(self.weights, self.tasks)]).sum()

    def on_epoch_end(self, epoch_losses: Mapping[str, float] | None = None) -> None:
        if epoch_losses is not None:
            means = torch.tensor([float(epoch_losses.get(n, float("nan"))) for n in self.tasks])
        else:
            sums, counts = sync_sum(self.sums), sync_sum(self.counts)
            means = torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, float("nan")))
        means = means.to(self.history.device)
        latest = torch.where(torch.isnan(means), self.history[1], means)  # a task unseen this epoch keeps its last
        self.history = torch.stack([self.history[1], latest])
        self.sums.zero_()
        self.counts.zero_()
        ratio = self.history[1] / self.history[0]
        known = torch.isfinite(ratio)
        if bool(known.any()):  # tasks without two epochs of history keep weight 1
            weights = torch.ones_like(ratio)
            weights[known] = int(known.sum()) * torch.softmax(ratio[known] / self.temperature, dim=0)
            self.weights = weights

    def task_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.weights.tolist()))
