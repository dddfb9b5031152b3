"""Multi-task architectures on the fused representation (``model.sharing``): how the vector tasks share it.

Every fusion hands its branch(es) a ``[B, D]`` vector; a sharing module turns it into one ``[B, D]`` vector per
task, so every fusion combines with every sharing:

* ``hard`` -- hard parameter sharing: every head reads the fused vector (no module is built; the default).
* ``mmoe`` -- multi-gate mixture of experts (Ma et al., KDD 2018): shared expert MLPs, one softmax gate per task.
* ``cgc`` -- customized gate control, PLE's building block (Tang et al., RecSys 2020): shared experts plus each
  task's own experts, each task's gate mixing its own and the shared ones.
* ``cross_stitch`` -- cross-stitch units (Misra et al., CVPR 2016): one MLP column per task, mixed after every
  layer by a learned T x T matrix (initialised near the identity).

Task-specific parameters (gates, a task's own experts) are reported by ``task_parameters`` so gradient weightings
leave them out of the shared gradient; the cross-stitch columns are reached by every task, hence shared.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmtune.models.registries import SHARINGS


def _expert(width: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, width), nn.ReLU())


class Sharing(nn.Module):
    """Base: ``forward(fused) -> {task: [B, width]}``; at least ``min_tasks`` vector tasks make sense."""

    min_tasks = 2

    def __init__(self, width: int, tasks: Sequence[str]) -> None:
        super().__init__()
        if len(tasks) < self.min_tasks:
            raise ValueError(f"needs at least {self.min_tasks} vector tasks to share between, got {len(tasks)}")
        self.width = width
        self.tasks = list(tasks)

    def forward(self, fused: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return []

    def gate_weights(self) -> dict[str, Tensor]:
        """The last batch's mean gate per task (``mmoe`` / ``cgc``), for inspection."""
        return {}


@SHARINGS.register("hard")
def hard(width: int, tasks: Sequence[str]) -> None:
    """Hard parameter sharing: every task head reads the same fused vector (the default; nothing is built)"""
    return None


class MixtureOfExperts(Sharing):
    """Shared experts (+ optional per-task experts) mixed by one softmax gate per task over the fused vector."""

    def __init__(self, width: int, tasks: Sequence[str], shared: int, own: int, hidden: int, dropout: float) -> None:
        super().__init__(width, tasks)
        if shared < 1 or own < 0:
            raise ValueError(f"experts must be >= 1 (shared) and >= 0 (per task), got {shared} and {own}")
        hidden = hidden or width
        self.shared = nn.ModuleList(_expert(width, hidden, dropout) for _ in range(shared))
        self.own = nn.ModuleDict(
            {t: nn.ModuleList(_expert(width, hidden, dropout) for _ in range(own)) for t in self.tasks}
        )
        self.gates = nn.ModuleDict({t: nn.Linear(width, shared + own) for t in self.tasks})
        self._last_gates: dict[str, Tensor] = {}

    def forward(self, fused: Tensor) -> dict[str, Tensor]:
        shared = [expert(fused) for expert in self.shared]
        out = {}
        for task in self.tasks:
            experts = torch.stack(shared + [expert(fused) for expert in self.own[task]], dim=1)  # [B, E, W]
            gate = torch.softmax(self.gates[task](fused), dim=1)  # [B, E]
            self._last_gates[task] = gate.detach().mean(dim=0)
            out[task] = (gate.unsqueeze(2) * experts).sum(dim=1)
        return out

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [*self.gates[task].parameters(), *self.own[task].parameters()]

    def gate_weights(self) -> dict[str, Tensor]:
        return dict(self._last_gates)


@SHARINGS.register("mmoe")
def mmoe(width: int, tasks: Sequence[str], *, experts: int = 4, hidden: int = 0, dropout: float = 0.0) -> Sharing:
    """Multi-gate mixture of experts (Ma et al. 2018): shared expert MLPs, one softmax gate per task"""
    return MixtureOfExperts(width, tasks, experts, 0, hidden, dropout)


@SHARINGS.register("cgc")
def cgc(
    width: int,
    tasks: Sequence[str],
    *,
    shared_experts: int = 2,
    task_experts: int = 1,
    hidden: int = 0,
    dropout: float = 0.0,
) -> Sharing:
    """Customized gate control (PLE, Tang et al. 2020): shared + task-specific experts, a gate per task"""
    return MixtureOfExperts(width, tasks, shared_experts, task_experts, hidden, dropout)


class CrossStitch(Sharing):
    """One MLP column per task; after each layer the columns are mixed by a learned T x T cross-stitch matrix."""

    def __init__(self, width: int, tasks: Sequence[str], layers: int, self_weight: float, dropout: float) -> None:
        super().__init__(width, tasks)
        if layers < 1 or not 0 < self_weight <= 1:
            raise ValueError(f"layers must be >= 1 and self_weight in (0, 1], got {layers} and {self_weight}")
        n = len(self.tasks)
        self.columns = nn.ModuleList(
            nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout)) for _ in self.tasks)
            for _ in range(layers)
        )
        off = (1 - self_weight) / (n - 1)
        start = torch.full((n, n), off) + torch.eye(n) * (self_weight - off)
        self.stitches = nn.ParameterList(nn.Parameter(start.clone()) for _ in range(layers))

    def forward(self, fused: Tensor) -> dict[str, Tensor]:
        x = fused.unsqueeze(0).expand(len(self.tasks), *fused.shape)  # [T, B, W]
        for layer, stitch in zip(self.columns, self.stitches):
            x = torch.stack([column(x[i]) for i, column in enumerate(layer)])
            x = torch.einsum("ts,sbw->tbw", stitch, x)
        return {task: x[i] for i, task in enumerate(self.tasks)}


@SHARINGS.register("cross_stitch")
def cross_stitch(
    width: int, tasks: Sequence[str], *, layers: int = 1, self_weight: float = 0.9, dropout: float = 0.0
) -> Sharing:
    """Cross-stitch units (Misra et al. 2016): a column per task, columns mixed by learned T x T matrices"""
    return CrossStitch(width, tasks, layers, self_weight, dropout)
