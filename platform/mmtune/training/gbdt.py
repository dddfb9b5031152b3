"""A GBDT reference cell (``model.reference: gbdt``) evaluated like a network: metrics from ``RunMetrics``, losses
from the task losses, ``predictions.parquet`` rows from ``PredictionBuffer`` (the models are in
:mod:`mmtune.models.gbdt`); fitted on the run's training rows (fold / held-out group as for a network)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtune.config.run import RunConfig
from mmtune.data.format import IMAGE
from mmtune.data.loading import SplitArrays, numpy_to_batch
from mmtune.data.multisource import DataInfo
from mmtune.models.gbdt import features, fit_task, gbdt_params, task_output


@dataclass
class GBDTResult:
    """Metrics (``val/...``, ``test/...``), per-split prediction frames and the fitting time."""

    metrics: dict[str, float]
    frames: list[pd.DataFrame]
    fit_s: float


def fit_predict(cfg: RunConfig, info: DataInfo, splits: Mapping[str, SplitArrays]) -> GBDTResult:
    """Fit one model per task on ``splits['train']``, then score every other split like a network's evaluate."""
    from mmtune.losses.tasks import task_losses
    from mmtune.training.metrics import RunMetrics
    from mmtune.training.predictions import PredictionBuffer

    params = gbdt_params(cfg)
    started = time.perf_counter()
    train = splits["train"].columns
    x_train = features(train)
    models = {t.name: fit_task(t, x_train, train[t.label_column], params, cfg.trainer.seed) for t in info.tasks}
    fit_s = time.perf_counter() - started
    names = info.source_names if info.multi_source else []
    options = {t.name: t for t in cfg.tasks}
    metrics: dict[str, float] = {}
    frames = []
    for split, arrays in splits.items():
        if split == "train" or len(arrays) == 0:
            continue
        cols = dict(arrays.columns)
        cols[IMAGE] = np.zeros((len(arrays), 1), np.float16)  # no image is read; the batch needs the key
        batch = numpy_to_batch(cols, info)
        x = features(cols)
        outputs = {t.name: task_output(t, models[t.name], x) for t in info.tasks}
        run_metrics = RunMetrics(info.tasks, names)
        run_metrics.update(outputs, batch)
        metrics.update(run_metrics.compute(split))
        losses, _ = task_losses(info.tasks, outputs, batch, options)
        metrics[f"{split}/loss"] = float(sum(loss.item() for loss in losses.values()))
        buffer = PredictionBuffer(info.tasks, info.source_names, split)
        buffer.add(outputs, batch)
        frames.append(buffer.frame())
    return GBDTResult(metrics, frames, fit_s)


def write_reference_run(
    cfg: RunConfig, info: DataInfo, directory: Path, *, run_name: str, logger: Any = None
) -> tuple[dict[str, float], str | None]:
    """Fit, evaluate and write ``predictions.parquet`` + ``metrics.json`` (``complete: true``) into ``directory``;
    the metrics also go to ``logger`` (the run's Aim logger, one step; closed here). Returns metrics and Aim hash."""
    from mmtune.data.loading import load_splits
    from mmtune.results_files import METRICS_FILE, PREDICTIONS_FILE
    from mmtune.training.artifacts import write_metrics_json
    from mmtune.training.predictions import write_predictions

    splits = load_splits(info, cache="memory")
    result = fit_predict(cfg, info, splits)
    write_predictions(directory / PREDICTIONS_FILE, result.frames)
    aim_hash = None
    if logger is not None:
        try:
            logger.log_metrics({**result.metrics, "epoch": 1}, step=0)
            aim_hash = logger.run_hash
        finally:
            logger.close()
    write_metrics_json(
        directory / METRICS_FILE,
        result.metrics,
        epochs=1,
        best_epoch=1,
        aim_hash=aim_hash,
        monitor=cfg.trainer.monitor,
        extra={"run_name": run_name, "reference": "gbdt", "fit_s": round(result.fit_s, 3), "complete": True},
    )
    return result.metrics, aim_hash
