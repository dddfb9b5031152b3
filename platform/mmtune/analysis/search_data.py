"""A tuning study's inputs to the search analysis: its searched dimensions, scheduler and per-epoch metric.

Read from ``results/<study>/`` without Ray: ``space.yaml`` (samplers, scheduler, metric, mode), ``trials.parquet``
(searched values, status, epochs) and ``progress.parquet`` (per-epoch validation metrics). Studies written before
those two files existed still load: dimensions are inferred from ``trials.parquet``'s columns and the per-epoch
metric from each trial's Tune ``result.json``, else only the trial's best value is known (``has_progress`` False).

Trials that errored, or whose metric is missing or not finite (diverged), are excluded and counted in ``excluded``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtune.analysis.results import read_record
from mmtune.config.search import SchedulerConfig, SpaceEntry
from mmtune.results_files import PROGRESS_FILE, SPACE_FILE, TRIAL_COLUMNS, TRIALS_FILE

CATEGORICAL = "categorical"
CONTINUOUS = "continuous"
NOT_SEARCHED = {"config", "split_id", "seed", "fold", "group", "state", "key", "cell"}


@dataclass(frozen=True)
class Dimension:
    """One searched key: categorical (choice / grid / few integers) or continuous (uniform / loguniform / randint)."""

    key: str
    kind: str  # CATEGORICAL | CONTINUOUS
    log: bool = False
    levels: tuple[Any, ...] = ()  # the declared choices (categorical)
    bounds: tuple[float, float] | None = None  # the declared range (continuous)
    conditional: bool = False  # active only `when` other keys have given values

    @property
    def short(self) -> str:
        parts = self.key.split(".")
        if len(parts) > 1 and parts[-1] == "name":
            parts = parts[:-1]
        return parts[-1]


@dataclass(frozen=True)
class Rungs:
    """The scheduler's milestones (epochs where ASHA compares trials) and the budget."""

    scheduler: str
    max_t: int
    milestones: tuple[int, ...]  # < max_t, ascending; empty for fifo

    @classmethod
    def of(cls, cfg: SchedulerConfig, max_t: int) -> Rungs:
        """Ray's ASHA milestones: ``grace * rf ** (k + s)`` for each bracket ``s`` (``_Bracket.__init__``)."""
        if cfg.name == "fifo":
            return cls(cfg.name, max_t, ())
        grace = min(cfg.grace_period, max_t)
        brackets = max(cfg.brackets, 3) if cfg.name == "hyperband" else cfg.brackets
        found: set[int] = set()
        for s in range(brackets):
            count = int(np.log(max_t / grace) / np.log(cfg.reduction_factor) - s + 1)
            # Tune stops at the first report with ``epoch >= milestone``: a fractional milestone acts at its ceiling
            found |= {math.ceil(grace * cfg.reduction_factor ** (k + s) - 1e-9) for k in range(max(count, 0))}
        return cls(cfg.name, max_t, tuple(sorted(m for m in found if m < max_t)))

    def describe(self) -> str:
        if self.scheduler == "fifo":
            return f"fifo (every trial runs {self.max_t} epochs)"
        rungs = ", ".join(str(m) for m in self.milestones) or "none"
        return f"{self.scheduler} (rungs at epoch {rungs}; max_t {self.max_t})"


@dataclass
class SearchInputs:
    """Everything the search analysis reads, once."""

    root: Path
    metric: str
    mode: str
    dimensions: list[Dimension]
    trials: pd.DataFrame  # usable trials: trial, status, epochs, stopped_early, one column per dimension
    progress: pd.DataFrame  # usable trials' metric per epoch: trial, epoch, value
    rungs: Rungs | None
    has_progress: bool
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> number of trials
    total: int = 0

    @property
    def better_is_higher(self) -> bool:
        return self.mode == "max"

    def name_of(self, key: str) -> str:
        """A dimension's short name (``model.fusion.name`` -> ``fusion``) unless two dimensions share it."""
        short = {d.key: d.short for d in self.dimensions}
        name = short.get(key, key)
        return name if list(short.values()).count(name) == 1 else key


def _entry(raw: Any) -> SpaceEntry | None:
    try:
        return SpaceEntry.model_validate(raw)
    except ValueError:
        return None


def _dimension(key: str, entry: SpaceEntry) -> Dimension:
    conditional = bool(entry.when)
    if entry.is_discrete:
        return Dimension(key, CATEGORICAL, levels=tuple(entry.values), conditional=conditional)
    lo, hi = entry.values
    if entry.kind == "randint" and hi - lo < 6:  # a handful of integers: each is a level
        return Dimension(key, CATEGORICAL, levels=tuple(range(int(lo), int(hi) + 1)), conditional=conditional)
    return Dimension(key, CONTINUOUS, log=entry.kind == "loguniform", bounds=(lo, hi), conditional=conditional)


def _inferred(key: str, values: pd.Series) -> Dimension:
    """A dimension of a study without ``space.yaml``: numbers with many distinct values are continuous."""
    present = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present)
    conditional = len(present) < len(values)
    if numeric and present.nunique() > 5:
        positive = bool((present > 0).all())
        log = positive and float(present.max()) / float(present.min()) >= 20
        return Dimension(
            key, CONTINUOUS, log=log, bounds=(float(present.min()), float(present.max())), conditional=conditional
        )
    return Dimension(key, CATEGORICAL, levels=tuple(sorted(present.unique(), key=str)), conditional=conditional)


