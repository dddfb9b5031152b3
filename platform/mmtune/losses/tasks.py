"""Per-task losses that honour label masks: masked samples contribute nothing; no labels -> exactly 0 (with grad).

Labels come from the batch (``y_<task>``: binary float with NaN or int with -1 masked, multiclass int64 with -1,
regression float NaN, multilabel ``[B, L]`` float with NaN entries; segmentation ``mask`` + ``has_mask``;
reconstruction targets the image). Every loss is a mean over the labelled samples of the batch only, so one model
can learn from several data sets that label different tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmtune.config.run import TaskConfig
from mmtune.losses.registries import TASK_LOSSES
from mmtune.tasks import TaskKind, TaskSpec, label_column

DEFAULT_LOSS = {
    TaskKind.BINARY: "bce",
    TaskKind.MULTICLASS: "ce",
    TaskKind.MULTILABEL: "bce",
    TaskKind.REGRESSION: "mse",
    TaskKind.SEGMENTATION: "dice_ce",
    TaskKind.RECONSTRUCTION: "mse",
}

LossFn = Callable[[TaskSpec, Tensor, Tensor, TaskConfig], Tensor]


def loss_name(task: TaskSpec, options: TaskConfig | None) -> str:
    return (options.loss if options is not None and options.loss else None) or DEFAULT_LOSS[task.kind]


def allowed_losses(kind: TaskKind) -> list[str]:
    return [e.name for e in TASK_LOSSES if kind.value in e.tags.get("kinds", ())]


def label_mask(task: TaskSpec, batch: Mapping[str, Any]) -> Tensor:
    """Bool mask of labelled samples ``[B]`` (``[B, L]`` entries for multilabel)."""
    if task.kind == TaskKind.SEGMENTATION:
        return batch["has_mask"].bool()
    if task.kind == TaskKind.RECONSTRUCTION:
        image = batch["image"]
        return torch.ones(image.shape[0], dtype=torch.bool, device=image.device)
    y = batch[label_column(task.name)]
    if y.is_floating_point():
        return ~torch.isnan(y)
    return y >= 0


def n_labelled(task: TaskSpec, batch: Mapping[str, Any]) -> int:
    """How many samples of the batch carry a label for ``task`` (multilabel: at least one label)."""
    mask = label_mask(task, batch)
    return int(mask.any(dim=1).sum() if mask.dim() > 1 else mask.sum())


def _zero(output: Tensor) -> Tensor:
    # exactly 0.0 yet connected to the graph, so backward / autograd.grad still work
    return output.sum() * 0.0


def task_loss(task: TaskSpec, output: Tensor, batch: Mapping[str, Any], options: TaskConfig | None = None) -> Tensor:
    """The masked loss of one task; ``options`` picks the loss and its weights (``pos_weight``, ``class_weights``).

    ``pos_weight="auto"`` / ``class_weights="balanced"`` must be resolved from the training labels first
    (``resolve_task_options``); here they have to be numbers.
    """
    options = options or TaskConfig(name=task.name)
    mask = label_mask(task, batch)
    if not bool(mask.any()):
        return _zero(output)
    fn: LossFn = TASK_LOSSES.get(loss_name(task, options), f"tasks.{task.name}.loss")
    if task.kind == TaskKind.RECONSTRUCTION:
        return fn(task, output, batch["image"], options)
    if task.kind == TaskKind.SEGMENTATION:
        return fn(task, output[mask], batch["mask"][mask], options)
    y = batch[label_column(task.name)]
    if task.kind == TaskKind.MULTILABEL:
        return fn(task, output, y, options)  # per-entry masking inside
    return fn(task, output[mask], y[mask], options)


def _pos_weight(options: TaskConfig, like: Tensor) -> Tensor | None:
    if options.pos_weight is None:
        return None
    if isinstance(options.pos_weight, str):
        raise ValueError(f"tasks.{options.name}.pos_weight 'auto' must be resolved before computing the loss")
    return torch.as_tensor(float(options.pos_weight), dtype=like.dtype, device=like.device)


@TASK_LOSSES.register("bce", kinds=("binary", "multilabel"))
def bce(task: TaskSpec, output: Tensor, target: Tensor, options: TaskConfig) -> Tensor:
    """Binary cross-entropy on logits (optional pos_weight); multilabel: per label, NaN entries masked"""
    pos_weight = _pos_weight(options, output)
    if task.kind == TaskKind.MULTILABEL:
        valid = ~torch.isnan(target)
        losses = F.binary_cross_entropy_with_logits(
            output, torch.nan_to_num(target), pos_weight=pos_weight, reduction="none"
        )
        return losses[valid].mean()
    return F.binary_cross_entropy_with_logits(output, target.to(output.dtype), pos_weight=pos_weight)


@TASK_LOSSES.register("ce", kinds=("multiclass",))
def ce(task: TaskSpec, output: Tensor, target: Tensor, options: TaskConfig) -> Tensor:
    """Cross-entropy over classes (optional class weights: a weighted mean, as torch defines it)"""
    weight = None
    if options.class_weights is not None:
        if isinstance(options.class_weights, str):
            raise ValueError(f"tasks.{options.name}.class_weights 'balanced' must be resolved before the loss")
        weight = torch.as_tensor(options.class_weights, dtype=output.dtype, device=output.device)
    return F.cross_entropy(output, target.long(), weight=weight)


@TASK_LOSSES.register("mse", kinds=("regression", "reconstruction"))
def mse(task: TaskSpec, output: Tensor, target: Tensor, options: TaskConfig) -> Tensor:
    """Mean squared error"""
    return F.mse_loss(output, target.to(output.dtype))


@TASK_LOSSES.register("smooth_l1", kinds=("regression", "reconstruction"))
def smooth_l1(task: TaskSpec, output: Tensor, target: Tensor, options: TaskConfig) -> Tensor:
    """Smooth L1 (Huber, beta=1): robust to outlying scores"""
    return F.smooth_l1_loss(output, target.to(output.dtype))


@TASK_LOSSES.register("l1", kinds=("regression", "reconstruction"))
def l1(task: TaskSpec, output: Tensor, target: Tensor, options: TaskConfig) -> Tensor:
    """Mean absolute error"""
    return F.l1_loss(output, target.to(output.dtype))


def _segmentation_pair(output: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``[N, C, *spatial]`` logits and a matching 0/1 target (one channel per foreground class).

    Slice stacks with one class come as ``[N, K, H, W]`` (per-slice maps): they are scored as one ``[1, K, H, W]``
    volume per patient, so slices without lesion do not each count as a separate, empty Dice.
    """
    if output.dim() == mask.dim():  # binary: [N,K,H,W] stacks or [N,1,D,H,W] volumes
        if output.dim() == 4:
            output, mask = output.unsqueeze(1), mask.unsqueeze(1)
        return output, mask.to(output.dtype).clamp(0, 1)
    labels = mask.long() if mask.dim() == output.dim() - 1 else mask.squeeze(1).long()
    onehot = torch.stack([(labels == c) for c in range(1, output.shape[1] + 1)], dim=1)
    return output, onehot.to(output.dtype)


