"""Metrics of one trial's per-patient predictions (``predictions.parquet``, see ``mmtune.training.predictions``).

The report recomputes every number from the predictions rather than trusting logged metrics, so each value in a
table can be traced to patients. Task kinds are read from the columns: binary ``y_t`` (int, -1 masked) +
``score_t``; multiclass ``y_t`` + ``pred_t`` + ``score_t_<class>``; multilabel ``y_t_<label>`` + ``score_t_<label>``;
regression ``y_t`` (float, NaN masked) + ``score_t``; segmentation ``dice_t``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmtune.config.study import LOWER_IS_BETTER
from mmtune.tasks import CLASSIFICATION_KINDS, TaskKind

TASKS_ATTR = "mmtune_tasks"  # predictions.parquet ``attrs`` key: {task: {kind, classes}} (mmtune.training.predictions)
NAMES = {
    "auroc": "AUROC",
    "ap": "AP",
    "accuracy": "accuracy",
    "mae": "MAE",
    "rmse": "RMSE",
    "spearman": "Spearman",
    "dice": "Dice",
}


@dataclass(frozen=True)
class TaskColumns:
    """Where a task's labels and scores are in a predictions frame."""

    name: str
    kind: str
    labels: list[str]  # y columns (one, or one per label for multilabel)
    scores: list[str]  # score columns (one, or one per class / label)
    classes: list[str]  # class / label keys (multiclass, multilabel)


def detect_tasks(
    columns: Sequence[str], dtypes: dict[str, object] | None = None, declared: Mapping[str, Any] | None = None
) -> dict[str, TaskColumns]:
    """Tasks found in a predictions frame's columns, in column order.

    ``declared`` (the file's ``attrs["mmtune_tasks"]``: kind and class keys per task) settles what the column names
    cannot: multilabel ``y_<task>_<label>`` columns look like binary or regression tasks named ``<task>_<label>``.
    Files without it (older runs) fall back to the column names alone.
    """
    cols = list(columns)
    present = set(cols)
    out: dict[str, TaskColumns] = {}
    claimed: set[str] = set()
    for name, spec in (declared or {}).items():
        if spec.get("kind") != TaskKind.MULTILABEL:
            continue
        keys = [str(k) for k in spec.get("classes") or []]
        labels, scores = [f"y_{name}_{k}" for k in keys], [f"score_{name}_{k}" for k in keys]
        if keys and all(c in present for c in labels + scores):
            out[name] = TaskColumns(name, TaskKind.MULTILABEL.value, labels, scores, keys)
            claimed.update(labels + scores)
    cols = [c for c in cols if c not in claimed]
    for col in cols:
        if col.startswith("dice_"):
            name = col[len("dice_") :]
            out.setdefault(name, TaskColumns(name, TaskKind.SEGMENTATION.value, [], [col], []))
            continue
        if not col.startswith("y_"):
            continue
        name = col[2:]
        if f"pred_{name}" in present:
            scores = [c for c in cols if c.startswith(f"score_{name}_")]
            out[name] = TaskColumns(
                name, TaskKind.MULTICLASS.value, [col], scores, [c[len(f"score_{name}_") :] for c in scores]
            )
        elif f"score_{name}" in present:
            kind = TaskKind.BINARY.value
            if dtypes is not None and np.issubdtype(np.dtype(str(dtypes.get(col, "float64"))), np.floating):
                kind = TaskKind.REGRESSION.value
            out[name] = TaskColumns(name, kind, [col], [f"score_{name}"], [])
    for col in cols:  # multilabel: y_<task>_<label> with a matching score and no y_<task>
        if not col.startswith("y_") or col[2:] in out:
            continue
        if f"score_{col[2:]}" not in present:
            continue
        stem = col[2:]
        if any(stem.startswith(t + "_") for t in out):
            continue
        task, _, label = stem.rpartition("_")
        if not task:
            continue
        entry = out.get(task)
        if entry is None:
            out[task] = TaskColumns(task, TaskKind.MULTILABEL.value, [col], [f"score_{stem}"], [label])
        elif entry.kind == TaskKind.MULTILABEL:
            entry.labels.append(col)
            entry.scores.append(f"score_{stem}")
            entry.classes.append(label)
    return out


def default_metrics(tasks: dict[str, TaskColumns]) -> list[str]:
    """AUROC per classification task, MAE and Spearman per regression task, Dice per segmentation task."""
    out: list[str] = []
    for name, task in tasks.items():
        if task.kind in CLASSIFICATION_KINDS:
            out.append(f"{name}/auroc")
        elif task.kind == TaskKind.REGRESSION:
            out += [f"{name}/mae", f"{name}/spearman"]
        elif task.kind == TaskKind.SEGMENTATION:
            out.append(f"{name}/dice")
    return out


def higher_is_better(metric_key: str) -> bool:
    return metric_key.rsplit("/", 1)[-1] not in LOWER_IS_BETTER


def label_of(metric_key: str) -> str:
    """``morbidity/auroc`` -> ``morbidity AUROC``."""
    task, _, metric = metric_key.rpartition("/")
    return f"{task} {NAMES.get(metric, metric)}"


