"""RUN arguments of ``mmtune predict`` / ``mmtune evaluate``: where the checkpoint, config and validation
predictions of a trained model are.

Accepted: a ``mmtune train`` run directory (``checkpoints/best.ckpt``), a Ray Tune trial directory (``best.ckpt``),
a study's ``results/<study>/trials/<trial>/`` (its Tune trial directory is found through ``trials.parquet``), or a
checkpoint file written by mmtune (it holds the run config).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmtune.errors import UserError
from mmtune.results_files import PREDICTIONS_FILE
from mmtune.training.model_spec import DATA_KEY, ModelSpec

CONFIG_KEY = "mmtune_config"  # = mmtune.training.module.CONFIG_KEY (kept here so this module imports no Lightning)
TRAIN_CHECKPOINT = Path("checkpoints") / "best.ckpt"
TRIAL_CHECKPOINT = "best.ckpt"
EXPECTED = (
    "expected a `mmtune train` run directory (checkpoints/best.ckpt), a trial directory (best.ckpt, or "
    "results/<study>/trials/<trial>) or an mmtune checkpoint file"
)


class RunError(UserError):
    """A RUN argument that is not a run, a trial or a checkpoint."""


@dataclass
class TrainedRun:
    """One trained model: its checkpoint state, config, data spec and (when kept) validation predictions."""

    path: Path
    label: str
    checkpoint: Path
    state: dict[str, Any]
    config: dict[str, Any]
    predictions: Path | None

    def spec(self) -> ModelSpec:
        stored = self.state.get(DATA_KEY)
        if stored:
            return ModelSpec.model_validate(stored)
        return _spec_from_config(self)

    def validation_predictions(self) -> pd.DataFrame | None:
        """The run's own validation predictions (where operating thresholds are chosen), if it kept them."""
        if self.predictions is None or not self.predictions.is_file():
            return None
        frame = pd.read_parquet(self.predictions)
        rows = frame[frame["split"] == "val"] if "split" in frame.columns else frame.iloc[0:0]
        if "modality_dropped" in rows.columns:
            rows = rows[rows["modality_dropped"].fillna("").astype(str) == ""]
        return rows if len(rows) else None


def resolve_run(path: str | Path) -> TrainedRun:
    """See the module docstring; anything else is a one-line ``RunError``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise RunError(f"{path}: not found; {EXPECTED}")
    predictions: Path | None = None
    if path.is_file():
        checkpoint, label = path, path.stem if path.stem != "best" else path.parent.name
    elif (path / TRAIN_CHECKPOINT).is_file():
        checkpoint, label, predictions = path / TRAIN_CHECKPOINT, path.name, path / PREDICTIONS_FILE
    elif (path / TRIAL_CHECKPOINT).is_file():
        checkpoint, label, predictions = path / TRIAL_CHECKPOINT, path.name, path / PREDICTIONS_FILE
    else:
        checkpoint = _study_trial_checkpoint(path)
        label, predictions = path.name, path / PREDICTIONS_FILE
    state = _load(checkpoint)
    config = state.get(CONFIG_KEY)
    if not isinstance(config, dict):
        raise RunError(f"{checkpoint}: a checkpoint without an mmtune run config ({CONFIG_KEY}); {EXPECTED}")
    return TrainedRun(path, label, checkpoint, state, config, predictions)


def _study_trial_checkpoint(path: Path) -> Path:
    """``results/<study>/trials/<trial>/`` -> its Tune trial directory's ``best.ckpt`` (via ``trials.parquet``)."""
    trials = path.parent.parent / "trials.parquet"
    if not (path / "config.yaml").is_file() or path.parent.name != "trials" or not trials.is_file():
        raise RunError(f"{path}: {EXPECTED}")
    try:
        frame = pd.read_parquet(trials, columns=["trial", "trial_dir"])
    except (OSError, ValueError, KeyError):
        raise RunError(f"{trials}: unreadable trials table; {EXPECTED}") from None
    rows = frame[frame["trial"].astype(str) == path.name]
    if rows.empty or not isinstance(rows.iloc[0]["trial_dir"], str):
        raise RunError(f"{path}: trial {path.name!r} is not in {trials}")
    checkpoint = Path(rows.iloc[0]["trial_dir"]) / TRIAL_CHECKPOINT
    if not checkpoint.is_file():
        raise RunError(f"{path}: the trial kept no best checkpoint ({checkpoint} is missing)")
    return checkpoint


def _load(checkpoint: Path) -> dict[str, Any]:
    import pickle
    import zipfile

    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunError(f"{checkpoint}: not a readable checkpoint ({first[:120]}); {EXPECTED}") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise RunError(f"{checkpoint}: not a Lightning checkpoint; {EXPECTED}")
    return state


def _spec_from_config(run: TrainedRun) -> ModelSpec:
    """Older checkpoints: rebuild the spec from the training data named in the config (must still exist)."""
    from mmtune.config.run import RunConfig
    from mmtune.data.multisource import resolve_data
    from mmtune.errors import DataError
    from mmtune.training.model_spec import spec_from_info

    cfg = RunConfig.model_validate(run.config)
    try:
        info = resolve_data(cfg.data, cfg.task_names)
    except DataError as exc:
        raise RunError(
            f"{run.checkpoint}: the checkpoint predates stored data specs and its training data is unavailable ({exc})"
        ) from None
    return spec_from_info(info)
