"""Bootstrap confidence intervals for any metric, and paired bootstrap differences between two models' scores.

Resampling is over samples (patients), optionally stratified by a label so that every resample keeps the class
sizes of the data (the AUC stays defined and the interval does not mix in class-ratio noise). Resamples where the
metric is undefined (it raises ``ValueError`` or returns NaN/inf, e.g. one class only) are skipped and counted.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from mmtune.analysis.stats._validation import StatsInputError, check_level, same_length

Metric = Callable[..., float]

#: Fewer valid resamples than this share of ``n_boot`` is an error: the interval would describe a biased subset.
MIN_VALID_SHARE = 0.5


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimate on the full data, interval bounds at ``level``, and how many resamples were skipped."""

    estimate: float
    lo: float
    hi: float
    level: float
    method: str
    n_boot: int
    n_skipped: int


@dataclass(frozen=True)
class PairedBootstrapResult:
    """``metric(a) - metric(b)`` with its percentile interval and a two-sided bootstrap p-value."""

    diff: float
    lo: float
    hi: float
    p_value: float
    metric_a: float
    metric_b: float
    level: float
    n_boot: int
    n_skipped: int


def _safe_metric(metric_fn: Metric, arrays: tuple[np.ndarray, ...]) -> float:
    """The metric's value, or NaN when it is undefined on these samples."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(metric_fn(*arrays))
        except ValueError:
            return float("nan")
    return value if np.isfinite(value) else float("nan")


def _full_data_metric(metric_fn: Metric, arrays: tuple[np.ndarray, ...], where: str) -> float:
    """The metric on all samples; an undefined value here is the caller's error, not a skipped resample."""
    try:
        value = float(metric_fn(*arrays))
    except ValueError as exc:
        message = " ".join(str(exc).split())
        raise StatsInputError(f"{where}: the metric fails on the full data: {message}") from None
    if not np.isfinite(value):
        raise StatsInputError(f"{where}: the metric is {value} on the full data (check the labels and scores)")
    return value


def _as_arrays(arrays: tuple[object, ...], where: str) -> tuple[np.ndarray, ...]:
    if not arrays:
        raise StatsInputError(f"{where}: pass at least one array for the metric")
    out = tuple(np.asarray(a) for a in arrays)
    for i, a in enumerate(out):
        if a.ndim == 0:
            raise StatsInputError(f"{where}: array {i} must be an array of samples, got a scalar")
    same_length(where, **{f"array_{i}": a for i, a in enumerate(out)})
    if len(out[0]) < 2:
        raise StatsInputError(f"{where}: needs at least 2 samples, got {len(out[0])}")
    return out


def resample_indices(n: int, n_boot: int, rng: np.random.Generator, strata: np.ndarray | None = None) -> np.ndarray:
    """Bootstrap index matrix ``[n_boot, n]``; with ``strata`` each stratum is resampled within itself."""
    if strata is None:
        return rng.integers(0, n, size=(n_boot, n))
    idx = np.empty((n_boot, n), dtype=np.int64)
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        idx[:, members] = members[rng.integers(0, members.size, size=(n_boot, members.size))]
    return idx


def _check_boot(n_boot: int, where: str) -> None:
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 100:
        raise StatsInputError(f"{where}: n_boot must be an integer >= 100, got {n_boot!r}")


def _strata(stratify: object | None, n: int, where: str) -> np.ndarray | None:
    if stratify is None:
        return None
    strata = np.asarray(stratify)
    if strata.ndim != 1 or strata.size != n:
        raise StatsInputError(
            f"{where}: stratify must be 1-D with one value per sample ({n}), got shape {strata.shape}"
        )
    return strata


def _boot_values(
    metric_fn: Metric, arrays: tuple[np.ndarray, ...], idx: np.ndarray, where: str
) -> tuple[np.ndarray, int]:
    values = np.array([_safe_metric(metric_fn, tuple(a[row] for a in arrays)) for row in idx])
    valid = values[np.isfinite(values)]
    n_skipped = int(values.size - valid.size)
    if valid.size < MIN_VALID_SHARE * values.size:
        raise StatsInputError(
            f"{where}: the metric was undefined on {n_skipped} of {values.size} resamples; "
            "stratify by the label (stratify=y) or use more samples"
        )
    return valid, n_skipped


