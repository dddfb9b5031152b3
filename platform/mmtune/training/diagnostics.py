"""Multi-task diagnostics, once per epoch: each task's weight, its gradient norm on the shared parameters and the
cosine between every pair of task gradients (negative = conflict), measured on one fixed small batch.

Why a fixed batch: the numbers are comparable across epochs and trials (the same patients every time), and the
cost is one forward pass plus one backward per task on ``size`` samples per epoch, against the epoch's full
training passes. The model runs in eval mode for it (no dropout noise, batch-norm statistics untouched) and no
``.grad`` is written: ``torch.autograd.grad`` returns the gradients.

Keys (epoch metrics, hence Aim metrics and ``trials.parquet`` columns): ``diag/<task>/weight``,
``diag/<task>/grad_norm``, ``diag/<a>~<b>/grad_cosine``. A task with no label in the fixed batch gets NaN (Aim
skips NaN). Under DDP each rank measures its own fixed batch; rank 0's values are what get logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

import torch
from torch import Tensor, nn

PREFIX = "diag"


def fixed_batch(batch: Mapping[str, Any], size: int) -> dict[str, Any]:
    """The first ``size`` samples of ``batch``, detached and copied (kept for the whole run)."""
    return {k: v[:size].detach().clone() if isinstance(v, Tensor) else v for k, v in batch.items()}


def gradient_diagnostics(
    model: nn.Module,
    losses_of: Callable[[Mapping[str, Tensor]], tuple[dict[str, Tensor], dict[str, int]]],
    batch: Mapping[str, Any],
    weights: Mapping[str, float],
) -> dict[str, float]:
    """Weight, shared-gradient norm and pairwise gradient cosine of every task on ``batch``."""
    from mmtune.losses.weighting.base import per_task_gradients

    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            losses, counts = losses_of(model(batch))
            params = [p for p in model.shared_parameters() if p.requires_grad]
            names = [n for n in losses if counts.get(n, 0) > 0 and losses[n].requires_grad]
            grads = per_task_gradients([losses[n] for n in names], params) if names else None
    finally:
        model.train(was_training)
    out = {f"{PREFIX}/{task}/weight": float(weights.get(task, float("nan"))) for task in losses}
    norms = dict.fromkeys(losses, float("nan"))
    if grads is not None:
        norms.update(zip(names, grads.norm(dim=1).tolist()))
    out.update({f"{PREFIX}/{task}/grad_norm": value for task, value in norms.items()})
    out.update(_cosines(list(losses), names, grads))
    return out


def _cosines(tasks: Sequence[str], measured: Sequence[str], grads: Tensor | None) -> dict[str, float]:
    out = {}
    for a, b in combinations(tasks, 2):
        value = float("nan")
        if grads is not None and a in measured and b in measured:
            ga, gb = grads[measured.index(a)], grads[measured.index(b)]
            value = float(torch.nn.functional.cosine_similarity(ga, gb, dim=0))
        out[f"{PREFIX}/{a}~{b}/grad_cosine"] = value
    return out
