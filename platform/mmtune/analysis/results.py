"""Load a results directory (``mmtune tune`` or ``mmtune ablate``) into tidy frames for the statistics.

* ``trials.parquet`` -> one row per trial (status, Aim hash, predictions path, ...);
* ablations add ``cells.parquet`` (every *planned* trial: cell, factor levels, fold / group, seed, split sizes)
  and ``study.yaml`` (factors, baselines, design, evaluated split, metrics);
* ``trials/<trial>/predictions.parquet`` -> per-patient predictions; every metric is recomputed from them.

A directory with unfinished, errored or missing trials loads what is there; ``StudyData.problems`` says what is
missing (the report prints it as a warning and a section), so an interrupted study still gets a report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mmtune.analysis.task_metrics import TASKS_ATTR, TaskColumns, default_metrics, detect_tasks, metric_value
from mmtune.errors import UserError
from mmtune.results_files import CELLS_FILE, PREDICTIONS_FILE, STUDY_FILE, TRIAL_COLUMNS, TRIALS_FILE
from mmtune.trial_config import DIVERGED_KEY

DROPPED = "modality_dropped"
FINISHED = "TERMINATED"


class ResultsError(UserError):
    """A results directory that cannot be reported on."""


@dataclass
class StudyData:
    """Everything the report needs, read once from a results directory."""

    root: Path
    name: str
    kind: str  # "ablation" | "tuning"
    trials: pd.DataFrame  # usable + unusable trials: trial, config, split_id, seed, fold, status, aim_hash, ...
    configs: list[str]  # configurations in display order (cells in design order; tuning: trials)
    config_labels: dict[str, str]
    predictions: dict[str, pd.DataFrame]  # trial -> its predictions (only trials that finished)
    tasks: dict[str, TaskColumns]
    metrics: list[str]
    eval_split: str
    factors: dict[str, list[str]] = field(default_factory=dict)
    baselines: dict[str, str] = field(default_factory=dict)
    design: str = "search"
    scheme: str = "single"
    aim_repo: str | None = None
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)  # planned trials without usable results
    problems: list[str] = field(default_factory=list)
    study: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def usable(self) -> pd.DataFrame:
        return self.trials[self.trials["trial"].isin(list(self.predictions))]

    @property
    def seeds(self) -> list[int]:
        return sorted({int(s) for s in self.usable["seed"]}) if len(self.usable) else []

    def replication_phrase(self) -> str:
        """``5 folds x 3 seeds`` / ``3 held-out groups x 2 seeds`` of the usable trials."""
        usable = self.usable
        seeds = len(set(usable["seed"])) if len(usable) else 0
        if self.scheme == "logo":
            units = f"{len(set(usable['group']))} held-out groups"
        elif self.scheme == "kfold":
            units = f"{len(set(usable['fold']))} folds"
        else:
            units = "1 split"
        return f"{units} x {seeds} seed{'s' if seeds != 1 else ''}"


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from None


def load_study_data(root: str | Path) -> StudyData:
    """Read a results directory (see the module docstring); missing pieces become ``problems``, not crashes."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ResultsError(f"{root}: results directory not found")
    trials_path = root / TRIALS_FILE
    cells_path = root / CELLS_FILE
    if not trials_path.is_file() and not cells_path.is_file():
        raise ResultsError(
            f"{root}: not a results directory (no {TRIALS_FILE}); run `mmtune tune` / `mmtune ablate` into it first"
        )
    trials = _read_parquet(trials_path) if trials_path.is_file() else pd.DataFrame(columns=list(TRIAL_COLUMNS))
    study = _read_study(root / STUDY_FILE)
    is_ablation = cells_path.is_file()
    data = _ablation(root, trials, _read_parquet(cells_path), study) if is_ablation else _tuning(root, trials)
    data.runs = _read_runs(root / "runs.jsonl")
    return data


def read_record(path: Path) -> dict[str, Any]:
    """A YAML record a study wrote into its results (``study.yaml``, ``space.yaml``); ``{}`` without the file.
    ValueError, one line naming the file, when it is not readable YAML (each reader decides what that means)."""
    if not path.is_file():
        return {}
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: unreadable YAML ({str(exc).splitlines()[0]})") from None


def _read_study(path: Path) -> dict[str, Any]:
    try:
        return read_record(path)
    except ValueError as exc:
        raise ResultsError(str(exc)) from None


def _read_runs(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _load_predictions(trials: pd.DataFrame, root: Path) -> tuple[dict[str, pd.DataFrame], list[str], set[str]]:
    """Predictions of finished trials; a finished trial without a readable file is a problem, not a crash.
    The third value: finished trials whose scores are not finite (diverged, though not flagged by the trial)."""
    out: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    non_finite: set[str] = set()
    for _, row in trials.iterrows():
        if row.get("status") != FINISHED or _is_diverged(row.get(DIVERGED_KEY)):
            continue
        trial = str(row["trial"])
        path = root / "trials" / trial / PREDICTIONS_FILE
        if not path.is_file() and isinstance(row.get("predictions"), str):
            path = Path(row["predictions"])
        if not path.is_file():
            problems.append(f"trial {trial} finished but has no {PREDICTIONS_FILE}")
            continue
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            problems.append(f"trial {trial}: unreadable predictions ({str(exc).splitlines()[0]})")
            continue
        if not _finite_scores(frame):  # "usable" means finite metrics: NaN scores give a harmless-looking AUROC
            problems.append(f"trial {trial}: non-finite scores in {PREDICTIONS_FILE} (diverged)")
            non_finite.add(trial)
            continue
        out[trial] = frame
    return out, problems, non_finite


def _is_diverged(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_)) and bool(value)