def _bca_bounds(
    metric_fn: Metric, arrays: tuple[np.ndarray, ...], estimate: float, boot: np.ndarray, level: float
) -> tuple[float, float]:
    """Efron's bias-corrected and accelerated percentile bounds (jackknife acceleration, n extra metric calls)."""
    alpha = 1.0 - level
    # Bias correction; ties with the estimate count one half (AUC bootstraps are discrete).
    share_below = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / boot.size
    z0 = float(sps.norm.ppf(share_below))
    n = len(arrays[0])
    keep = np.ones(n, dtype=bool)
    jack = np.empty(n)
    for i in range(n):
        keep[i] = False
        jack[i] = _safe_metric(metric_fn, tuple(a[keep] for a in arrays))
        keep[i] = True
    jack = jack[np.isfinite(jack)]
    dev = jack.mean() - jack if jack.size else np.zeros(1)
    denom = 6.0 * float(np.sum(dev**2)) ** 1.5
    accel = float(np.sum(dev**3)) / denom if denom > 0 else 0.0
    bounds = []
    for z_alpha in sps.norm.ppf([alpha / 2.0, 1.0 - alpha / 2.0]):
        adjusted = float(sps.norm.cdf(z0 + (z0 + z_alpha) / (1.0 - accel * (z0 + z_alpha))))
        bounds.append(float(np.quantile(boot, adjusted)) if np.isfinite(adjusted) else float("nan"))
    return bounds[0], bounds[1]


def bootstrap_ci(
    metric_fn: Metric,
    *arrays: object,
    n_boot: int = 2000,
    level: float = 0.95,
    stratify: object | None = None,
    seed: int = 0,
    method: Literal["percentile", "bca"] = "percentile",
) -> BootstrapResult:
    """Bootstrap CI of ``metric_fn(*arrays)`` over samples, e.g. ``bootstrap_ci(roc_auc_score, y, p, stratify=y)``.

    Use it for one model's metric on one test set when no closed form exists (AP, F1, balanced accuracy, Dice...).
    All arrays are resampled with the same row indices (paired); ``stratify`` (usually ``y``) keeps class sizes.
    ``"percentile"`` is the plain interval; ``"bca"`` corrects bias and skew (better for bounded metrics near 0
    or 1) at the price of one jackknife pass (n metric calls). Deterministic for a given ``seed``.
    """
    where = "bootstrap_ci"
    level = check_level(level, where)
    _check_boot(n_boot, where)
    if method not in ("percentile", "bca"):
        raise StatsInputError(f"{where}: method must be 'percentile' or 'bca', got {method!r}")
    data = _as_arrays(arrays, where)
    n = len(data[0])
    strata = _strata(stratify, n, where)
    estimate = _full_data_metric(metric_fn, data, where)
    idx = resample_indices(n, n_boot, np.random.default_rng(seed), strata)
    boot, n_skipped = _boot_values(metric_fn, data, idx, where)
    if method == "bca":
        lo, hi = _bca_bounds(metric_fn, data, estimate, boot, level)
    else:
        alpha = 1.0 - level
        lo, hi = (float(v) for v in np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0]))
    return BootstrapResult(estimate, lo, hi, level, method, n_boot, n_skipped)


def paired_bootstrap_diff(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y: object,
    score_a: object,
    score_b: object,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    stratify: bool = True,
    seed: int = 0,
) -> PairedBootstrapResult:
    """Difference ``metric_fn(y, score_a) - metric_fn(y, score_b)`` of two models on the same samples.

    Both models are evaluated on the same resampled patients, so their correlation cancels out. Works for any
    metric (AUC: :func:`delong_test` is the closed-form alternative). The p-value is two-sided, from inverting the
    percentile interval: ``p = min(1, 2 * min(#(d* <= 0) + 1, #(d* >= 0) + 1) / (B + 1))``, so p < 1 - level
    exactly when the interval excludes 0 (up to the +1 that keeps p > 0). ``stratify`` resamples within classes
    of ``y`` (turn it off for regression targets).
    """
    where = "paired_bootstrap_diff"
    level = check_level(level, where)
    _check_boot(n_boot, where)
    data = _as_arrays((y, score_a, score_b), where)
    labels, a, b = data
    n = len(labels)
    strata = _strata(labels if stratify else None, n, where)
    metric_a = _full_data_metric(metric_fn, (labels, a), where)
    metric_b = _full_data_metric(metric_fn, (labels, b), where)

    def diff_fn(yy: np.ndarray, sa: np.ndarray, sb: np.ndarray) -> float:
        return float(metric_fn(yy, sa)) - float(metric_fn(yy, sb))

    idx = resample_indices(n, n_boot, np.random.default_rng(seed), strata)
    boot, n_skipped = _boot_values(diff_fn, data, idx, where)
    alpha = 1.0 - level
    lo, hi = (float(v) for v in np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0]))
    below = int(np.sum(boot <= 0.0)) + 1
    above = int(np.sum(boot >= 0.0)) + 1
    p_value = min(1.0, 2.0 * min(below, above) / (boot.size + 1))
    return PairedBootstrapResult(
        diff=metric_a - metric_b,
        lo=lo,
        hi=hi,
        p_value=p_value,
        metric_a=metric_a,
        metric_b=metric_b,
        level=level,
        n_boot=n_boot,
        n_skipped=n_skipped,
    )
