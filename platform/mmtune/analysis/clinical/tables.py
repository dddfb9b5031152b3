"""Every clinical metric of one task on one set of patients, with intervals.

A task is split into binary *components*: the task itself (binary), each class one-vs-rest (multiclass) or each
label (multilabel); multi-component tasks add a ``macro`` row (the mean over components). Intervals: DeLong for a
component's AUROC; a patient bootstrap (stratified by the label, one set of resamples for all metrics of a task) for
everything else and for macro figures. The operating threshold comes from validation predictions (see
``mmtune.analysis.clinical.operating``) and is applied unchanged here.

Output: a tidy frame, one row per (task, part, metric): ``estimate, lo, hi, n, n_pos, ci`` where ``ci`` says
how the interval was made (``DeLong``, ``bootstrap``) or why there is none (``too small``, ``-``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmtune.analysis.clinical import calibration as cal
from mmtune.analysis.clinical import decision, operating
from mmtune.analysis.task_metrics import TaskColumns
from mmtune.config.clinical import ClinicalConfig
from mmtune.tasks import CLASSIFICATION_KINDS, TaskKind

MACRO = "macro"
COLUMNS = ["task", "part", "metric", "estimate", "lo", "hi", "n", "n_pos", "ci"]
Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Component:
    """One binary view of a task: labels (1/0, -1 = unlabelled) and the probability of the positive class."""

    part: str  # "" (binary task), a class key, or a label key
    y: np.ndarray
    p: np.ndarray


def components(frame: pd.DataFrame, task: TaskColumns) -> list[Component]:
    """The binary components of a classification task on the rows of ``frame`` (see the module docstring)."""
    if task.kind == TaskKind.BINARY:
        y = frame[task.labels[0]].to_numpy(dtype=float)
        return [Component("", np.where(y >= 0, y, -1).astype(int), frame[task.scores[0]].to_numpy(dtype=float))]
    if task.kind == TaskKind.MULTICLASS:
        y = frame[task.labels[0]].to_numpy(dtype=float)
        out = []
        for i, (key, col) in enumerate(zip(task.classes, task.scores, strict=True)):
            yc = np.where(y >= 0, (y == i).astype(int), -1)
            out.append(Component(key, yc, frame[col].to_numpy(dtype=float)))
        return out
    if task.kind == TaskKind.MULTILABEL:
        out = []
        for key, y_col, s_col in zip(task.classes, task.labels, task.scores, strict=True):
            y = frame[y_col].to_numpy(dtype=float)
            yc = np.where(np.isfinite(y), (y >= 0.5).astype(int), -1)
            out.append(Component(key, yc, frame[s_col].to_numpy(dtype=float)))
        return out
    return []


def metric_functions(settings: ClinicalConfig, thresholds: dict[str, float] | None) -> dict[str, Metric]:
    """``name -> fn(y, p)`` for one component (``thresholds[part]`` fixes the operating point)."""
    fns: dict[str, Metric] = {
        "auroc": _auroc,
        "ap": _ap,
        "brier": cal.brier,
        "ece": lambda y, p: cal.ece(y, p, settings.ece_bins),
        "calibration_intercept": cal.calibration_intercept,
        "calibration_slope": cal.calibration_slope,
    }
    for t in settings.specificity_targets:
        fns[f"sensitivity_at_specificity_{t:g}"] = lambda y, p, t=t: operating.sensitivity_at_specificity(y, p, t)
    for t in settings.sensitivity_targets:
        fns[f"specificity_at_sensitivity_{t:g}"] = lambda y, p, t=t: operating.specificity_at_sensitivity(y, p, t)
    for pt in settings.net_benefit_at:
        fns[f"net_benefit_{pt:g}"] = lambda y, p, pt=pt: decision.net_benefit(y, p, pt)
    return fns


OPERATING = ("sensitivity", "specificity", "ppv", "npv")


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney AUROC by midranks (= ``roc_auc_score``; fast inside the bootstrap)."""
    from scipy.stats import rankdata

    if np.unique(y).size < 2:
        return float("nan")
    pos = y == 1
    n1 = int(pos.sum())
    n0 = y.size - n1
    ranks = rankdata(p)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _ap(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (= ``sklearn.metrics.average_precision_score``), by sorting."""
    if not np.any(y == 1):
        return float("nan")
    fpr, tpr, _ = operating._roc(y, p)
    n_pos = int(np.sum(y == 1))
    tps = tpr[1:] * n_pos
    fps = fpr[1:] * (y.size - n_pos)
    precision = tps / np.maximum(tps + fps, 1)
    recall = tpr[1:]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _safe(fn: Metric, y: np.ndarray, p: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(fn(y, p))
        except (ValueError, ZeroDivisionError, FloatingPointError):
            return float("nan")
    return value if np.isfinite(value) else float("nan")


def _values(comps: list[Component], fns: dict[str, Metric], idx: np.ndarray | None) -> np.ndarray:
    """``[components, metrics]`` values on the rows ``idx`` (all rows when None), labelled rows only."""
    out = np.full((len(comps), len(fns)), np.nan)
    for i, comp in enumerate(comps):
        y, p = (comp.y, comp.p) if idx is None else (comp.y[idx], comp.p[idx])
        keep = y >= 0
        y, p = y[keep], p[keep]
        if y.size == 0:
            continue
        for j, fn in enumerate(fns.values()):
            out[i, j] = _safe(fn, y, p)
    return out


def task_table(
    task: TaskColumns,
    frame: pd.DataFrame,
    settings: ClinicalConfig,
    thresholds: dict[str, float] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The rows of the module docstring for ``task`` on ``frame`` (``thresholds``: part -> operating threshold)."""
    if task.kind not in CLASSIFICATION_KINDS:
        return pd.DataFrame(columns=COLUMNS)
    comps = components(frame, task)
    thresholds = dict(thresholds or {})
    fns = metric_functions(settings, thresholds)
    op_fns: dict[str, Metric] = {}
    for comp in comps:
        if comp.part in thresholds:
            for name in OPERATING:
                op_fns[f"{comp.part}\0{name}"] = operating.rate(name, thresholds[comp.part])
    names = list(fns)
    point = _values(comps, fns, None)
    op_point = {k: _safe(fn, *_labelled(comps, k)) for k, fn in op_fns.items()}
    n_rows = len(frame)
    counts = [(int(np.sum(c.y >= 0)), int(np.sum(c.y == 1))) for c in comps]
    small = any(n < settings.min_subgroup or pos < 2 or n - pos < 2 for n, pos in counts)
    boot = op_boot = None
    if not small and n_rows >= 2:
        strata = _strata(task, frame)
        idx = _resample(n_rows, settings.n_boot, np.random.default_rng(seed), strata)
        boot = np.stack([_values(comps, fns, row) for row in idx])  # [B, components, metrics]
        op_boot = {k: np.array([_safe(fn, *_labelled(comps, k, row)) for row in idx]) for k, fn in op_fns.items()}
    rows: list[dict] = []
    alpha = (1.0 - settings.level) / 2.0
    for i, comp in enumerate(comps):
        n, pos = counts[i]
        rows.append(_row(task.name, comp.part, "prevalence", pos / n if n else np.nan, None, n, pos, "-"))
        for j, name in enumerate(names):
            lo = hi = float("nan")
            how = "too small" if small else "bootstrap"
            if name == "auroc" and not small and np.isfinite(point[i, j]):
                lo, hi, how = *_delong(comp, settings.level), "DeLong"
            elif boot is not None:
                lo, hi = _quantiles(boot[:, i, j], alpha)
            rows.append(_row(task.name, comp.part, name, point[i, j], (lo, hi), n, pos, how))
        if comp.part in thresholds:
            rows.append(_row(task.name, comp.part, "threshold", thresholds[comp.part], None, n, pos, "-"))
            for name in OPERATING:
                key = f"{comp.part}\0{name}"
                lo = hi = float("nan")
                if op_boot is not None:
                    lo, hi = _quantiles(op_boot[key], alpha)
                how = "too small" if small else "bootstrap"
                rows.append(_row(task.name, comp.part, name, op_point[key], (lo, hi), n, pos, how))
    if len(comps) > 1:
        n_all = int(np.sum(np.any(np.stack([c.y >= 0 for c in comps]), axis=0)))
        for j, name in enumerate(names):
            lo = hi = float("nan")
            if boot is not None:
                with warnings.catch_warnings():  # a resample where no class was scorable: NaN, not a warning
                    warnings.simplefilter("ignore", RuntimeWarning)
                    means = np.nanmean(boot[:, :, j], axis=1)
                lo, hi = _quantiles(means, alpha)
            estimate = float(np.nanmean(point[:, j])) if np.any(np.isfinite(point[:, j])) else float("nan")
            rows.append(
                _row(task.name, MACRO, name, estimate, (lo, hi), n_all, -1, "too small" if small else "bootstrap")
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _labelled(comps: list[Component], key: str, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    part = key.split("\0")[0]
    comp = next(c for c in comps if c.part == part)
    y, p = (comp.y, comp.p) if idx is None else (comp.y[idx], comp.p[idx])
    keep = y >= 0
    return y[keep], p[keep]


def _strata(task: TaskColumns, frame: pd.DataFrame) -> np.ndarray | None:
    """Resample within each class (binary, multiclass; unlabelled rows form their own stratum)."""
    if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
        return frame[task.labels[0]].to_numpy(dtype=float)
    return None


def _resample(n: int, n_boot: int, rng: np.random.Generator, strata: np.ndarray | None) -> np.ndarray:
    from mmtune.analysis.stats import resample_indices

    return resample_indices(n, n_boot, rng, strata)


def _quantiles(values: np.ndarray, alpha: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size < 0.5 * max(len(values), 1) or values.size < 10:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _delong(comp: Component, level: float) -> tuple[float, float]:
    from mmtune.analysis.stats import auc_ci

    keep = comp.y >= 0
    result = auc_ci(comp.y[keep], comp.p[keep], level=level)
    return float(result[1]), float(result[2])


def _row(
    task: str, part: str, metric: str, estimate: float, ci: tuple[float, float] | None, n: int, pos: int, how: str
) -> dict:
    lo, hi = ci if ci is not None else (float("nan"), float("nan"))
    return {
        "task": task,
        "part": part,
        "metric": metric,
        "estimate": float(estimate),
        "lo": lo,
        "hi": hi,
        "n": int(n),
        "n_pos": int(pos),
        "ci": how,
    }


def choose_thresholds(task: TaskColumns, val: pd.DataFrame, settings: ClinicalConfig) -> dict[str, float]:
    """Operating threshold per component from validation predictions (components with one class are skipped)."""
    out: dict[str, float] = {}
    rule = settings.threshold
    for comp in components(val, task):
        keep = comp.y >= 0
        y, p = comp.y[keep], comp.p[keep]
        if np.unique(y).size < 2:
            continue
        if rule == "youden":
            out[comp.part] = operating.choose_threshold(y, p, "youden")
        elif rule.sensitivity is not None:
            out[comp.part] = operating.choose_threshold(y, p, "sensitivity", rule.sensitivity)
        else:
            out[comp.part] = operating.choose_threshold(y, p, "specificity", rule.specificity)
    return out


def metric_key(row: pd.Series | dict) -> str:
    """``<task>/<metric>`` (binary task, macro) or ``<task>/<metric>_<class>`` (one class / label)."""
    part = row["part"]
    if part in ("", MACRO):
        return f"{row['task']}/{row['metric']}"
    return f"{row['task']}/{row['metric']}_{part}"


def flat_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``{<task>/<metric>: estimate}`` of a table (the keys of ``metrics.json``)."""
    return {metric_key(row): float(row["estimate"]) for _, row in table.iterrows()}
