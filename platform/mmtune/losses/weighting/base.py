"""The weighting interface shared by loss weightings and gradient-manipulating weightings.

Two families:

* **loss weightings** (``manual_gradients = False``: equal, static, uncertainty, dwa, famo) turn the task losses
  into one scalar with ``combine(losses, step_info)``; Lightning's automatic optimization backpropagates it.
* **gradient weightings** (``manual_gradients = True``: gradnorm, pcgrad, cagrad, nash_mtl) need per-task
  gradients of the shared parameters; ``backward(losses, shared_params, manual_backward, step_info=...)``
  computes them with ``torch.autograd.grad``, backpropagates once through ``manual_backward`` (Lightning manual
  optimization) and corrects the shared gradients. ``combine`` of these returns the plain sum (for logging).

Label masks: ``StepInfo.n_labelled`` says how many samples labelled each task in the batch; a task with none is
left out of the weighting math (its loss is an exact 0 with no gradient), so it contributes nothing and cannot
make a Gram matrix singular.

DDP: per-task gradient matrices, loss values and label counts are averaged / summed over ranks with
``torch.distributed.all_reduce`` when a process group is initialised, so every rank computes the same task
weights and projections. The one backward pass goes through ``manual_backward`` so DDP all-reduces it as usual;
the shared-gradient correction added afterwards is built from the all-reduced per-task gradients, hence identical
on every rank. Mixed precision with a loss scaler (fp16) is not supported by gradient weightings (bf16 / fp32 are).

Weightings with learnable parameters (``uncertainty``) expose them through ``parameters()``: add
``weighting.parameters()`` to the optimizer. The others keep their state in buffers (saved in checkpoints) and
update it themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mmtune.tasks import TaskKind

ManualBackward = Callable[[Tensor], Any]


@dataclass
class StepInfo:
    """What a weighting may need about the current step: counters and labelled samples per task."""

    step: int = 0
    epoch: int = 0
    n_labelled: Mapping[str, int] | None = None


@dataclass
class WeightingContext:
    """What mmtune passes every weighting: task kinds, static weights from the task configs, the model."""

    kinds: Mapping[str, TaskKind] = field(default_factory=dict)
    static_weights: Mapping[str, float] = field(default_factory=dict)
    model: nn.Module | None = None


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sync_mean(tensor: Tensor) -> Tensor:
    """Average over DDP ranks (no-op without a process group)."""
    if distributed():
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def sync_sum(tensor: Tensor) -> Tensor:
    if distributed():
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def default_backward(loss: Tensor) -> None:
    loss.backward()


class Weighting(nn.Module):
    """Base class. ``tasks`` fixes the order of every per-task vector and buffer."""

    manual_gradients: ClassVar[bool] = False
    min_tasks: ClassVar[int] = 1

    def __init__(self, tasks: Sequence[str], context: WeightingContext | None = None) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("a weighting needs at least one task")
        self.tasks = list(tasks)
        self.context = context or WeightingContext()

    # ---- masks ------------------------------------------------------------------------------------------
    def present(self, losses: Mapping[str, Tensor], step_info: StepInfo | None = None) -> list[str]:
        """Tasks with at least one labelled sample in this step (on any rank, under DDP).

        Without ``step_info.n_labelled`` a task counts as unlabelled when its loss is an exact 0.0 (what
        ``task_loss`` returns for an unlabelled batch); gradient weightings also drop tasks whose gradient on the
        shared parameters is exactly zero.
        """
        counts = step_info.n_labelled if step_info is not None else None
        flags = []
        for name in self.tasks:
            if counts is not None and name in counts:
                flags.append(float(counts[name] > 0))
            else:
                flags.append(float(self._looks_labelled(losses[name])))
        reference = next(iter(losses.values()))
        summed = sync_sum(torch.tensor(flags, device=reference.device))
        return [name for name, flag in zip(self.tasks, summed.tolist()) if flag > 0]

    def _looks_labelled(self, loss: Tensor) -> bool:
        return loss.requires_grad and bool(loss.detach() != 0)

    def loss_vector(self, losses: Mapping[str, Tensor], names: Sequence[str]) -> Tensor:
        """Detached losses of ``names`` averaged over ranks."""
        return sync_mean(torch.stack([losses[n].detach().float() for n in names]))

    # ---- the two entry points -----------------------------------------------------------------------------
    def combine(self, losses: Mapping[str, Tensor], step_info: StepInfo | None = None) -> Tensor:
        """One scalar to backpropagate (loss weightings); the plain sum for gradient weightings."""
        return torch.stack([losses[n] for n in self.tasks]).sum()

    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared_params: Sequence[nn.Parameter],
        manual_backward: ManualBackward | None = None,
        *,
        step_info: StepInfo | None = None,
    ) -> Tensor:
        """Backpropagate the weighted losses (default: ``combine`` then one backward); returns the total, detached."""
        total = self.combine(losses, step_info)
        (manual_backward or default_backward)(total)
        return total.detach()

    def on_epoch_end(self, epoch_losses: Mapping[str, float] | None = None) -> None:
        """Called once per training epoch (DWA uses it)."""

    def task_weights(self) -> dict[str, float]:
        """Current weight of each task (for logging)."""
        return dict.fromkeys(self.tasks, 1.0)


class GradientWeighting(Weighting):
    """Base of weightings that manipulate per-task gradients of the shared parameters.

    Subclasses implement ``coefficients(grads, losses)`` returning ``(beta, head_weights)`` over the present
    tasks: the shared gradient becomes ``sum_k beta_k g_k``; each task's own parameters get ``head_weights_k``
    times their gradient. One backward of ``sum_k head_weights_k L_k`` runs through ``manual_backward``; the shared
    gradients are then corrected by ``sum_k (beta_k - head_weights_k) g_k`` (skipped when equal).
    """

    manual_gradients: ClassVar[bool] = True
    min_tasks: ClassVar[int] = 2

    def _looks_labelled(self, loss: Tensor) -> bool:
        return loss.requires_grad  # zero-gradient rows are dropped after the gradients are computed

    def gradient_params(self, shared_params: Sequence[nn.Parameter]) -> list[nn.Parameter]:
        """Where per-task gradients are measured (all shared parameters by default)."""
        return [p for p in shared_params if p.requires_grad]

    def coefficients(self, grads: Tensor, losses: Tensor, names: list[str]) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def shared_update(self, grads: Tensor, losses: Tensor, names: list[str]) -> tuple[Tensor, Tensor]:
        """``(shared gradient [P], head weights [T])``; ``beta @ grads`` from ``coefficients`` by default.

        Aggregators whose result is not a fixed combination of the task gradients (GradDrop's per-coordinate
        masks) override this and return the vector directly.
        """
        beta, head = self.coefficients(grads, losses, names)
        beta = beta.detach().to(grads.dtype)
        self.remember_weights(beta, names)
        return beta @ grads, head

    def remember_weights(self, weights: Tensor, names: list[str]) -> None:
        """Keep this step's per-task weights of the shared gradient for ``task_weights`` (converted lazily)."""
        self._last_weights = (weights.detach(), list(names))

    def task_weights(self) -> dict[str, float]:
        """The last step's weight of each task's gradient in the shared update (1.0 before any step)."""
        last = getattr(self, "_last_weights", None)
        if last is None:
            return dict.fromkeys(self.tasks, 1.0)
        values = dict(zip(last[1], last[0].tolist()))
        return {t: float(values.get(t, 0.0)) for t in self.tasks}

    def backward(self, losses, shared_params, manual_backward=None, *, step_info=None):
        present = self.present(losses, step_info)
        backward_fn = manual_backward or default_backward
        params = self.gradient_params(shared_params)
        grads = None
        if len(present) >= 2:
            grads = sync_mean(per_task_gradients([losses[n] for n in present], params))
            nonzero = grads.abs().sum(dim=1) > 0
            present = [n for n, keep in zip(present, nonzero.tolist()) if keep]
            grads = grads[nonzero]
        if len(present) < 2 or grads is None:  # nothing to balance: plain gradient of what is labelled
            total = torch.stack([losses[n] for n in self.tasks]).sum()
            backward_fn(total)
            return total.detach()
        shared, head = self.shared_update(grads, self.loss_vector(losses, present), present)
        shared, head = shared.detach().to(grads.dtype), head.detach().to(grads.dtype)
        # unlabelled tasks' losses are exact zeros; keeping them in the graph gives their heads zero gradients
        weighted = [head[i] * losses[n] for i, n in enumerate(present)]
        total = torch.stack(weighted + [losses[n] for n in self.tasks if n not in present]).sum()
        backward_fn(total)
        correction = shared - head @ grads
        if bool((correction.abs() > 1e-6 * shared.abs().max()).any()):  # skip float noise when beta == head
            add_flat_gradient(params, correction)
        self.after_backward(shared_params)
        return total.detach()

    def after_backward(self, shared_params: Sequence[nn.Parameter]) -> None:
        """Hook after gradients are final (Nash-MTL clips the shared gradient norm here)."""


def per_task_gradients(losses: Sequence[Tensor], params: Sequence[nn.Parameter]) -> Tensor:
    """``[T, P]`` flattened gradients of each loss w.r.t. ``params`` (zeros where a loss does not reach one)."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
        )
    return torch.stack(rows)


def add_flat_gradient(params: Sequence[nn.Parameter], flat: Tensor) -> None:
    """``p.grad += flat[slice of p]`` for each parameter."""
    offset = 0
    for p in params:
        n = p.numel()
        piece = flat[offset : offset + n].view_as(p).to(p.dtype)
        p.grad = piece.clone() if p.grad is None else p.grad + piece
        offset += n