def labelled(frame: pd.DataFrame, task: TaskColumns) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of the patients labelled for ``task`` (binary/multiclass: y >= 0; others: finite y)."""
    y = frame[task.labels[0]].to_numpy()
    if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
        keep = np.asarray(y, dtype=float) >= 0
        y = np.asarray(y, dtype=float)[keep].astype(np.int64)
    else:
        keep = np.isfinite(np.asarray(y, dtype=float))
        y = np.asarray(y, dtype=float)[keep]
    scores = frame[task.scores].to_numpy(dtype=float)[keep]
    return y, scores[:, 0] if scores.shape[1] == 1 and task.kind != TaskKind.MULTICLASS else scores


def metric_value(frame: pd.DataFrame, task: TaskColumns, metric: str) -> tuple[float, int]:
    """(value, labelled patients) of ``metric`` on ``frame``; NaN when undefined (one class only, too few)."""
    fn = metric_function(task, metric)
    if fn is None:
        return float("nan"), 0
    if task.kind == TaskKind.SEGMENTATION:
        values = frame[task.scores[0]].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        return (float(values.mean()) if values.size else float("nan")), int(values.size)
    if task.kind == TaskKind.MULTILABEL:
        return _multilabel(frame, task, metric)
    y, s = labelled(frame, task)
    if y.size == 0:
        return float("nan"), 0
    try:
        return float(fn(y, s)), int(y.size)
    except ValueError:
        return float("nan"), int(y.size)


def metric_function(task: TaskColumns, metric: str) -> Callable[[np.ndarray, np.ndarray], float] | None:
    """``fn(y, score)`` for a task kind and metric name, or ``None`` when the pair makes no sense."""
    from scipy.stats import spearmanr
    from sklearn.metrics import average_precision_score

    from mmtune.analysis.stats import roc_auc

    kind = task.kind
    if kind in (TaskKind.BINARY, TaskKind.MULTILABEL):
        table: dict[str, Callable] = {
            "auroc": lambda y, s: _defined(y, lambda: roc_auc(y, s)),
            "ap": lambda y, s: _defined(y, lambda: average_precision_score(y, s)),
            "accuracy": lambda y, s: float(np.mean((s >= 0.5) == (y == 1))),
        }
        return table.get(metric)
    if kind == TaskKind.MULTICLASS:
        table = {
            "auroc": lambda y, s: _defined(y, lambda: macro_auroc(y, s)),
            "accuracy": lambda y, s: float(np.mean(np.argmax(s, axis=1) == y)),
        }
        return table.get(metric)
    if kind == TaskKind.REGRESSION:
        table = {
            "mae": lambda y, s: float(np.mean(np.abs(s - y))),
            "rmse": lambda y, s: float(np.sqrt(np.mean((s - y) ** 2))),
            "spearman": lambda y, s: float(spearmanr(y, s).statistic) if y.size > 2 else float("nan"),
        }
        return table.get(metric)
    if kind == TaskKind.SEGMENTATION:
        return (lambda y, s: float("nan")) if metric == "dice" else None
    return None


def macro_auroc(y: np.ndarray, proba: np.ndarray) -> float:
    """Macro one-vs-rest AUROC over the classes present (= ``stats.auroc_multiclass(...).macro``), by midranks:
    fast enough to bootstrap (``auroc_multiclass`` goes through scikit-learn per class)."""
    from scipy.stats import rankdata

    y = np.asarray(y)
    aucs = []
    for c in range(proba.shape[1]):
        pos = y == c
        n1 = int(pos.sum())
        n0 = y.size - n1
        if n1 == 0 or n0 == 0:
            continue
        ranks = rankdata(proba[:, c])
        aucs.append((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))
    return float(np.mean(aucs)) if aucs else float("nan")


def _defined(y: np.ndarray, compute: Callable[[], float]) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(compute())


def _multilabel(frame: pd.DataFrame, task: TaskColumns, metric: str) -> tuple[float, int]:
    values, counts = [], []
    for y_col, s_col in zip(task.labels, task.scores, strict=True):
        part = TaskColumns(task.name, TaskKind.BINARY.value, [y_col], [s_col], [])
        sub = frame[[y_col, s_col]].copy()
        sub[y_col] = np.where(np.isfinite(sub[y_col].to_numpy(dtype=float)), sub[y_col], -1)
        value, n = metric_value(sub, part, metric)
        if np.isfinite(value):
            values.append(value)
            counts.append(n)
    return (float(np.mean(values)) if values else float("nan")), (max(counts) if counts else 0)


def roc_panels(frame: pd.DataFrame, task: TaskColumns) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(panel title, binary labels, scores) per ROC panel: one for a binary task, one-vs-rest per class otherwise."""
    if task.kind == TaskKind.BINARY:
        y, s = labelled(frame, task)
        return [(task.name, y, s)]
    if task.kind == TaskKind.MULTICLASS:
        y, s = labelled(frame, task)
        return [(f"{task.name}: {c} vs rest", (y == i).astype(np.int64), s[:, i]) for i, c in enumerate(task.classes)]
    return []
