"""Tune schedulers that remember which trials they stopped early (Tune itself marks them TERMINATED, like trials
that finished their budget), so ``trials.parquet`` can say which trials ASHA cut.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from mmtune.config.search import SchedulerConfig

EARLY_STOPS_FILE = "early_stops.txt"


class RecordingASHA(ASHAScheduler):
    """ASHA that appends the id of every trial it stops before ``max_t`` to ``stops_file`` (one id per line)."""

    def __init__(self, stops_file: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stops_file = stops_file
        self.record_max_t = int(kwargs["max_t"])

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._record(trial, result, super().on_trial_result(tune_controller, trial, result))

    def _record(self, trial: Any, result: dict, decision: str) -> str:
        if decision == TrialScheduler.STOP and int(result.get("training_iteration", 0)) < self.record_max_t:
            Path(self.stops_file).parent.mkdir(parents=True, exist_ok=True)
            with open(self.stops_file, "a", encoding="utf-8") as handle:
                handle.write(f"{trial.trial_id}\n")
                handle.flush()
                os.fsync(handle.fileno())
        return decision


def build_scheduler(cfg: SchedulerConfig, max_t: int, stops_file: Path) -> TrialScheduler:
    """ASHA or HyperBand over epochs (``training_iteration``), or FIFO (every trial runs its full budget).

    ``hyperband`` is asynchronous HyperBand: ASHA with several brackets (``brackets``, at least 3), each with its
    own grace period, so it hedges against a grace period too short to judge. Tune's synchronous
    ``HyperBandScheduler`` pauses trials between rungs and can end a study with trials still paused.
    """
    if cfg.name == "fifo":
        return FIFOScheduler()
    brackets = max(cfg.brackets, 3) if cfg.name == "hyperband" else cfg.brackets
    return RecordingASHA(
        str(stops_file),
        time_attr="training_iteration",
        max_t=max_t,
        grace_period=min(cfg.grace_period, max_t),
        reduction_factor=cfg.reduction_factor,
        brackets=brackets,
    )


def early_stopped(stops_file: Path) -> set[str]:
    """Ids of trials a scheduler stopped early."""
    if not stops_file.is_file():
        return set()
    return {line.strip() for line in stops_file.read_text(encoding="utf-8").splitlines() if line.strip()}