def read_space(root: Path) -> dict[str, Any]:
    """A tuning results directory's ``space.yaml`` record; ``{}`` without one. ValueError (one line naming the file)
    when it is not readable YAML: the search analysis reads it as absent, ``mmtune confirm`` refuses it."""
    return read_record(root / SPACE_FILE)


def _read_space(root: Path) -> dict[str, Any]:
    try:
        return read_space(root)
    except ValueError:
        return {}


def _metric_of(trials: pd.DataFrame, record: dict[str, Any]) -> tuple[str | None, str]:
    metric = record.get("metric")
    if not metric:
        best = [c for c in trials.columns if isinstance(c, str) and c.startswith("best/")]
        metric = best[0][len("best/") :] if best else None
    mode = record.get("mode") or ("min" if metric and "loss" in metric else "max")
    return metric, str(mode)


def _progress_from_tune(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-epoch metric from each trial's Tune ``result.json`` (studies written before ``progress.parquet``)."""
    rows = []
    for _, row in trials.iterrows():
        path = Path(str(row.get("trial_dir") or "")) / "result.json"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                result = json.loads(line)
            except ValueError:
                continue
            if metric in result and "training_iteration" in result:
                rows.append(
                    {
                        "trial": str(row["trial"]),
                        "epoch": int(result["training_iteration"]),
                        "metric": metric,
                        "value": result[metric],
                    }
                )
    return pd.DataFrame(rows, columns=["trial", "epoch", "metric", "value"])


def load_search_inputs(root: str | Path) -> SearchInputs | None:
    """A tuning results directory's search inputs; None where the directory has no trials or no known metric."""
    root = Path(root)
    trials_path = root / TRIALS_FILE
    if not trials_path.is_file():
        return None
    trials = pd.read_parquet(trials_path)
    record = _read_space(root)
    metric, mode = _metric_of(trials, record)
    if metric is None or trials.empty:
        return None
    keys = list(record.get("space") or {}) or [
        c
        for c in trials.columns
        if c not in TRIAL_COLUMNS and c not in NOT_SEARCHED and not str(c).startswith(("best/", "final/"))
    ]
    dimensions = []
    for key in keys:
        entry = _entry((record.get("space") or {}).get(key))
        if key not in trials.columns:
            continue
        dimensions.append(_dimension(key, entry) if entry is not None else _inferred(key, trials[key]))
    rungs = None
    scheduler = record.get("scheduler")
    if isinstance(scheduler, dict) and scheduler.get("max_t"):
        try:
            rungs = Rungs.of(SchedulerConfig.model_validate(scheduler), int(scheduler["max_t"]))
        except ValueError:
            rungs = None

    progress_path = root / PROGRESS_FILE
    progress = pd.read_parquet(progress_path) if progress_path.is_file() else _progress_from_tune(trials, metric)
    progress = progress[progress["metric"] == metric][["trial", "epoch", "value"]].copy()
    progress["trial"] = progress["trial"].astype(str)
    progress["value"] = pd.to_numeric(progress["value"], errors="coerce")
    has_progress = not progress.empty

    trials = trials.copy()
    trials["trial"] = trials["trial"].astype(str)
    status = trials["status"].astype(str)
    errored, unfinished = status == "ERROR", ~status.isin(["TERMINATED", "ERROR"])
    keep = ~errored & ~unfinished
    best_col = f"best/{metric}"
    best = pd.to_numeric(trials[best_col], errors="coerce") if best_col in trials else pd.Series(np.nan, trials.index)
    if has_progress:
        per_trial = progress.groupby("trial")["value"].agg(lambda v: bool(np.isfinite(v.to_numpy(float)).all()))
        reported = trials["trial"].isin(set(progress["trial"]))
        finite = trials["trial"].map(per_trial).fillna(False).astype(bool)
    else:
        reported = best.notna()
        finite = pd.Series(np.isfinite(best.fillna(np.inf).to_numpy(float)), index=trials.index)
    diverged, silent = keep & reported & ~finite, keep & ~reported
    excluded = {
        reason: int(mask.sum())
        for reason, mask in (
            ("errored", errored),
            ("unfinished", unfinished),
            ("diverged (non-finite metric)", diverged),
            ("reported no metric", silent),
        )
        if mask.any()
    }
    usable = trials[keep & ~diverged & ~silent].reset_index(drop=True)
    if not has_progress:  # only the best value is known: one point at each trial's last epoch
        progress = pd.DataFrame(
            {
                "trial": usable["trial"],
                "epoch": usable["epochs"].astype(int),
                "value": best[keep & ~diverged & ~silent].to_numpy(),
            }
        )
    progress = progress[progress["trial"].isin(set(usable["trial"]))].sort_values(["trial", "epoch"])
    return SearchInputs(
        root=root,
        metric=metric,
        mode=mode,
        dimensions=dimensions,
        trials=usable,
        progress=progress.reset_index(drop=True),
        rungs=rungs,
        has_progress=has_progress,
        excluded=excluded,
        total=len(trials),
    )


def is_missing(value: Any) -> bool:
    """An inactive conditional value (NaN / None) in ``trials.parquet``."""
    return value is None or (isinstance(value, float) and math.isnan(value))