@TASK_LOSSES.register("dice_ce", kinds=("segmentation",))
def dice_ce(task: TaskSpec, output: Tensor, target: Tensor, options: TaskConfig) -> Tensor:
    """MONAI Dice (per patient) + binary cross-entropy on sigmoid logits"""
    from monai.losses import DiceCELoss, DiceLoss

    logits, onehot = _segmentation_pair(output, target)
    if logits.shape[1] == 1:
        return DiceCELoss(sigmoid=True)(logits, onehot)
    return DiceLoss(sigmoid=True)(logits, onehot) + F.binary_cross_entropy_with_logits(logits, onehot)


@TASK_LOSSES.register("dice", kinds=("segmentation",))
def dice(task: TaskSpec, output: Tensor, target: Tensor, options: TaskConfig) -> Tensor:
    """MONAI soft Dice (per patient) on sigmoid logits"""
    from monai.losses import DiceLoss

    logits, onehot = _segmentation_pair(output, target)
    return DiceLoss(sigmoid=True)(logits, onehot)


def task_losses(
    tasks: Sequence[TaskSpec],
    outputs: Mapping[str, Tensor],
    batch: Mapping[str, Any],
    options: Mapping[str, TaskConfig] | None = None,
) -> tuple[dict[str, Tensor], dict[str, int]]:
    """Every task's masked loss and its labelled-sample count (what weightings need in ``StepInfo``)."""
    options = options or {}
    losses = {t.name: task_loss(t, outputs[t.name], batch, options.get(t.name)) for t in tasks}
    counts = {t.name: n_labelled(t, batch) for t in tasks}
    return losses, counts


def resolve_task_options(task: TaskSpec, options: TaskConfig, labels: np.ndarray | None) -> TaskConfig:
    """Replace ``pos_weight="auto"`` / ``class_weights="balanced"`` with numbers from training ``labels``.

    ``labels`` are the task's training-split labels as stored (-1 / NaN masked). Degenerate splits (no positives)
    fall back to 1.0 rather than dividing by zero.
    """
    update: dict[str, Any] = {}
    y = np.asarray(labels if labels is not None else [], dtype=float)
    if task.kind == TaskKind.MULTILABEL and y.ndim == 2:
        y = y.reshape(-1)
    y = y[~np.isnan(y)]
    if task.kind != TaskKind.MULTILABEL:
        y = y[y >= 0]
    if options.pos_weight == "auto":
        positives = float((y > 0.5).sum())
        negatives = float((y <= 0.5).sum())
        update["pos_weight"] = negatives / positives if positives and negatives else 1.0
    if options.class_weights == "balanced":
        n_classes = len(task.classes)
        counts = np.bincount(y.astype(int), minlength=n_classes)[:n_classes].astype(float)
        weights = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
        update["class_weights"] = [float(w) for w in weights]
    return options.model_copy(update=update) if update else options
