"""Paired comparisons of two configurations across CV folds / seeds (one metric value per split and config).

The splits, not the patients, are the replicates here. Folds of one cross-validation share training patients,
so their metric values are positively correlated and a plain paired t-test underestimates the variance of the
mean difference (it is anti-conservative: too many false "improvements"). :func:`corrected_resampled_ttest`
applies Nadeau & Bengio's (2003, Machine Learning 52) correction; :func:`wilcoxon_signed_rank` makes no normality
assumption but does not correct for the overlap either, so read it as descriptive when folds overlap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from mmtune.analysis.stats._validation import (
    StatsInputError,
    as_1d_float,
    check_alternative,
    check_level,
    same_length,
)


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test of a - b; ``rank_biserial`` in [-1, 1] is positive when a tends to be larger."""

    statistic: float
    p_value: float
    n: int
    n_nonzero: int
    median_diff: float
    rank_biserial: float
    alternative: str


@dataclass(frozen=True)
class CorrectedTTestResult:
    """Nadeau-Bengio corrected resampled t-test of mean(a - b), with the naive paired t-test for comparison."""

    mean_diff: float
    se: float
    t: float
    df: int
    p_value: float
    lo: float
    hi: float
    level: float
    naive_t: float
    naive_p: float
    alternative: str


@dataclass(frozen=True)
class PairedEffectSize:
    """Mean difference a - b with its t-interval, Cohen's d_z (mean / sd of the differences) and rank-biserial r."""

    mean_diff: float
    lo: float
    hi: float
    level: float
    cohens_dz: float
    rank_biserial: float
    n: int
    corrected: bool


def _paired_diffs(a: object, b: object, where: str, minimum: int = 2) -> np.ndarray:
    arr_a = as_1d_float(a, "a", where)
    arr_b = as_1d_float(b, "b", where)
    same_length(where, a=arr_a, b=arr_b)
    if arr_a.size < minimum:
        raise StatsInputError(f"{where}: needs at least {minimum} paired values (splits), got {arr_a.size}")
    return arr_a - arr_b


def _rank_biserial(diffs: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014): (R+ - R-) / (R+ + R-), zero differences dropped."""
    nonzero = diffs[diffs != 0.0]
    if nonzero.size == 0:
        return 0.0
    ranks = sps.rankdata(np.abs(nonzero))
    return float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())


def wilcoxon_signed_rank(
    a: object, b: object, *, alternative: Literal["two-sided", "greater", "less"] = "two-sided"
) -> WilcoxonResult:
    """Wilcoxon signed-rank test on paired per-split metrics (``scipy.stats.wilcoxon``, zero differences dropped).

    Use it when the differences may be skewed or have outliers and a t-test's normality is doubtful. With n
    splits the smallest possible two-sided p is 2 / 2**n: 5 folds can never reach p < 0.05 (min 0.0625); use
    5 folds x 3 seeds or more. ``alternative="greater"`` tests a > b. All differences zero gives p = 1.
    """
    where = "wilcoxon_signed_rank"
    alternative = check_alternative(alternative, where)
    diffs = _paired_diffs(a, b, where)
    nonzero = int(np.count_nonzero(diffs))
    rank_biserial = _rank_biserial(diffs)
    median = float(np.median(diffs))
    if nonzero == 0:
        return WilcoxonResult(0.0, 1.0, diffs.size, 0, median, 0.0, alternative)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.wilcoxon(diffs, zero_method="wilcox", alternative=alternative)
    return WilcoxonResult(
        float(res.statistic), float(res.pvalue), diffs.size, nonzero, median, rank_biserial, alternative
    )


def _t_p_value(t: float, df: int, alternative: str) -> float:
    if alternative == "two-sided":
        return float(2.0 * sps.t.sf(abs(t), df))
    if alternative == "greater":
        return float(sps.t.sf(t, df))
    return float(sps.t.cdf(t, df))


def _t_stat(mean: float, se: float) -> float:
    if se > 0:
        return mean / se
    return 0.0 if mean == 0 else float(np.copysign(np.inf, mean))  # no spread: no evidence, or certainty


def _check_sizes(n_train: float, n_test: float, where: str) -> float:
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
            raise StatsInputError(f"{where}: {name} must be a positive number of samples, got {value!r}")
    return float(n_test) / float(n_train)


def corrected_resampled_ttest(
    a: object,
    b: object,
    n_train: float,
    n_test: float,
    *,
    level: float = 0.95,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
) -> CorrectedTTestResult:
    """Nadeau & Bengio's corrected resampled t-test for metrics from J overlapping train/test splits.

    Use it for per-split values of two configs from (repeated) k-fold CV or repeated hold-out on the same splits:
    ``a[j]``, ``b[j]`` from split j, J = folds x seeds. ``n_train`` / ``n_test`` are the (average) numbers of
    training and test samples per split. The variance of the mean difference is ``(1/J + n_test/n_train) * s^2``
    instead of the naive ``s^2 / J`` (s^2 = sample variance of the differences), t has J - 1 degrees of freedom.
    ``naive_t`` / ``naive_p`` are the plain paired t-test, reported to show how optimistic it is.
    """
    where = "corrected_resampled_ttest"
    level = check_level(level, where)
    alternative = check_alternative(alternative, where)
    ratio = _check_sizes(n_train, n_test, where)
    diffs = _paired_diffs(a, b, where)
    j = diffs.size
    mean = float(diffs.mean())
    var = float(diffs.var(ddof=1))
    se = float(np.sqrt((1.0 / j + ratio) * var))
    naive_se = float(np.sqrt(var / j))
    df = j - 1
    t = _t_stat(mean, se)
    naive_t = _t_stat(mean, naive_se)
    half = float(sps.t.ppf(1.0 - (1.0 - level) / 2.0, df)) * se
    return CorrectedTTestResult(
        mean_diff=mean,
        se=se,
        t=t,
        df=df,
        p_value=_t_p_value(t, df, alternative),
        lo=mean - half,
        hi=mean + half,
        level=level,
        naive_t=naive_t,
        naive_p=_t_p_value(naive_t, df, alternative),
        alternative=alternative,
    )


def paired_effect_size(
    a: object,
    b: object,
    *,
    level: float = 0.95,
    n_train: float | None = None,
    n_test: float | None = None,
) -> PairedEffectSize:
    """How large is the difference a - b across splits, not only whether it is significant.

    Returns the mean difference with a t-interval (Nadeau-Bengio corrected when ``n_train`` and ``n_test`` are
    given, which is the honest choice for CV folds), Cohen's d_z = mean / sd of the differences (about 0.2
    small, 0.5 medium, 0.8 large; inf when all differences are equal and non-zero) and the matched-pairs
    rank-biserial correlation that goes with the Wilcoxon test.
    """
    where = "paired_effect_size"
    level = check_level(level, where)
    if (n_train is None) != (n_test is None):
        raise StatsInputError(f"{where}: give both n_train and n_test (corrected interval) or neither")
    diffs = _paired_diffs(a, b, where)
    j = diffs.size
    mean = float(diffs.mean())
    sd = float(diffs.std(ddof=1))
    inflation = 1.0 / j + (_check_sizes(n_train, n_test, where) if n_train is not None else 0.0)
    half = float(sps.t.ppf(1.0 - (1.0 - level) / 2.0, j - 1)) * sd * np.sqrt(inflation)
    dz = _t_stat(mean, sd)
    return PairedEffectSize(
        mean_diff=mean,
        lo=mean - half,
        hi=mean + half,
        level=level,
        cohens_dz=dz,
        rank_biserial=_rank_biserial(diffs),
        n=j,
        corrected=n_train is not None,
    )
