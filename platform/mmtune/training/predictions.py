"""Per-patient predictions of validation / test patients, the raw material of every statistic in a report.

Columns of ``predictions.parquet`` (one row per patient and split):

* ``patient_id``, ``dataset`` (source name), ``split`` (``val``/``test``);
* binary task ``t``: ``y_t`` (int, -1 = no label), ``score_t`` (probability of class 1);
* multiclass: ``y_t`` (int, -1 = no label), ``pred_t`` (argmax), ``score_t_<class>`` (probabilities);
* multilabel: ``y_t_<label>`` (float, NaN = no label), ``score_t_<label>`` (probabilities);
* regression: ``y_t`` (float, NaN = no label), ``score_t`` (prediction);
* segmentation: ``dice_t``, ``iou_t`` (NaN when the patient has no mask); reconstruction: ``mse_t``.

Class / label names appear as :func:`mmtune.training.metrics.class_key` (``Type I`` -> ``type_i``). The file's
pandas ``attrs`` (kept in the Parquet metadata) hold ``mmtune_tasks``: each task's kind and class keys, because the
columns alone are ambiguous (``y_findings_ground_glass`` + ``score_findings_ground_glass`` could be a regression
task named ``findings_ground_glass``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmtune.analysis.task_metrics import TASKS_ATTR
from mmtune.atomic import atomic_write_bytes
from mmtune.tasks import TaskKind, TaskSpec
from mmtune.training.metrics import class_keys, scores_from_output, segmentation_scores


def task_declarations(tasks: list[TaskSpec]) -> dict[str, dict[str, Any]]:
    """``{task: {kind, classes}}`` as stored in a predictions file's ``attrs`` (see the module docstring)."""
    return {t.name: {"kind": t.kind.value, "classes": class_keys(t) if t.classes else []} for t in tasks}


class PredictionBuffer:
    """Collects the predictions of one pass over a split, batch by batch."""

    def __init__(self, tasks: list[TaskSpec], dataset_names: list[str], split: str) -> None:
        self.tasks = list(tasks)
        self.dataset_names = list(dataset_names) or ["data"]
        self.split = split
        self._parts: list[dict[str, np.ndarray]] = []

    def add(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> None:
        ids = batch.get("patient_id")
        if ids is None:
            return
        n = len(ids)
        dataset = batch.get("dataset")
        ds_index = dataset.detach().cpu().numpy() if dataset is not None else np.zeros(n, np.int64)
        part: dict[str, np.ndarray] = {
            "patient_id": np.asarray(ids, dtype=object),
            "dataset": np.asarray([self.dataset_names[int(i)] for i in ds_index], dtype=object),
        }
        for task in self.tasks:
            part.update(task_columns(task, outputs[task.name], batch))
        self._parts.append(part)

    def frame(self) -> pd.DataFrame:
        if not self._parts:
            return pd.DataFrame({"patient_id": pd.Series(dtype=str), "dataset": pd.Series(dtype=str)}).assign(
                split=self.split
            )
        keys = self._parts[0].keys()
        data = {k: np.concatenate([p[k] for p in self._parts]) for k in keys}
        frame = pd.DataFrame(data)
        frame.insert(2, "split", self.split)
        frame.attrs[TASKS_ATTR] = task_declarations(self.tasks)
        return frame

    def clear(self) -> None:
        self._parts = []


def task_columns(task: TaskSpec, output: torch.Tensor, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The prediction columns of one task for one batch (see the module docstring)."""
    name = task.name
    kind = task.kind
    if kind == TaskKind.SEGMENTATION:
        n = output.shape[0]
        dice = np.full(n, np.nan, np.float32)
        iou = np.full(n, np.nan, np.float32)
        has = batch["has_mask"].bool().cpu()
        if bool(has.any()):
            d, i = segmentation_scores(output[has.to(output.device)], batch["mask"][has.to(output.device)])
            dice[has.numpy()] = d.cpu().numpy()
            iou[has.numpy()] = i.cpu().numpy()
        return {f"dice_{name}": dice, f"iou_{name}": iou}
    if kind == TaskKind.RECONSTRUCTION:
        err = (output.detach().float() - batch["image"].float()) ** 2
        return {f"mse_{name}": err.reshape(err.shape[0], -1).mean(dim=1).cpu().numpy()}
    scores = scores_from_output(task, output).cpu().numpy()
    labels = batch[task.label_column].detach().cpu().numpy()
    if kind == TaskKind.BINARY:
        y = np.where(np.isnan(labels), -1, labels).astype(np.int64)
        return {f"y_{name}": y, f"score_{name}": scores.astype(np.float32)}
    if kind == TaskKind.MULTICLASS:
        out = {f"y_{name}": labels.astype(np.int64), f"pred_{name}": scores.argmax(axis=1).astype(np.int64)}
        for c, key in enumerate(class_keys(task)):
            out[f"score_{name}_{key}"] = scores[:, c].astype(np.float32)
        return out
    if kind == TaskKind.MULTILABEL:
        out = {}
        for j, key in enumerate(class_keys(task)):
            out[f"y_{name}_{key}"] = labels[:, j].astype(np.float32)
            out[f"score_{name}_{key}"] = scores[:, j].astype(np.float32)
        return out
    return {f"y_{name}": labels.astype(np.float32), f"score_{name}": scores.astype(np.float32)}


MODALITY_DROPPED = "modality_dropped"


def without_modality(
    module: Any, loaders: Mapping[str, Any], modality: str = "clinical"
) -> tuple[dict[str, float], list[pd.DataFrame]]:
    """Missing-modality robustness (ablation reports): each split evaluated with ``modality`` removed at test time.

    Returns metrics keyed ``<split>_no_<modality>/...`` and prediction frames marked ``modality_dropped =
    modality``; both empty unless the model's fusion reads both image and clinical features."""
    fusion = module.model.fusion
    if not (getattr(fusion, "uses_clinical", False) and getattr(fusion, "uses_image", False)):
        return {}, []
    metrics: dict[str, float] = {}
    frames = []
    for split, batches in loaders.items():
        if batches is not None:
            values, frame = module.evaluate(batches, split, drop_modality=modality)
            metrics.update({k.replace(f"{split}/", f"{split}_no_{modality}/", 1): v for k, v in values.items()})
            frames.append(frame.assign(**{MODALITY_DROPPED: modality}))
    return metrics, frames


def without_modality_frames(module: Any, loaders: Mapping[str, Any], modality: str = "clinical") -> list[pd.DataFrame]:
    """The prediction frames of :func:`without_modality`."""
    return without_modality(module, loaders, modality)[1]


def write_predictions(path: str | Path, frames: list[pd.DataFrame]) -> Path:
    """Concatenate split frames and write Parquet atomically."""
    import io

    parts = [f for f in frames if f is not None]
    frame = pd.concat(parts, ignore_index=True)
    declared: dict[str, Any] = {}
    for part in parts:
        declared.update(part.attrs.get(TASKS_ATTR) or {})
    frame.attrs = {TASKS_ATTR: declared} if declared else {}
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return atomic_write_bytes(path, buffer.getvalue())