def _finite_scores(frame: pd.DataFrame) -> bool:
    columns = [c for c in frame.columns if str(c).startswith(("score_", "mse_"))]
    return bool(np.isfinite(frame[columns].to_numpy(dtype=np.float64)).all()) if columns else True


def trial_states(
    trials: pd.DataFrame, predictions: dict[str, pd.DataFrame], non_finite: set[str] | None = None
) -> np.ndarray:
    """ok (usable) / diverged / errored / missing (never started) / unfinished, one per row of ``trials``."""
    status = trials["status"]
    diverged = trials[DIVERGED_KEY].map(_is_diverged) if DIVERGED_KEY in trials else pd.Series(False, trials.index)
    return np.select(
        [
            trials["trial"].isin(list(predictions)),
            diverged | trials["trial"].astype(str).isin(sorted(non_finite or ())),
            status == "ERROR",
            status == "MISSING",
        ],
        ["ok", "diverged", "errored", "missing"],
        "unfinished",
    )


def _aim_repo(root: Path, trials: pd.DataFrame, study: dict[str, Any]) -> str | None:
    repo = ((study.get("base") or {}).get("tracking") or {}).get("aim_repo")
    if repo:
        return str(repo)
    for trial in trials.get("trial", []):
        config = root / "trials" / str(trial) / "config.yaml"
        if config.is_file():
            data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
            repo = (data.get("tracking") or {}).get("aim_repo")
            if repo:
                return str(repo)
    return None


def _tasks_and_metrics(predictions: dict[str, pd.DataFrame], wanted: list[str] | None) -> tuple[dict, list[str]]:
    tasks: dict[str, TaskColumns] = {}
    for trial in sorted(predictions):
        frame = predictions[trial]
        for name, task in detect_tasks(list(frame.columns), dict(frame.dtypes), frame.attrs.get(TASKS_ATTR)).items():
            tasks.setdefault(name, task)
    metrics = list(wanted) if wanted else default_metrics(tasks)
    return tasks, [m for m in metrics if m.split("/")[0] in tasks]


def _ablation(root: Path, trials: pd.DataFrame, cells: pd.DataFrame, study: dict[str, Any]) -> StudyData:
    resolved = study.get("resolved") or {}
    problems: list[str] = []
    if "key" not in trials.columns:
        trials = trials.assign(key=None)
    merged = cells.merge(
        trials.drop(columns=[c for c in ("cell", "split_id") if c in trials.columns]), on="key", how="left"
    )
    merged["status"] = merged["status"].fillna("MISSING")
    merged = merged.rename(columns={"cell": "config"})
    done = merged[merged["status"] == FINISHED]
    predictions, more, non_finite = _load_predictions(done, root)
    problems += more
    merged["state"] = trial_states(merged, predictions, non_finite)
    missing = merged[merged["state"] != "ok"][["key", "config", "split_id", "status", "state", "error"]].copy()
    if "error" not in merged.columns:
        missing["error"] = None
    counts = merged["state"].value_counts().to_dict()
    for what in ("missing", "unfinished", "errored", "diverged"):
        if counts.get(what):
            problems.insert(0, f"{counts[what]} of {len(merged)} planned trials are {what}")
    configs = [c["name"] for c in resolved.get("cells", [])] or list(dict.fromkeys(cells["cell"]))
    tasks, metrics = _tasks_and_metrics(predictions, study.get("metrics"))
    for metric in study.get("metrics") or []:
        if metric not in metrics:
            problems.append(
                f"metric {metric}: task {metric.split('/')[0]!r} is not in any finished trial's predictions"
            )
    repeats = study.get("repeats") or {}
    return StudyData(
        root=root,
        name=str(study.get("name") or root.name),
        kind="ablation",
        trials=merged,
        configs=configs,
        config_labels={c: c for c in configs},
        predictions=predictions,
        tasks=tasks,
        metrics=metrics,
        eval_split=str(resolved.get("eval_split") or ("test" if repeats.get("scheme") == "logo" else "val")),
        factors={k: list(v) for k, v in (resolved.get("factors") or {}).items()},
        baselines=dict(resolved.get("baselines") or {}),
        design=str(study.get("design") or "factorial"),
        scheme=str(resolved.get("scheme") or repeats.get("scheme") or "kfold"),
        aim_repo=_aim_repo(root, merged, study),
        missing=missing,
        problems=problems,
        study=study,
    )


