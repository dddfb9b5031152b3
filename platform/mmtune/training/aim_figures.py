"""What a finished run adds to its Aim run besides metrics: ROC + PR, calibration and decision-curve figures of its
final val / test predictions (``mmtune.analysis.clinical.run_figures``), and a montage of a few validation
patients' slices so ``aim up`` shows what the model saw.

The montage never carries identifiers: its caption names split row numbers, not patient ids. Aim names:
``roc_pr`` / ``calibration`` / ``decision`` with context ``{"subset": split, "task": task}``; ``slices`` with
``{"subset": "val"}``. Logging is best effort: a figure that cannot be drawn never fails the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from mmtune.data.format import IMAGE

MONTAGE_PATIENTS = 4
MONTAGE_SLICES = 4


def montage(images: np.ndarray, patients: int = MONTAGE_PATIENTS, slices: int = MONTAGE_SLICES) -> np.ndarray:
    """One row per patient, evenly spaced slices across; 2-D stacks ``(B, S, H, W)`` or volumes ``(B, 1, D, H, W)``
    -> a 2-D array in [0, 1] with 1-pixel separators."""
    arr = np.asarray(images, dtype=np.float32)[:patients]
    while arr.ndim > 4:  # volumes: drop the channel axis
        arr = arr[:, 0]
    if arr.ndim == 3:
        arr = arr[:, None]
    depth = arr.shape[1]
    picks = np.unique(np.linspace(0, depth - 1, min(slices, depth)).round().astype(int))
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if lo < 0.0 or hi > 1.0:  # not a [0, 1] window: stretch for display
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    h, w = arr.shape[2:]
    out = np.ones((len(arr) * (h + 1) - 1, len(picks) * (w + 1) - 1), np.float32)
    for i, patient in enumerate(arr):
        for j, s in enumerate(picks):
            out[i * (h + 1) : i * (h + 1) + h, j * (w + 1) : j * (w + 1) + w] = patient[s]
    return out


def first_images(batches: Iterable[Mapping[str, Any]] | None) -> np.ndarray | None:
    """The image tensor of the first batch of ``batches`` as numpy (None without one)."""
    if batches is None:
        return None
    for batch in batches:
        image = batch.get(IMAGE)
        if image is None:
            return None
        return image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    return None


def aim_run_of(loggers: Iterable[Any]) -> Any:
    """The open Aim run of the first mmtune Aim logger among ``loggers`` (None when tracking is off)."""
    from mmtune.tracking.aim import MMTuneAimLogger

    for logger in loggers:
        if isinstance(logger, MMTuneAimLogger):
            return logger.experiment
    return None


def track_final(run: Any, frames: list[pd.DataFrame], val_batches: Iterable[Mapping[str, Any]] | None) -> None:
    """Track the final figures and the slice montage into ``run`` (see the module docstring)."""
    if run is None:
        return
    from mmtune.analysis.clinical.run_figures import run_figures
    from mmtune.analysis.task_metrics import TASKS_ATTR
    from mmtune.console import warn
    from mmtune.tracking.aim_objects import array_image, png_image

    try:
        kept = [f for f in frames if f is not None and len(f)]
        if not kept:
            return
        predictions = pd.concat(kept, ignore_index=True)
        declared: dict[str, Any] = {}
        for frame in kept:
            declared.update(frame.attrs.get(TASKS_ATTR) or {})
        predictions.attrs[TASKS_ATTR] = declared
        for fig in run_figures(predictions):
            context = {"subset": fig.split, "task": fig.task}
            run.track(png_image(fig.png, fig.caption), name=fig.kind, context=context)
        images = first_images(val_batches)
        if images is not None and len(images):
            n = min(len(images), MONTAGE_PATIENTS)
            caption = f"validation rows 0-{n - 1} (row numbers, not patient ids); slices left to right"
            run.track(array_image(montage(images), caption), name="slices", context={"subset": "val"})
    except Exception as exc:  # figures are extras; the run's results are already written
        warn(f"Aim figures not logged ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
