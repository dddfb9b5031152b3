"""Per-task metrics (torchmetrics / MONAI) that honour label masks: unlabelled samples never count.

Each task accumulates the scores and labels of its *labelled* samples over an epoch (a torchmetrics ``Metric`` with
``cat`` states) and computes its metric dict at the end; metrics that a subset cannot define (AUROC with one class,
Spearman of a constant) are NaN, never an exception. Keys follow docs/architecture.md:
``<subset>/<task>/<metric>``, ``<subset>/mean_auroc`` and, for multi-dataset runs, ``<subset>/<dataset>/<task>/...``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torchmetrics.functional.classification as tmc
from torchmetrics import Metric
from torchmetrics.functional.regression import mean_absolute_error, mean_squared_error, spearman_corrcoef
from torchmetrics.utilities import dim_zero_cat

from mmtune.tasks import TaskKind, TaskSpec

NAN = float("nan")


def class_key(name: str) -> str:
    """A class or label name as it appears in metric keys and prediction columns (``Type I`` -> ``type_i``)."""
    key = re.sub(r"[^0-9a-zA-Z]+", "_", str(name)).strip("_").lower()
    return key or "class"


def class_keys(task: TaskSpec) -> list[str]:
    keys = [class_key(c) for c in task.classes]
    if len(set(keys)) != len(keys):  # two names collapse to one key: fall back to indices
        keys = [f"{k}_{i}" for i, k in enumerate(keys)]
    return keys


def scores_from_output(task: TaskSpec, output: torch.Tensor) -> torch.Tensor:
    """Model output -> what metrics and predictions store: probabilities (classification) or values."""
    output = output.detach().float()
    if task.kind == TaskKind.BINARY:
        return torch.sigmoid(output.reshape(output.shape[0]))
    if task.kind == TaskKind.MULTICLASS:
        return torch.softmax(output, dim=-1)
    if task.kind == TaskKind.MULTILABEL:
        return torch.sigmoid(output)
    if task.kind == TaskKind.REGRESSION:
        return output.reshape(output.shape[0])
    return output


def labelled(task: TaskSpec, target: torch.Tensor) -> torch.Tensor:
    """Bool ``[B]`` (``[B, L]`` for multilabel) of samples that carry a label for ``task``."""
    if task.kind == TaskKind.MULTICLASS:
        return target >= 0
    return ~torch.isnan(target)


# ----------------------------------------------------------------------------------------------------------------
# metric dicts from accumulated (scores, labels) of labelled samples


def _value(fn: Callable[[], torch.Tensor]) -> float:
    try:
        value = float(fn())
    except (ValueError, RuntimeError, ZeroDivisionError):
        return NAN
    return value if math.isfinite(value) else NAN


def _both_classes(labels: torch.Tensor) -> bool:
    return labels.numel() > 0 and bool((labels == 1).any()) and bool((labels == 0).any())


def binary_metrics(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """AUROC, AP, accuracy, F1 and balanced accuracy at threshold 0.5; NaN where undefined."""
    labels = labels.long()
    if labels.numel() == 0:
        return dict.fromkeys(("auroc", "ap", "accuracy", "f1", "balanced_accuracy"), NAN)
    both = _both_classes(labels)
    out = {
        "auroc": _value(lambda: tmc.binary_auroc(scores, labels)) if both else NAN,
        "ap": _value(lambda: tmc.binary_average_precision(scores, labels)) if both else NAN,
        "accuracy": _value(lambda: tmc.binary_accuracy(scores, labels)),
        "f1": _value(lambda: tmc.binary_f1_score(scores, labels)),
    }
    if both:
        recall = tmc.binary_recall(scores, labels)
        specificity = tmc.binary_specificity(scores, labels)
        out["balanced_accuracy"] = _value(lambda: (recall + specificity) / 2)
    else:
        out["balanced_accuracy"] = NAN
    return out


def multiclass_metrics(scores: torch.Tensor, labels: torch.Tensor, keys: list[str]) -> dict[str, float]:
    """Macro one-vs-rest AUROC/AP over the classes present, per-class AUROC, accuracy, macro F1, balanced accuracy."""
    labels = labels.long()
    n_classes = scores.shape[-1] if scores.dim() == 2 else len(keys)
    out: dict[str, float] = {}
    per_auroc, per_ap = [], []
    for c, key in enumerate(keys):
        is_c = (labels == c).long()
        if _both_classes(is_c):
            auroc = _value(lambda c=c, is_c=is_c: tmc.binary_auroc(scores[:, c], is_c))
            ap = _value(lambda c=c, is_c=is_c: tmc.binary_average_precision(scores[:, c], is_c))
        else:
            auroc = ap = NAN
        out[f"auroc_{key}"] = auroc
        per_auroc.append(auroc)
        per_ap.append(ap)
    out["auroc"] = _nanmean(per_auroc)
    out["ap"] = _nanmean(per_ap)
    if labels.numel() == 0:
        out.update(accuracy=NAN, f1=NAN, balanced_accuracy=NAN)
        return out
    preds = scores.argmax(dim=-1)
    out["accuracy"] = _value(lambda: (preds == labels).float().mean())
    confusion = tmc.multiclass_confusion_matrix(preds, labels, num_classes=n_classes).double()
    true_count = confusion.sum(dim=1)
    present = true_count > 0
    recall = confusion.diag() / true_count.clamp(min=1)
    out["balanced_accuracy"] = _value(lambda: recall[present].mean()) if bool(present.any()) else NAN
    # macro F1 over the classes that occur in labels or predictions (as scikit-learn does)
    pred_count = confusion.sum(dim=0)
    used = present | (pred_count > 0)
    f1 = 2 * confusion.diag() / (true_count + pred_count).clamp(min=1)
    out["f1"] = _value(lambda: f1[used].mean())
    return out


def multilabel_metrics(scores: torch.Tensor, labels: torch.Tensor, keys: list[str]) -> dict[str, float]:
    """Per label (its labelled entries only): AUROC, AP, sensitivity, specificity, F1, MCC; macro means."""
    out: dict[str, float] = {}
    names = ("auroc", "ap", "sensitivity", "specificity", "f1", "mcc", "accuracy")
    per: dict[str, list[float]] = {n: [] for n in names}
    for j, key in enumerate(keys):
        keep = ~torch.isnan(labels[:, j])
        s, y = scores[keep, j], labels[keep, j].long()
        values = _binary_label_metrics(s, y)
        for name in names:
            per[name].append(values[name])
            if name != "accuracy":
                out[f"{name}_{key}"] = values[name]
    for name in names:
        out[name] = _nanmean(per[name])
    return out


def _binary_label_metrics(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    if labels.numel() == 0:
        return dict.fromkeys(("auroc", "ap", "sensitivity", "specificity", "f1", "mcc", "accuracy"), NAN)
    both = _both_classes(labels)
    has_pos, has_neg = bool((labels == 1).any()), bool((labels == 0).any())
    return {
        "auroc": _value(lambda: tmc.binary_auroc(scores, labels)) if both else NAN,
        "ap": _value(lambda: tmc.binary_average_precision(scores, labels)) if both else NAN,
        "sensitivity": _value(lambda: tmc.binary_recall(scores, labels)) if has_pos else NAN,
        "specificity": _value(lambda: tmc.binary_specificity(scores, labels)) if has_neg else NAN,
        "f1": _value(lambda: tmc.binary_f1_score(scores, labels)),
        "mcc": _mcc(scores, labels),
        "accuracy": _value(lambda: tmc.binary_accuracy(scores, labels)),
    }


def _mcc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """MCC at threshold 0.5; 0 when predictions or labels hold one class (the denominator is zero: scikit-learn's
    convention). torchmetrics 1.9 returns epsilon-limit values there (0.47 for an all-negative predictor of a 20 %
    prevalence label; Lightning-AI/torchmetrics#3355), which would rank a constant classifier as informative."""
    preds = scores > 0.5  # torchmetrics' thresholding
    if bool(preds.all()) or not bool(preds.any()) or not _both_classes(labels):
        return 0.0
    return _value(lambda: tmc.binary_matthews_corrcoef(scores, labels))


def regression_metrics(preds: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """MAE, RMSE and Spearman's rho (NaN with fewer than 3 samples or a constant series)."""
    if labels.numel() == 0:
        return {"mae": NAN, "rmse": NAN, "spearman": NAN}
    preds, labels = preds.double(), labels.double()
    constant = bool(preds.std() == 0) or bool(labels.std() == 0) if labels.numel() > 1 else True
    return {
        "mae": _value(lambda: mean_absolute_error(preds, labels)),
        "rmse": _value(lambda: mean_squared_error(preds, labels, squared=False)),
        "spearman": NAN if constant or labels.numel() < 3 else _value(lambda: spearman_corrcoef(preds, labels)),
    }


def segmentation_scores(output: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample Dice and IoU of thresholded logits against a binary mask (MONAI; empty vs empty = 1)."""
    from monai.metrics import compute_dice, compute_iou

    n = output.shape[0]
    pred = (output.detach().float() > 0).reshape(n, 1, -1).float()
    target = (mask.float() > 0.5).reshape(n, 1, -1).float()
    dice = compute_dice(pred, target, include_background=True, ignore_empty=False).reshape(n)
    iou = compute_iou(pred, target, include_background=True, ignore_empty=False).reshape(n)
    return dice, iou


def task_metric_dict(task: TaskSpec, scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The metric dict of one task from its labelled samples (segmentation: per-sample Dice/IoU in ``scores``)."""
    kind = task.kind
    if kind == TaskKind.BINARY:
        return binary_metrics(scores, labels)
    if kind == TaskKind.MULTICLASS:
        return multiclass_metrics(scores, labels, class_keys(task))
    if kind == TaskKind.MULTILABEL:
        return multilabel_metrics(scores, labels, class_keys(task))
    if kind == TaskKind.REGRESSION:
        return regression_metrics(scores, labels)
    if kind == TaskKind.SEGMENTATION:
        if scores.numel() == 0:
            return {"dice": NAN, "iou": NAN}
        return {"dice": _value(lambda: scores[:, 0].mean()), "iou": _value(lambda: scores[:, 1].mean())}
    if kind == TaskKind.RECONSTRUCTION:
        return {"mse": _value(lambda: scores.mean()) if scores.numel() else NAN}
    raise ValueError(kind)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else NAN


# ----------------------------------------------------------------------------------------------------------------
# epoch accumulation


class TaskMetric(Metric):
    """Collects the labelled samples of one task over an epoch (scores, labels, data-set index)."""

    full_state_update = False

    def __init__(self, task: TaskSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("dataset", default=[], dist_reduce_fx="cat")

    def update(self, output: torch.Tensor, batch: Mapping[str, Any]) -> None:
        task = self.task
        dataset = batch.get("dataset")
        if task.kind == TaskKind.SEGMENTATION:
            has = batch["has_mask"].bool()
            if not bool(has.any()):
                return
            dice, iou = segmentation_scores(output[has], batch["mask"][has])
            scores, labels = torch.stack([dice, iou], dim=1), torch.zeros(int(has.sum()))
            keep = has
        elif task.kind == TaskKind.RECONSTRUCTION:
            err = (output.detach().float() - batch["image"].float()) ** 2
            scores = err.reshape(err.shape[0], -1).mean(dim=1)
            labels = torch.zeros_like(scores)
            keep = torch.ones_like(scores, dtype=torch.bool)
        else:
            target = batch[task.label_column]
            mask = labelled(task, target)
            keep = mask.any(dim=1) if task.kind == TaskKind.MULTILABEL else mask
            scores = scores_from_output(task, output)[keep]
            labels = target[keep].float()
        self.scores.append(scores.detach().float())
        self.labels.append(labels.detach().float().to(scores.device))
        ds = dataset[keep] if dataset is not None else torch.zeros(int(keep.sum()), dtype=torch.long)
        self.dataset.append(ds.to(scores.device).long())

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        return self.metrics()

    def gathered(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(self.scores, list):
            if not self.scores:
                return torch.zeros(0), torch.zeros(0), torch.zeros(0, dtype=torch.long)
            return dim_zero_cat(self.scores), dim_zero_cat(self.labels), dim_zero_cat(self.dataset)
        return self.scores, self.labels, self.dataset

    def metrics(self, dataset: int | None = None) -> dict[str, float]:
        scores, labels, ds = self.gathered()
        if dataset is not None:
            keep = ds == dataset
            scores, labels = scores[keep], labels[keep]
        return task_metric_dict(self.task, scores.cpu(), labels.cpu())


class RunMetrics(torch.nn.Module):
    """All tasks' metrics of one subset (val or test); ``compute(prefix)`` returns the flat metric-key dict."""

    def __init__(self, tasks: list[TaskSpec], dataset_names: list[str] | None = None, sync: bool = False) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.dataset_names = list(dataset_names or [])
        self.per_task = torch.nn.ModuleDict(
            {t.name: TaskMetric(t, sync_on_compute=sync, dist_sync_on_step=False) for t in self.tasks}
        )

    def update(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> None:
        for task in self.tasks:
            self.per_task[task.name].update(outputs[task.name], batch)

    def compute(self, prefix: str) -> dict[str, float]:
        out: dict[str, float] = {}
        aurocs = []
        for task in self.tasks:
            metric = self.per_task[task.name]
            values = metric.metrics()
            out.update({f"{prefix}/{task.name}/{k}": v for k, v in values.items()})
            if task.is_classification:
                aurocs.append(values.get("auroc", NAN))
            if len(self.dataset_names) > 1:
                for index, name in enumerate(self.dataset_names):
                    part = metric.metrics(dataset=index)
                    out.update({f"{prefix}/{name}/{task.name}/{k}": v for k, v in part.items()})
        if aurocs:
            out[f"{prefix}/mean_auroc"] = _nanmean(aurocs)
        return out

    def reset(self) -> None:
        for metric in self.per_task.values():
            metric.reset()


def metric_keys(tasks: list[TaskSpec], subset: str = "val", dataset_names: list[str] | None = None) -> list[str]:
    """Every metric key a run with ``tasks`` logs for ``subset`` (validates ``trainer.monitor`` before training)."""
    keys = [f"{subset}/loss"]
    for task in tasks:
        empty = torch.zeros((0, max(1, len(task.classes))))
        scores = empty if task.kind in (TaskKind.MULTICLASS, TaskKind.MULTILABEL) else torch.zeros(0)
        labels = empty if task.kind == TaskKind.MULTILABEL else torch.zeros(0)
        names = list(task_metric_dict(task, scores, labels))
        keys += [f"{subset}/{task.name}/{n}" for n in names]
        if dataset_names and len(dataset_names) > 1:
            keys += [f"{subset}/{d}/{task.name}/{n}" for d in dataset_names for n in names]
    if any(t.is_classification for t in tasks):
        keys.append(f"{subset}/mean_auroc")
    return keys
