"""Multi-task gain Δm and negative transfer: each multi-task cell against its single-task cells.

Δm (Maninis et al., CVPR 2019; Vandenhende et al., TPAMI 2021) is the mean relative change of every task's metric
against the single-task model of that task, signed so that positive means better:

    Δm = 100 / T * sum_t (-1)^{l_t} (M_mtl,t - M_single,t) / M_single,t,   l_t = 1 when lower is better.

It is computed per split (fold x seed, every cell trained on the same splits), so its interval is a paired one:
the corrected resampled t interval over splits (Nadeau-Bengio, as every interval of the report; folds share
training patients) and a percentile bootstrap over splits beside it. A task shows **negative transfer** when the
multi-task cell is significantly worse on it than the single-task cell (the corrected paired test of the signed
difference, p < 0.05, mean below zero).

Which cells are single-task, and which tasks a cell learns, is read from the predictions (a cell's tasks are the
tasks it reports); each multi-task cell is paired, per task, with the single-task cell of that task whose factor
levels differ from it in the fewest factors (design order breaks ties). Each task uses the study's first metric of
that task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mmtune.analysis.ablation_stats import LEVEL, Sizes, _interval, cell_levels
from mmtune.analysis.results import StudyData
from mmtune.analysis.task_metrics import higher_is_better

BOOTSTRAPS = 2000
ALPHA = 0.05

DM_COLUMNS = ["config", "tasks", "baselines", "n_splits", "delta_m", "lo", "hi", "boot_lo", "boot_hi", "p"]
TASK_COLUMNS = [
    "config",
    "task",
    "metric",
    "baseline",
    "mtl",
    "single",
    "rel_change",
    "diff",
    "lo",
    "hi",
    "p",
    "n_splits",
    "negative_transfer",
]


def task_metrics(metrics: Sequence[str]) -> dict[str, str]:
    """The first metric of each task in the study's list (``task/metric`` keys)."""
    out: dict[str, str] = {}
    for key in metrics:
        out.setdefault(key.rpartition("/")[0], key)
    return out


def cell_tasks(values: pd.DataFrame, per_task: Mapping[str, str]) -> dict[str, list[str]]:
    """config -> the tasks it reports (a finite value of the task's metric in some split)."""
    out: dict[str, list[str]] = {}
    for config, part in values.groupby("config", sort=False):
        reported = set(part.loc[part["value"].notna(), "metric"])
        out[str(config)] = [t for t, m in per_task.items() if m in reported]
    return out


def single_task_baselines(
    tasks: Mapping[str, list[str]], levels: Mapping[str, Mapping[str, str]], order: Sequence[str]
) -> dict[str, dict[str, str]]:
    """multi-task config -> {task: its single-task config}: the closest single-task cell in factor levels."""
    position = {c: i for i, c in enumerate(order)}
    singles: dict[str, list[str]] = {}
    for config, names in tasks.items():
        if len(names) == 1:
            singles.setdefault(names[0], []).append(config)
    out: dict[str, dict[str, str]] = {}
    for config, names in tasks.items():
        if len(names) < 2:
            continue
        mine = levels.get(config, {})
        chosen = {}
        for task in names:
            candidates = singles.get(task, [])
            if candidates:
                chosen[task] = min(
                    candidates,
                    key=lambda c: (
                        sum(levels.get(c, {}).get(f) != v for f, v in mine.items()),
                        position.get(c, len(position)),
                    ),
                )
        out[config] = chosen
    return out


def delta_m_tables(
    values: pd.DataFrame,
    baselines: Mapping[str, Mapping[str, str]],
    per_task: Mapping[str, str],
    sizes: Sizes | None,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Δm per multi-task config, per-task change and negative-transfer flag) from ``values``: one row per
    ``split_id, config, metric, value`` (full models). A config's Δm needs a single-task cell for every task."""
    table = values.pivot_table(index="split_id", columns=["config", "metric"], values="value", aggfunc="mean")
    dm_rows, task_rows = [], []
    rng = np.random.default_rng(seed)
    for config, by_task in baselines.items():
        relative: dict[str, pd.Series] = {}
        for task, single in by_task.items():
            metric = per_task[task]
            if (config, metric) not in table.columns or (single, metric) not in table.columns:
                continue
            pair = table[[(config, metric), (single, metric)]].dropna()
            if pair.empty:
                continue
            sign = 1.0 if higher_is_better(metric) else -1.0
            mtl, ref = pair.iloc[:, 0], pair.iloc[:, 1]
            diff = sign * (mtl - ref)
            relative[task] = 100.0 * diff / ref.abs()
            mean, lo, hi, p, _ = _interval(diff.to_numpy(), sizes)
            task_rows.append(
                {
                    "config": config,
                    "task": task,
                    "metric": metric,
                    "baseline": single,
                    "mtl": float(mtl.mean()),
                    "single": float(ref.mean()),
                    "rel_change": float(relative[task].mean()),
                    "diff": mean,
                    "lo": lo,
                    "hi": hi,
                    "p": p,
                    "n_splits": len(diff),
                    "negative_transfer": bool(np.isfinite(p) and p < ALPHA and mean < 0),
                }
            )
        tasks = list(by_task)
        if not tasks or set(relative) != set(tasks) or len(tasks) < 2:
            continue
        per_split = pd.concat(relative, axis=1).dropna()
        if per_split.empty:
            continue
        dm = per_split.mean(axis=1).to_numpy()
        mean, lo, hi, p, _ = _interval(dm, sizes)
        boot_lo, boot_hi = _bootstrap(dm, rng)
        dm_rows.append(
            {
                "config": config,
                "tasks": ", ".join(tasks),
                "baselines": ", ".join(f"{t}: {by_task[t]}" for t in tasks),
                "n_splits": len(dm),
                "delta_m": float(dm.mean()) if np.isnan(mean) else mean,
                "lo": lo,
                "hi": hi,
                "boot_lo": boot_lo,
                "boot_hi": boot_hi,
                "p": p,
            }
        )
    return pd.DataFrame(dm_rows, columns=DM_COLUMNS), pd.DataFrame(task_rows, columns=TASK_COLUMNS)


def _bootstrap(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile interval of the mean over splits resampled with replacement."""
    if values.size < 2:
        return float("nan"), float("nan")
    draws = rng.integers(0, values.size, size=(BOOTSTRAPS, values.size))
    means = values[draws].mean(axis=1)
    alpha = (1 - LEVEL) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def delta_m(data: StudyData, splits: pd.DataFrame, sizes: Sizes | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Δm and negative transfer of every multi-task cell of an ablation (empty without single-task cells)."""
    per_task = task_metrics(data.metrics)
    full = splits[(splits["dropped"] == "") & splits["metric"].isin(list(per_task.values()))]
    if full.empty or data.kind != "ablation":
        return pd.DataFrame(columns=DM_COLUMNS), pd.DataFrame(columns=TASK_COLUMNS)
    tasks = cell_tasks(full, per_task)
    baselines = single_task_baselines(tasks, cell_levels(data), data.configs)
    return delta_m_tables(full, baselines, per_task, sizes)
