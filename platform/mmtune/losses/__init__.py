"""Masked per-task losses and task-loss weightings."""

from __future__ import annotations

from mmtune.losses.tasks import (
    DEFAULT_LOSS,
    label_mask,
    n_labelled,
    resolve_task_options,
    task_loss,
    task_losses,
)

__all__ = ["DEFAULT_LOSS", "label_mask", "n_labelled", "resolve_task_options", "task_loss", "task_losses"]