def _tuning(root: Path, trials: pd.DataFrame) -> StudyData:
    problems: list[str] = []
    trials = trials.copy()
    trials["config"] = trials["trial"].astype(str)
    trials["split_id"] = "val"
    trials["seed"] = 0
    trials["fold"] = -1
    trials["group"] = ""
    predictions, more, non_finite = _load_predictions(trials, root)
    problems += more
    trials["state"] = trial_states(trials, predictions, non_finite)
    bad = trials[trials["state"] != "ok"]
    for what in ("unfinished", "errored", "diverged"):
        n = int((bad["state"] == what).sum())
        if n:
            problems.insert(0, f"{n} of {len(trials)} trials are {what}")
    searched = [
        c
        for c in trials.columns
        if c not in TRIAL_COLUMNS
        and not c.startswith(("best/", "final/"))
        and c not in ("config", "split_id", "seed", "fold", "group", "state", "key", "cell")
    ]
    labels = {}
    for _, row in trials.iterrows():
        parts = [f"{short_key(c)}={_short(row[c])}" for c in searched if not _not_applicable(row[c])]
        labels[str(row["trial"])] = f"{row['trial']} ({', '.join(parts)})" if parts else str(row["trial"])
    tasks, metrics = _tasks_and_metrics(predictions, None)
    missing = bad.assign(key=bad["trial"])[["key", "config", "split_id", "status", "state", "error"]]
    return StudyData(
        root=root,
        name=root.name,
        kind="tuning",
        trials=trials,
        configs=[str(t) for t in trials["trial"]],
        config_labels=labels,
        predictions=predictions,
        tasks=tasks,
        metrics=metrics,
        eval_split="val",
        aim_repo=_aim_repo(root, trials, {}),
        missing=missing,
        problems=problems,
    )


def short_key(dotted: str) -> str:
    """``model.fusion.name`` -> ``fusion``, ``weighting.params.alpha`` -> ``alpha``: readable and still distinct."""
    parts = dotted.split(".")
    if len(parts) > 1 and parts[-1] == "name":
        parts = parts[:-1]
    return parts[-1]


def _not_applicable(value: Any) -> bool:
    # conditional search-space entries (e.g. gradnorm's alpha) are NaN / None for the other choices
    return value is None or (isinstance(value, float) and math.isnan(value))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def eval_rows(frame: pd.DataFrame, split: str, dropped: str | None = None) -> pd.DataFrame:
    """Rows of ``split``; ``dropped=None`` the normal predictions, else those made without that modality."""
    rows = frame[frame["split"] == split] if "split" in frame.columns else frame
    if DROPPED in rows.columns:
        marks = rows[DROPPED].fillna("").astype(str)
        rows = rows[marks == (dropped or "")]
    elif dropped is not None:
        return rows.iloc[0:0]
    return rows


def split_metrics(data: StudyData, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per usable trial x metric x modality state: ``config, trial, split_id, seed, fold, group, metric,
    value, n, dropped`` (``dropped`` is ``""`` for the full model, ``"clinical"`` for the robustness rows)."""
    metrics = metrics or data.metrics
    rows = []
    usable = data.usable
    for _, trial in usable.iterrows():
        frame = data.predictions[str(trial["trial"])]
        states = [""]
        if DROPPED in frame.columns:
            states += sorted({str(v) for v in frame[DROPPED].dropna() if str(v)})
        for dropped in states:
            part = eval_rows(frame, data.eval_split, dropped or None)
            if part.empty:
                continue
            present = detect_tasks(list(part.columns), dict(part.dtypes), frame.attrs.get(TASKS_ATTR))
            for key in metrics:
                task_name, _, metric = key.rpartition("/")
                task = present.get(task_name)
                if task is None:
                    continue
                value, n = metric_value(part, task, metric)
                rows.append(
                    {
                        "config": trial["config"],
                        "trial": str(trial["trial"]),
                        "split_id": trial["split_id"],
                        "seed": int(trial["seed"]),
                        "fold": int(trial["fold"]) if pd.notna(trial["fold"]) else -1,
                        "group": str(trial.get("group") or ""),
                        "metric": key,
                        "value": value,
                        "n": n,
                        "dropped": dropped,
                    }
                )
    columns = ["config", "trial", "split_id", "seed", "fold", "group", "metric", "value", "n", "dropped"]
    return pd.DataFrame(rows, columns=columns)


def split_sizes(data: StudyData) -> tuple[float | None, float | None]:
    """Average (n_train, n_eval) per split (from ``cells.parquet``) for the Nadeau-Bengio correction."""
    usable = data.usable
    eval_column = "n_val" if data.eval_split == "val" else "n_test"
    if not len(usable) or "n_train" not in usable.columns or eval_column not in usable.columns:
        return None, None
    n_train = pd.to_numeric(usable["n_train"], errors="coerce").dropna()
    n_eval = pd.to_numeric(usable[eval_column], errors="coerce").dropna()
    if n_train.empty or n_eval.empty:
        return None, None
    return float(n_train.mean()), float(n_eval.mean())
