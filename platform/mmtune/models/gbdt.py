"""The gradient-boosted clinical-only reference model (``model.reference: gbdt``): scikit-learn trees per task.

Ablations need an honest floor for "does the image help?": a tree ensemble on the clinical table is what a
reviewer would fit first. One ``HistGradientBoostingClassifier`` / ``Regressor`` per task (per label for
multilabel tasks), missing clinical values as NaN (the trees route them natively). Predictions come back as the
outputs a network would give (logits, or values), so metrics, losses and ``predictions.parquet`` are computed by
the same code as for every other cell (:mod:`mmtune.training.gbdt`). Params are checked like any component's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mmtune.config.run import RunConfig
from mmtune.data.format import CLINICAL, CLINICAL_MISSING
from mmtune.errors import ConfigError
from mmtune.models.registries import REFERENCES
from mmtune.registry import validate_params
from mmtune.tasks import DENSE_KINDS, TaskKind, TaskSpec

WHERE = "model.reference_params"
EPS = 1e-6


@REFERENCES.register("gbdt", source="sklearn", modality="clinical")
def gbdt(
    *,
    max_iter: int = 200,
    learning_rate: float = 0.05,
    max_leaf_nodes: int = 15,
    min_samples_leaf: int = 10,
    l2_regularization: float = 0.0,
    max_depth: int | None = None,
) -> dict[str, Any]:
    """No network: sklearn HistGradientBoosting per task on the clinical table (an ablation's reference cell)

    Missing clinical values are NaN (the trees route them); params go under ``model.reference_params``.
    """
    return {
        "max_iter": max_iter,
        "learning_rate": learning_rate,
        "max_leaf_nodes": max_leaf_nodes,
        "min_samples_leaf": min_samples_leaf,
        "l2_regularization": l2_regularization,
        "max_depth": max_depth,
    }


def gbdt_params(cfg: RunConfig) -> dict[str, Any]:
    """``model.reference_params`` checked against :func:`gbdt`'s signature, with the defaults filled in."""
    return gbdt(**validate_params(REFERENCES.entry("gbdt", "model.reference"), cfg.model.reference_params, WHERE))


def check_reference(cfg: RunConfig, tasks: list[TaskSpec], n_clinical: int) -> None:
    """A GBDT cell needs clinical features and classification / regression tasks only (one line each)."""
    gbdt_params(cfg)
    if n_clinical == 0:
        raise ConfigError("model.reference: 'gbdt' fits the clinical features but the data have none")
    for task in tasks:
        if task.kind in DENSE_KINDS:
            raise ConfigError(
                f"model.reference: 'gbdt' predicts from the clinical table; {task.kind.value} task {task.name!r} "
                "needs an image model"
            )


def features(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Standardised clinical values with NaN where the value is missing (trees learn where to send them)."""
    values = np.asarray(columns[CLINICAL], dtype=np.float64).copy()
    values[np.asarray(columns[CLINICAL_MISSING]) > 0.5] = np.nan
    return values


# ---------------------------------------------------------------------------------------------------- per task


class _Constant:
    """What a task with one observed class (or value) predicts: that, for everyone."""

    def __init__(self, value: np.ndarray) -> None:
        self.value = value

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.repeat(self.value[None], len(x), axis=0)


def fit_task(task: TaskSpec, x: np.ndarray, y: np.ndarray, params: dict[str, Any], seed: int) -> Any:
    if task.kind == TaskKind.MULTILABEL:
        return [_fit_binary(x, y[:, j], params, seed) for j in range(y.shape[1])]
    if task.kind == TaskKind.REGRESSION:
        from sklearn.ensemble import HistGradientBoostingRegressor

        rows = np.isfinite(y)
        if rows.sum() < 2:
            return _Constant(np.array(np.nanmean(y) if rows.any() else 0.0))
        return HistGradientBoostingRegressor(random_state=seed, **params).fit(x[rows], y[rows])
    if task.kind == TaskKind.BINARY:
        return _fit_binary(x, y, params, seed)
    return _fit_multiclass(x, y, len(task.classes), params, seed)


def _fit_binary(x: np.ndarray, y: np.ndarray, params: dict[str, Any], seed: int) -> Any:
    rows = np.isfinite(y) & (y >= 0)
    return _fit_multiclass(x[rows], y[rows].astype(np.int64), 2, params, seed)


def _fit_multiclass(x: np.ndarray, y: np.ndarray, n_classes: int, params: dict[str, Any], seed: int) -> Any:
    """A classifier whose ``predict`` gives ``[N, n_classes]`` probabilities (classes absent from training: 0)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rows = y >= 0
    x, y = x[rows], y[rows]
    present = np.unique(y)
    if len(present) < 2:
        value = np.zeros(n_classes)
        value[present[0] if len(present) else 0] = 1.0
        return _Constant(value)
    model = HistGradientBoostingClassifier(random_state=seed, **params).fit(x, y)
    return _Probabilities(model, n_classes)


class _Probabilities:
    def __init__(self, model: Any, n_classes: int) -> None:
        self.model = model
        self.n_classes = n_classes

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.n_classes))
        out[:, self.model.classes_.astype(np.int64)] = self.model.predict_proba(x)
        return out


def task_output(task: TaskSpec, model: Any, x: np.ndarray) -> torch.Tensor:
    """The network-style output: logits for classification (so sigmoid / softmax give the probabilities back)."""
    if task.kind == TaskKind.REGRESSION:
        return torch.as_tensor(model.predict(x), dtype=torch.float32).reshape(len(x))
    if task.kind == TaskKind.MULTILABEL:
        p = np.stack([m.predict(x)[:, 1] for m in model], axis=1)
        return torch.as_tensor(_logit(p), dtype=torch.float32)
    p = model.predict(x)
    if task.kind == TaskKind.BINARY:
        return torch.as_tensor(_logit(p[:, 1]), dtype=torch.float32)
    return torch.as_tensor(np.log(np.clip(p, EPS, 1.0)), dtype=torch.float32)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)
