"""Run trained models on aligned data: per-patient predictions in the format of ``mmtune.training.predictions``
(plus a ``group`` column), and the ensemble mean of several models' probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmtune.inference.align import Aligned, align
from mmtune.inference.runs import TrainedRun, resolve_run
from mmtune.training.model_spec import ModelSpec


def load_model(run: TrainedRun, spec: ModelSpec):
    """The run's model with its checkpoint weights, in eval mode on the CPU."""
    from mmtune.config.run import RunConfig
    from mmtune.models import build_model

    cfg = RunConfig.model_validate(run.config)
    model = build_model(cfg.model, spec.image, len(spec.features), list(spec.tasks))
    prefix = "model."
    weights = {k[len(prefix) :]: v for k, v in run.state["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(weights)
    return model.eval()


def predict_aligned(run: TrainedRun, spec: ModelSpec, aligned: Aligned, batch_size: int = 32) -> pd.DataFrame:
    """One model's predictions for every aligned patient (rows in the data's order)."""
    import torch

    from mmtune.data.loading import numpy_to_batch
    from mmtune.training.predictions import PredictionBuffer

    model = load_model(run, spec)
    info = aligned.info
    buffer = PredictionBuffer(list(spec.tasks), [aligned.manifest.name], "predict")
    n = len(aligned.meta)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            batch = numpy_to_batch({k: v[idx] for k, v in aligned.columns.items()}, info)  # type: ignore[arg-type]
            buffer.add(model(batch), batch)
    frame = buffer.frame()
    frame["split"] = aligned.meta["split"].to_numpy()
    frame.insert(2, "group", aligned.meta["group"].to_numpy())
    return frame


def ensemble(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The mean of several models' predictions on the same patients: probabilities, regression values and
    per-patient segmentation scores are averaged; ``pred_<task>`` is the argmax of the mean probabilities."""
    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    for other in frames[1:]:
        if list(other.columns) != list(first.columns) or list(other["patient_id"]) != list(first["patient_id"]):
            from mmtune.errors import UserError

            raise UserError(
                "--ensemble: the models predict different tasks or classes; ensemble models of one run config"
            )
    out = first.copy()
    averaged = [c for c in first.columns if c.startswith(("score_", "dice_", "iou_", "mse_"))]
    for column in averaged:
        out[column] = np.mean([f[column].to_numpy(dtype=float) for f in frames], axis=0).astype(np.float32)
    for column in [c for c in first.columns if c.startswith("pred_")]:
        task = column[len("pred_") :]
        scores = [c for c in first.columns if c.startswith(f"score_{task}_")]
        out[column] = out[scores].to_numpy().argmax(axis=1).astype(np.int64)
    out.attrs = dict(first.attrs)
    return out


def predict(
    run_paths: list[str | Path], data: str | Path | None, split: str, ensemble_runs: bool = False
) -> tuple[pd.DataFrame, Aligned, list[TrainedRun]]:
    """Predictions of one RUN (or the ensemble mean of several) on ``data`` (default: the first run's training
    data); returns the frame, the alignment notes and the resolved runs."""
    runs = [resolve_run(p) for p in run_paths]
    specs = [run.spec() for run in runs]
    if data is None:
        if not specs[0].data_paths:
            from mmtune.errors import UserError

            raise UserError(f"{runs[0].path}: the run does not name its training data; pass --data")
        data = specs[0].data_paths[0]
    frames = []
    aligned = None
    for run, spec in zip(runs, specs, strict=True):
        aligned = align(spec, data, split)
        batch_size = int((run.config.get("data") or {}).get("batch_size") or 32)
        frames.append(predict_aligned(run, spec, aligned, batch_size))
    assert aligned is not None
    if len(frames) > 1 and not ensemble_runs:
        raise ValueError("several runs need ensemble_runs=True here")
    return ensemble(frames), aligned, runs
