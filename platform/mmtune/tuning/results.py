"""The results directory of a study, built from Tune's experiment on disk (so ``--resume`` rewrites it whole).

``results/<study>/``::

    trials.parquet          one row per trial (see ``TRIAL_COLUMNS`` + a column per searched key + metrics)
    progress.parquet        every trial's per-epoch validation metrics (trial, epoch, metric, value)
    space.yaml              the search space as run (``--set`` applied, base resolved): what the analysis reads
    trials/<trial>/         predictions.parquet (best epoch's per-patient predictions), config.yaml (ready to train)
    best_config.yaml        the best trial's run config: ``mmtune train best_config.yaml``
    tune/                   Ray Tune's experiment (checkpoints, result.json per trial; what --resume restores)

Every file appears complete or not at all (``mmtune.atomic``): ``trials/`` is built beside and renamed in.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from mmtune.atomic import atomic_directory, atomic_write_bytes, atomic_write_text
from mmtune.config.loading import get_dotted
from mmtune.console import console
from mmtune.results_files import PREDICTIONS_FILE, PROGRESS_FILE, SPACE_FILE, TRIAL_COLUMNS, TRIALS_FILE
from mmtune.trial_config import DIVERGED_KEY, REASON_KEY, RUN_KEY, strip_inactive

if TYPE_CHECKING:
    from mmtune.tuning.plan import StudyPlan
    from mmtune.tuning.space import SearchSpace

FINISHED = ("TERMINATED", "ERROR")


@dataclass(frozen=True)
class StudyPaths:
    """Where a study's files live."""

    root: Path
    experiment: str | None = None  # a new experiment that grows the study (``tune-2`` ...); default: the latest

    @property
    def tune_dir(self) -> Path:
        from mmtune.tuning.growth import FIRST_EXPERIMENT, experiment_dirs

        if self.experiment:
            return self.root / self.experiment
        found = experiment_dirs(self.root)
        return found[-1] if found else self.root / FIRST_EXPERIMENT

    @property
    def experiments(self) -> list[Path]:
        """Every Tune experiment of the study (a grown study has several), first to last."""
        from mmtune.tuning.growth import experiment_dirs

        return experiment_dirs(self.root) or [self.tune_dir]

    @property
    def trials_dir(self) -> Path:
        return self.root / "trials"

    @property
    def trials_parquet(self) -> Path:
        return self.root / TRIALS_FILE

    @property
    def progress_parquet(self) -> Path:
        return self.root / PROGRESS_FILE

    @property
    def space_file(self) -> Path:
        return self.root / SPACE_FILE

    @property
    def best_config(self) -> Path:
        return self.root / "best_config.yaml"

    @property
    def early_stops(self) -> Path:
        from mmtune.tuning.schedulers import EARLY_STOPS_FILE

        return self.tune_dir / EARLY_STOPS_FILE

    def has_experiment(self) -> bool:
        """The study was started: its first experiment has Tune state."""
        first = self.experiments[0]
        return first.is_dir() and any(first.glob("experiment_state-*.json"))


@dataclass
class StudyResults:
    """What a finished (or interrupted) search produced."""

    paths: StudyPaths
    frame: pd.DataFrame
    metric: str
    mode: str
    aim_repo: str | None
    fit_seconds: float | None = None  # wall time of Tune's fit in this session
    stop: Any = None  # mmtune.tuning.interrupt.StopRequest: the signal that stopped this session's fit, if any

    @property
    def complete(self) -> bool:
        return bool(len(self.frame)) and bool(self.frame["status"].isin(FINISHED).all())

    @property
    def errored(self) -> int:
        return int((self.frame["status"] == "ERROR").sum()) if len(self.frame) else 0

    @property
    def diverged(self) -> int:
        return int(self.frame[DIVERGED_KEY].fillna(False).astype(bool).sum()) if DIVERGED_KEY in self.frame else 0

    @property
    def unfinished(self) -> int:
        return int((~self.frame["status"].isin(FINISHED)).sum()) if len(self.frame) else 0

    @property
    def usable(self) -> pd.DataFrame:
        """Trials that ran to the end (or were stopped by the scheduler) with finite metrics: what may win."""
        column = f"best/{self.metric}"
        if column not in self.frame or not len(self.frame):
            return self.frame.iloc[0:0]
        ok = self.frame["status"] == "TERMINATED"
        if DIVERGED_KEY in self.frame:
            ok &= ~self.frame[DIVERGED_KEY].fillna(False).astype(bool)
        values = pd.to_numeric(self.frame[column], errors="coerce")
        return self.frame[ok & values.map(lambda v: math.isfinite(v) if v == v else False)]

    @property
    def best(self) -> pd.Series | None:
        """The best usable trial: never an unfinished, errored or diverged one."""
        column = f"best/{self.metric}"
        scored = self.usable
        if scored.empty:
            return None
        index = scored[column].idxmax() if self.mode == "max" else scored[column].idxmin()
        return scored.loc[index]


