"""The effect of each level of each searched dimension, compared fairly across trials ASHA stopped at different
budgets.

Fairness: every usable trial is scored at the **common budget**, the largest epoch that every usable trial reached
(with ASHA, its first rung), using the metric each trial reported at that epoch (what the scheduler compared).
Scoring each trial at its own last epoch would credit the levels ASHA kept training; scoring only the trials that
reached a later rung would keep only the survivors. The level means at ``max_t`` (survivors only) are written
beside, marked ``common = False``, for reference.

A level's mean has a 95 % t-interval over its trials (``statsmodels`` ``DescrStatsW.tconfint_mean``); the trials of
a level differ in the other dimensions too, so the interval is over the search's other choices, on one validation
split. Continuous dimensions are binned at quantiles (of log10 for log-uniform ones) and also summarised as an OLS
slope per decade (per unit for linear ones). The best level is compared with the next one by Welch's t-test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmtune.analysis.search_data import CATEGORICAL, Dimension, SearchInputs, is_missing

FACTOR_COLUMNS = ["dimension", "level", "n_trials", "budget", "mean", "ci_lo", "ci_hi", "sd", "common", "order"]
ALPHA = 0.05
MAX_BINS = 3


@dataclass(frozen=True)
class Comparison:
    """The best level of a dimension against the next one, at the common budget."""

    dimension: str
    best: str
    runner_up: str | None
    best_mean: float
    next_mean: float
    diff: float
    p: float  # Welch's t-test; NaN where a level has one trial
    n_best: int
    n_next: int

    @property
    def separable(self) -> bool:
        return math.isfinite(self.p) and self.p < ALPHA


def common_budget(inputs: SearchInputs) -> int | None:
    """The largest epoch every usable trial reported (None without per-epoch metrics or trials)."""
    if not inputs.has_progress or inputs.progress.empty:
        return None
    return int(inputs.progress.groupby("trial")["epoch"].max().min())


def values_at(inputs: SearchInputs, budget: int | None) -> pd.Series:
    """trial -> the metric it reported at epoch ``budget`` (its last report up to then); ``None``: last report."""
    progress = inputs.progress
    if budget is not None:
        reached = progress.groupby("trial")["epoch"].max()
        progress = progress[progress["trial"].isin(reached[reached >= budget].index) & (progress["epoch"] <= budget)]
    last = progress.sort_values(["trial", "epoch"]).groupby("trial")["value"].last()
    return last.astype(float)


def t_interval(values: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, lo, hi, sd) with a 95 % Student-t interval; NaN bounds below two values."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan, math.nan
    from statsmodels.stats.weightstats import DescrStatsW

    lo, hi = DescrStatsW(values).tconfint_mean(alpha=ALPHA)
    return mean, float(lo), float(hi), float(values.std(ddof=1))


def _fmt_bound(value: float) -> str:
    return f"{value:.1e}" if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e4) else f"{value:.3g}"


def level_label(value: object) -> str:
    """A categorical value as text; ``16.0`` (an int choice in a column with inactive NaNs) reads ``16``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def level_labels(dimension: Dimension, column: pd.Series) -> tuple[pd.Series, list[str]]:
    """Each trial's level label (NaN where the dimension was inactive) and the levels in display order."""
    active = column[~column.map(is_missing)]
    if dimension.kind == CATEGORICAL:
        declared = [level_label(v) for v in dimension.levels]
        seen = sorted({level_label(v) for v in active}, key=str)
        order = declared + [v for v in seen if v not in declared]
        return column.map(lambda v: None if is_missing(v) else level_label(v)), order
    values = active.astype(float)
    if values.empty:
        return column.map(lambda _: None), []
    scale = np.log10(values) if dimension.log else values
    bins = max(1, min(MAX_BINS, values.nunique() // 3))
    edges = np.unique(np.quantile(scale, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        edges = np.array([scale.min(), scale.max()])
    bounds = 10**edges if dimension.log else edges
    names = [f"{_fmt_bound(bounds[i])}-{_fmt_bound(bounds[i + 1])}" for i in range(len(bounds) - 1)]
    index = np.clip(np.searchsorted(edges, scale, side="right") - 1, 0, len(names) - 1)
    labels = pd.Series([None] * len(column), index=column.index, dtype=object)
    labels.loc[values.index] = [names[i] for i in index]
    return labels, names


def trial_levels(inputs: SearchInputs, dimension: Dimension) -> tuple[pd.Series, list[str]]:
    """trial -> level label over all usable trials (bins fixed once, whatever budget is scored)."""
    return level_labels(dimension, inputs.trials.set_index("trial")[dimension.key])


def _level_values(scores: pd.Series, labels: pd.Series, level: str) -> np.ndarray:
    members = labels.index[labels == level]
    return scores.reindex(members).dropna().to_numpy(float)


def factor_table(inputs: SearchInputs, budget: int | None, common: bool = True) -> pd.DataFrame:
    """One row per dimension x level: trials at ``budget``, mean and 95 % CI of the metric."""
    scores = values_at(inputs, budget)
    rows = []
    for dimension in inputs.dimensions:
        labels, order = trial_levels(inputs, dimension)
        for position, level in enumerate(order):
            values = _level_values(scores, labels, level)
            mean, lo, hi, sd = t_interval(values)
            rows.append(
                {
                    "dimension": dimension.key,
                    "level": level,
                    "n_trials": int(values.size),
                    "budget": -1 if budget is None else int(budget),
                    "mean": mean,
                    "ci_lo": lo,
                    "ci_hi": hi,
                    "sd": sd,
                    "common": common,
                    "order": position,
                }
            )
    frame = pd.DataFrame(rows, columns=FACTOR_COLUMNS)
    return frame.astype({"n_trials": "int64", "budget": "int64", "order": "int64", "common": bool})


def factors(inputs: SearchInputs) -> tuple[pd.DataFrame, int | None]:
    """The factor table at the common budget, plus the survivors at ``max_t`` when that is later."""
    budget = common_budget(inputs)
    table = factor_table(inputs, budget)
    final = int(inputs.progress["epoch"].max()) if budget is not None and len(inputs.progress) else None
    if budget is not None and final is not None and final > budget:
        table = pd.concat([table, factor_table(inputs, final, common=False)], ignore_index=True)
    return table, budget


def compare_best(inputs: SearchInputs, table: pd.DataFrame) -> list[Comparison]:
    """Per dimension at the common budget: the best level (by mean) against the next one (Welch's t-test)."""
    from scipy import stats

    scores = values_at(inputs, _budget_of(table))
    out = []
    for dimension in inputs.dimensions:
        part = table[(table["dimension"] == dimension.key) & table["common"] & (table["n_trials"] > 0)]
        if part.empty:
            continue
        ranked = part.sort_values(["mean", "order"], ascending=[not inputs.better_is_higher, True], kind="mergesort")
        best = ranked.iloc[0]
        if len(ranked) < 2:
            out.append(
                Comparison(
                    dimension.key,
                    str(best["level"]),
                    None,
                    float(best["mean"]),
                    math.nan,
                    math.nan,
                    math.nan,
                    int(best["n_trials"]),
                    0,
                )
            )
            continue
        runner = ranked.iloc[1]
        labels, _ = trial_levels(inputs, dimension)
        a = _level_values(scores, labels, str(best["level"]))
        b = _level_values(scores, labels, str(runner["level"]))
        p = math.nan
        if a.size >= 2 and b.size >= 2 and (a.std() > 0 or b.std() > 0):
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        out.append(
            Comparison(
                dimension.key,
                str(best["level"]),
                str(runner["level"]),
                float(best["mean"]),
                float(runner["mean"]),
                float(best["mean"] - runner["mean"]),
                p,
                int(a.size),
                int(b.size),
            )
        )
    return out


def _budget_of(table: pd.DataFrame) -> int | None:
    common = table[table["common"]]
    if common.empty:
        return None
    budget = int(common["budget"].iloc[0])
    return None if budget < 0 else budget


SLOPE_COLUMNS = ["dimension", "per", "slope", "ci_lo", "ci_hi", "p", "n_trials", "budget"]


def slopes(inputs: SearchInputs, budget: int | None) -> pd.DataFrame:
    """OLS slope of the metric on each continuous dimension (log10 for log-uniform ones), at ``budget``."""
    import statsmodels.api as sm

    scores = values_at(inputs, budget)
    trials = inputs.trials.set_index("trial")
    rows = []
    for dimension in inputs.dimensions:
        if dimension.kind == CATEGORICAL:
            continue
        column = trials[dimension.key].reindex(scores.index)
        keep = ~column.map(is_missing)
        x = column[keep].astype(float).to_numpy()
        y = scores[keep].to_numpy(float)
        if x.size < 3 or np.unique(x).size < 2:
            continue
        x = np.log10(x) if dimension.log else x
        fit = sm.OLS(y, sm.add_constant(x)).fit()
        lo, hi = fit.conf_int(alpha=ALPHA)[1]
        rows.append(
            {
                "dimension": dimension.key,
                "per": "decade" if dimension.log else "unit",
                "slope": float(fit.params[1]),
                "ci_lo": float(lo),
                "ci_hi": float(hi),
                "p": float(fit.pvalues[1]),
                "n_trials": int(x.size),
                "budget": -1 if budget is None else int(budget),
            }
        )
    return pd.DataFrame(rows, columns=SLOPE_COLUMNS)
