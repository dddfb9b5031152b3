"""Importance of each searched dimension, by Optuna's evaluators (fANOVA and PED-ANOVA) on the trials' metric at
the common budget.

The trials are rebuilt as Optuna ``FrozenTrial``s with the distributions the search space declared (categorical
choices, log / linear floats, integers), added to an in-memory study with the study's direction, and handed to
``optuna.importance.get_param_importances``. Optuna scores only parameters present in every trial, so a conditional
dimension (e.g. gradnorm's ``alpha``) is reported as not estimated rather than guessed. Fewer than
``MIN_TRIALS`` usable trials, or fewer than two varying dimensions, give no importance (the report says so).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mmtune.analysis.search_data import CATEGORICAL, Dimension, SearchInputs, is_missing

IMPORTANCE_COLUMNS = ["dimension", "importance", "method", "n_trials", "note"]
MIN_TRIALS = 8
METHODS = ("fanova", "ped_anova")


def _choice(value: Any) -> Any:
    """Optuna's categorical choices are None / bool / int / float / str."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _distribution(dimension: Dimension, values: pd.Series) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dimension.kind == CATEGORICAL:
        choices = list(dict.fromkeys([_choice(v) for v in dimension.levels] + [_choice(v) for v in values]))
        return CategoricalDistribution(choices)
    lo, hi = dimension.bounds or (float(values.min()), float(values.max()))
    lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    if all(float(v).is_integer() for v in values) and not dimension.log and float(lo).is_integer():
        return IntDistribution(int(lo), int(hi))
    return FloatDistribution(float(lo), float(hi), log=dimension.log)


def _evaluator(method: str) -> Any:
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    if method == "fanova":
        return FanovaImportanceEvaluator(seed=0)
    return PedAnovaImportanceEvaluator()


def importance(inputs: SearchInputs, scores: pd.Series) -> tuple[pd.DataFrame, str | None]:
    """(one row per dimension x method, why nothing was estimated or None)."""
    import optuna

    trials = inputs.trials.set_index("trial").reindex(scores.index)
    usable = [d for d in inputs.dimensions if not trials[d.key].map(is_missing).any()]
    varying = [d for d in usable if trials[d.key].astype(str).nunique() > 1]
    notes = {d.key: "conditional: not in every trial" for d in inputs.dimensions if d not in usable}
    notes |= {d.key: "one level only" for d in usable if d not in varying}
    n = len(scores)
    reason = None
    if n < MIN_TRIALS:
        reason = f"{n} usable trial(s) at the common budget; importance needs at least {MIN_TRIALS}"
    elif len(varying) < 2:
        reason = f"{len(varying)} dimension(s) vary in every trial; importance needs at least 2"
    rows: list[dict[str, Any]] = []
    if reason is None:
        distributions = {d.key: _distribution(d, trials[d.key]) for d in varying}
        frozen = []
        for trial, value in scores.items():
            params = {}
            for d in varying:
                raw = trials.at[trial, d.key]
                params[d.key] = _choice(raw) if d.kind == CATEGORICAL else float(raw)
                if type(distributions[d.key]).__name__ == "IntDistribution":
                    params[d.key] = int(params[d.key])
            frozen.append(optuna.trial.create_trial(params=params, distributions=distributions, value=float(value)))
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        direction = "maximize" if inputs.better_is_higher else "minimize"
        study = optuna.create_study(direction=direction)
        study.add_trials(frozen)
        for method in METHODS:
            try:
                found = optuna.importance.get_param_importances(study, evaluator=_evaluator(method))
            except (ValueError, RuntimeError) as exc:  # e.g. too few trials in PED-ANOVA's top quantile
                for d in varying:
                    rows.append(_row(d.key, math.nan, method, n, f"failed: {str(exc).splitlines()[0][:120]}"))
                continue
            for d in varying:
                rows.append(_row(d.key, float(found.get(d.key, 0.0)), method, n, ""))
    for d in inputs.dimensions:
        if d.key in notes or reason is not None:
            note = notes.get(d.key) or f"not estimated: {reason}"
            rows.append(_row(d.key, math.nan, METHODS[0], n, note))
    frame = pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS).astype({"n_trials": "int64", "importance": float})
    order = {d.key: i for i, d in enumerate(inputs.dimensions)}
    frame["_o"] = frame["dimension"].map(order)
    frame = frame.sort_values(["method", "_o"], kind="mergesort").drop(columns="_o").reset_index(drop=True)
    return frame, reason


def _row(dimension: str, value: float, method: str, n: int, note: str) -> dict[str, Any]:
    return {"dimension": dimension, "importance": value, "method": method, "n_trials": n, "note": note}


def ranked(frame: pd.DataFrame, method: str = METHODS[0]) -> list[str]:
    """Dimensions by importance (most important first) under ``method``; unestimated ones left out."""
    part = frame[(frame["method"] == method) & frame["importance"].notna()]
    return list(part.sort_values("importance", ascending=False, kind="mergesort")["dimension"])