def run_config_of(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's Tune config -> the run config it trained (inactive conditional keys removed)."""
    return strip_inactive(dict(config.get(RUN_KEY) or {}))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _error_line(trial_dir: Path) -> str | None:
    path = trial_dir / "error.txt"
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "error"


def _find_predictions(trial_dir: Path, checkpoints: list[Any]) -> Path | None:
    """The trial's best-epoch predictions: in its directory (the trial contract), else in its best checkpoint."""
    if (trial_dir / PREDICTIONS_FILE).is_file():
        return trial_dir / PREDICTIONS_FILE
    for checkpoint in checkpoints:
        if checkpoint is not None:
            found = sorted(Path(checkpoint.path).rglob(PREDICTIONS_FILE))
            if found:
                return found[0]
    return None


def collect_trials(
    study: StudyPlan, paths: StudyPaths, searched: list[str]
) -> tuple[pd.DataFrame, dict[str, dict], dict[str, Path]]:
    """Read Tune's experiment: the trials table (a column per ``searched`` run-config key), each trial's run config,
    each trial's predictions file."""
    frame, configs, predictions, _ = _collect(study, paths, searched)
    return frame, configs, predictions


def _collect(
    study: StudyPlan, paths: StudyPaths, searched: list[str]
) -> tuple[pd.DataFrame, dict[str, dict], dict[str, Path], pd.DataFrame]:
    """``collect_trials`` plus the per-epoch progress of every trial (long format), from every experiment."""
    from ray.tune import ExperimentAnalysis

    metric, mode = study.metric, study.mode
    rows: list[dict[str, Any]] = []
    configs: dict[str, dict] = {}
    predictions: dict[str, Path] = {}
    progress: list[pd.DataFrame] = []
    for experiment in paths.experiments:
        analysis = ExperimentAnalysis(str(experiment), default_metric=metric, default_mode=mode)
        stopped = _early_stopped(StudyPaths(paths.root, experiment.name))
        _collect_experiment(analysis, stopped, paths, searched, metric, mode, rows, configs, predictions, progress)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values("trial", ignore_index=True)
    if frame.empty:
        frame = pd.DataFrame(columns=[*TRIAL_COLUMNS, *searched, f"best/{metric}", f"final/{metric}"])
    progress_frame = pd.concat(progress, ignore_index=True) if progress else _progress_of("", None)
    progress_frame = progress_frame.sort_values(["trial", "metric", "epoch"], ignore_index=True)
    return frame, configs, predictions, progress_frame


def _collect_experiment(
    analysis: Any,
    stopped: set[str],
    paths: StudyPaths,
    searched: list[str],
    metric: str,
    mode: str,
    rows: list[dict[str, Any]],
    configs: dict[str, dict],
    predictions: dict[str, Path],
    progress: list[pd.DataFrame],
) -> None:
    """One Tune experiment's trials appended to the study's rows, configs, predictions and progress."""
    frames = analysis.trial_dataframes
    for trial in analysis.trials:
        last = trial.last_result or {}
        history = frames.get(trial.trial_id)
        progress.append(_progress_of(trial.trial_id, history))
        epochs = int(last.get("training_iteration", 0) or 0)
        status = str(trial.status)
        if status != "TERMINATED" and (Path(trial.path) / "error.txt").is_file():
            status = "ERROR"  # failed past max_failures (Tune's saved state may still say PENDING)
        row: dict[str, Any] = {
            "trial": trial.trial_id,
            "status": status,
            "epochs": epochs,
            "stopped_early": trial.trial_id in stopped,
            "aim_hash": last.get("aim_hash") or None,
            "trial_dir": str(trial.path),
            "error": _error_line(Path(trial.path)) if status == "ERROR" else None,
            DIVERGED_KEY: bool(last.get(DIVERGED_KEY) or False),
        }
        if row[DIVERGED_KEY] and not row["error"]:
            row["error"] = str(last.get(REASON_KEY) or "diverged")
        config = run_config_of(trial.config)
        configs[trial.trial_id] = config
        for key in searched:
            row[key] = _cell(get_dotted(config, key))
        best, best_epoch = (None, None) if row[DIVERGED_KEY] else _best_of(history, metric, mode)
        row[f"best/{metric}"] = best
        row["best_epoch"] = best_epoch
        for key, value in sorted(last.items()):
            if isinstance(key, str) and key.split("/")[0] in ("val", "train", "test", "diag") and _is_number(value):
                row[f"final/{key}"] = float(value)
        if f"final/{metric}" not in row:
            row[f"final/{metric}"] = None
        best_ckpt = analysis.get_best_checkpoint(trial) if epochs else None
        latest = trial.checkpoint if epochs else None
        found = _find_predictions(Path(trial.path), [best_ckpt, latest])
        if found is not None:
            predictions[trial.trial_id] = found
        row["predictions"] = str(paths.trials_dir / trial.trial_id / PREDICTIONS_FILE) if found else None
        rows.append(row)


PROGRESS_COLUMNS = ("trial", "epoch", "metric", "value")


def _progress_of(trial_id: str, history: pd.DataFrame | None) -> pd.DataFrame:
    """A trial's reported validation metrics per epoch (``training_iteration``): what the scheduler saw at its
    rungs, kept so the search analysis can compare trials at a common budget without reading Tune's files."""
    empty = pd.DataFrame({"trial": [], "epoch": [], "metric": [], "value": []}).astype(
        {"trial": str, "epoch": "int64", "metric": str, "value": "float64"}
    )
    if history is None or history.empty or "training_iteration" not in history:
        return empty
    metrics = [c for c in history.columns if isinstance(c, str) and c.startswith("val/")]
    if not metrics:
        return empty
    long = history[["training_iteration", *metrics]].melt(
        id_vars="training_iteration", var_name="metric", value_name="value"
    )
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long = long.dropna(subset=["training_iteration"]).rename(columns={"training_iteration": "epoch"})
    long["epoch"] = long["epoch"].astype("int64")
    long.insert(0, "trial", trial_id)
    # a restored trial reports its resumed epochs again: keep the last report of each epoch
    return long.drop_duplicates(["trial", "epoch", "metric"], keep="last").astype({"value": "float64"})


def _early_stopped(paths: StudyPaths) -> set[str]:
    from mmtune.tuning.schedulers import early_stopped

    return early_stopped(paths.early_stops)


def _best_of(history: pd.DataFrame | None, metric: str, mode: str) -> tuple[float | None, int | None]:
    if history is None or history.empty or metric not in history:
        return None, None
    values = pd.to_numeric(history[metric], errors="coerce")
    if values.dropna().empty:
        return None, None
    index = values.idxmax() if mode == "max" else values.idxmin()
    epoch = history.loc[index].get("training_iteration", index + 1)
    return float(values.loc[index]), int(epoch)


def _cell(value: Any) -> Any:
    """Searched values as Parquet-friendly scalars (lists and mappings as JSON text)."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = frame.copy()
    for column in frame.columns:
        kinds = {type(v) for v in frame[column] if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = [None if v is None else str(v) for v in frame[column]]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    return buffer.getvalue()


def write_results(
    study: StudyPlan, paths: StudyPaths, searched: list[str], space_yaml: str | None = None
) -> StudyResults:
    """Write ``trials.parquet`` (a column per ``searched`` run-config key), ``progress.parquet``, ``space.yaml``
    (``space_yaml``: a search's record, see ``space_record``), ``trials/<trial>/`` and ``best_config.yaml`` from the
    experiment on disk."""
    frame, configs, predictions, progress = _collect(study, paths, searched)
    with atomic_directory(paths.trials_dir, overwrite=True) as tmp:
        for trial_id, config in configs.items():
            folder = tmp / trial_id
            folder.mkdir()
            (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
            if trial_id in predictions:
                shutil.copyfile(predictions[trial_id], folder / PREDICTIONS_FILE)
    aim_repo = study.base["tracking"].get("aim_repo")
    results = StudyResults(paths, frame, study.metric, study.mode, aim_repo)
    best = results.best
    if best is not None:
        config = dict(configs[best["trial"]])
        config["name"] = f"{study.name}_best"
        header = (
            f"# Best trial {best['trial']} of study {study.name}: {study.metric} = {best[f'best/{study.metric}']:.4f}"
            f" at epoch {best['best_epoch']}.\n# Train it again with: mmtune train {paths.best_config}\n"
        )
        atomic_write_text(paths.best_config, header + yaml.safe_dump(config, sort_keys=False))
    if space_yaml is not None:
        atomic_write_text(paths.space_file, space_yaml)
    atomic_write_bytes(paths.progress_parquet, _parquet_bytes(progress))
    atomic_write_bytes(paths.trials_parquet, _parquet_bytes(frame))
    return results


def space_record(space: SearchSpace) -> str:
    """The search space as run, as YAML: the settings after ``--set`` with the resolved base run config and the
    effective name, metric, mode and ``max_t`` (the search analysis reads samplers and scheduler rungs from it)."""
    record = space.config.model_dump(mode="json", exclude_none=True)
    record["space"] = {key: space.entries[key].model_dump(mode="json", exclude_none=True) for key in space.entries}
    record.update(name=space.name, metric=space.metric, mode=space.mode, base=space.base)
    record["scheduler"]["max_t"] = space.max_t
    header = f"# Search space of study {space.name} as run (from {space.path}).\n"
    return header + yaml.safe_dump(record, sort_keys=False)


def print_summary(results: StudyResults, searched: list[str], limit: int = 20) -> None:
    """The results table (best first) and where the results and the Aim repo are."""
    from rich.table import Table

    from mmtune.tuning.display import column_label, short_value, table_console

    out = table_console(console)
    frame = results.frame
    best_col, final_col = f"best/{results.metric}", f"final/{results.metric}"
    ascending = results.mode == "min"
    if best_col in frame:
        frame = frame.sort_values(best_col, ascending=ascending, na_position="last")
    table = Table(title=f"{len(frame)} trials, {results.metric} ({results.mode})", title_justify="left")
    for column in ("trial", "status", "epochs", "stopped", "best", "final", *(column_label(k) for k in searched)):
        table.add_column(column, no_wrap=True)
    for _, row in frame.head(limit).iterrows():
        table.add_row(
            str(row["trial"]),
            "DIVERGED" if str(row.get(DIVERGED_KEY)) == "True" else str(row["status"]),
            str(row["epochs"]),
            "yes" if row["stopped_early"] else "",
            _fmt(row.get(best_col)),
            _fmt(row.get(final_col)),
            *(short_value(row.get(k)) for k in searched),
        )
    out.print(table)
    if len(frame) > limit:
        out.print(f"... {len(frame) - limit} more trials in {results.paths.trials_parquet}", highlight=False)
    stopped = int(frame["stopped_early"].sum()) if len(frame) else 0
    took = f" in {results.fit_seconds:.0f} s" if results.fit_seconds is not None else ""
    out.print(
        f"{len(frame)} trials{took}: {len(results.usable)} usable, {stopped} stopped early by the scheduler, "
        f"{results.errored} failed, {results.diverged} diverged, {results.unfinished} unfinished; "
        f"{int(frame['epochs'].sum()) if len(frame) else 0} trial-epochs in all",
        highlight=False,
    )
    best = results.best
    if best is not None:
        out.print(f"best: trial {best['trial']} {results.metric} = {best[best_col]:.4f}", highlight=False)
        out.print(f"best config: {results.paths.best_config}", highlight=False)
    out.print(f"results: {results.paths.trials_parquet}", highlight=False)
    out.print(f"trial predictions: {results.paths.trials_dir}/<trial>/{PREDICTIONS_FILE}", highlight=False)
    if results.aim_repo:
        out.print(
            f"Aim repo: {results.aim_repo} (browse: aim up --repo {results.aim_repo} --host 127.0.0.1)",
            highlight=False,
        )


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if _is_number(value) else "-"
