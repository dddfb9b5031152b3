"""Comparing three or more configurations evaluated on the same blocks (data sets, folds, seeds or centres).

Following Demšar (2006, JMLR 7:1-30): rank the configurations within each block (rank 1 = best, ties share the
average rank), test whether the average ranks differ with the Friedman test (and its less conservative
Iman-Davenport F form), then compare all pairs with the Nemenyi post-hoc test: two configurations differ when
their average ranks differ by more than the critical difference CD = q_alpha * sqrt(k (k + 1) / (6 N)), with
q_alpha the studentized range quantile for k groups and infinite degrees of freedom divided by sqrt(2).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from mmtune.analysis.stats._validation import StatsInputError, check_names


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman chi-square (``p_value``) and Iman-Davenport F (``iman_davenport_p``, preferred) over N blocks."""

    statistic: float
    p_value: float
    iman_davenport: float
    iman_davenport_p: float
    df1: int
    df2: int
    avg_ranks: dict[str, float]
    n_blocks: int
    k: int
    tie_corrected: bool


@dataclass(frozen=True)
class NemenyiResult:
    """Average ranks, the critical difference and all pairwise Nemenyi p-values (``p_values[i, j]``, by ``names``)."""

    avg_ranks: dict[str, float]
    cd: float
    q_alpha: float
    alpha: float
    names: list[str]
    p_values: np.ndarray
    n_blocks: int

    def significant(self, a: str, b: str) -> bool:
        """Whether configurations ``a`` and ``b`` differ by more than the critical difference."""
        return abs(self.avg_ranks[a] - self.avg_ranks[b]) > self.cd

    def cliques(self) -> list[tuple[str, ...]]:
        """Groups of configurations that are not significantly different (see :func:`nonsignificant_cliques`)."""
        return nonsignificant_cliques(self.avg_ranks, self.cd)


def _matrix(matrix: object, names: Sequence[str] | None, where: str, min_k: int) -> tuple[np.ndarray, list[str]]:
    """A finite float matrix [n_blocks, k]; a pandas DataFrame supplies its column names."""
    if names is None and hasattr(matrix, "columns"):
        names = [str(c) for c in matrix.columns]  # type: ignore[attr-defined]
    try:
        values = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(f"{where}: matrix must be numeric ({exc})") from None
    if values.ndim != 2:
        raise StatsInputError(f"{where}: matrix must be 2-D [n_blocks x k_configs], got shape {values.shape}")
    n_blocks, k = values.shape
    if k < min_k:
        raise StatsInputError(f"{where}: needs at least {min_k} configurations (columns), got {k}")
    if n_blocks < 2:
        raise StatsInputError(f"{where}: needs at least 2 blocks (rows: data sets, folds or seeds), got {n_blocks}")
    if not np.all(np.isfinite(values)):
        row, col = (int(v[0]) for v in np.nonzero(~np.isfinite(values)))
        raise StatsInputError(
            f"{where}: matrix has a missing/non-finite value at block {row}, configuration {col}; "
            "every configuration needs a value on every block"
        )
    return values, check_names(names, k, where)


def rank_within_blocks(matrix: object, higher_is_better: bool = True) -> np.ndarray:
    """Ranks [n_blocks, k] within each row: 1 = best, ties get the average of the ranks they span."""
    values, _ = _matrix(matrix, None, "rank_within_blocks", min_k=2)
    return sps.rankdata(-values if higher_is_better else values, axis=1)


def average_ranks(
    matrix: object, names: Sequence[str] | None = None, higher_is_better: bool = True
) -> dict[str, float]:
    """Average rank of each configuration over the blocks (1 = best; ``higher_is_better=False`` for losses)."""
    values, names = _matrix(matrix, names, "average_ranks", min_k=2)
    ranks = sps.rankdata(-values if higher_is_better else values, axis=1).mean(axis=0)
    return {name: float(r) for name, r in zip(names, ranks, strict=True)}


def friedman_test(
    matrix: object,
    names: Sequence[str] | None = None,
    *,
    higher_is_better: bool = True,
    tie_correction: bool = True,
) -> FriedmanResult:
    """Friedman test that k >= 3 configurations perform equally, from a [n_blocks x k] matrix of metric values.

    Use it before any pairwise post-hoc test when comparing many configurations on the same splits. The chi-square
    statistic is ``scipy.stats.friedmanchisquare`` (tie-corrected); ``tie_correction=False`` gives Demšar's
    textbook formula. The Iman-Davenport statistic F = (N - 1) chi2 / (N (k - 1) - chi2) with (k - 1, (k - 1)(N - 1))
    degrees of freedom is less conservative than chi-square and is what Demšar recommends reading.
    """
    where = "friedman_test"
    values, names = _matrix(matrix, names, where, min_k=3)
    n_blocks, k = values.shape
    ranks = sps.rankdata(-values if higher_is_better else values, axis=1)
    avg = ranks.mean(axis=0)
    if tie_correction:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all blocks tied: 0/0, handled below
            chi2 = float(sps.friedmanchisquare(*values.T).statistic)
    else:
        chi2 = float(12.0 * n_blocks / (k * (k + 1)) * (np.sum(avg**2) - k * (k + 1) ** 2 / 4.0))
    if not np.isfinite(chi2):  # every block is one big tie: no evidence of any difference
        chi2 = 0.0
    df1, df2 = k - 1, (k - 1) * (n_blocks - 1)
    p_chi2 = float(sps.chi2.sf(chi2, df1))
    denom = n_blocks * (k - 1) - chi2
    f_stat = (n_blocks - 1) * chi2 / denom if denom > 1e-12 else float("inf")
    p_f = float(sps.f.sf(f_stat, df1, df2)) if np.isfinite(f_stat) else 0.0
    return FriedmanResult(
        statistic=chi2,
        p_value=p_chi2,
        iman_davenport=float(f_stat),
        iman_davenport_p=p_f,
        df1=df1,
        df2=df2,
        avg_ranks={name: float(r) for name, r in zip(names, avg, strict=True)},
        n_blocks=n_blocks,
        k=k,
        tie_corrected=tie_correction,
    )


def _q_alpha(k: int, alpha: float) -> float:
    """Nemenyi's q_alpha: studentized range quantile (k groups, infinite df) / sqrt(2)."""
    return float(sps.studentized_range.ppf(1.0 - alpha, k, np.inf) / np.sqrt(2.0))


def critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks for k configurations on n_blocks blocks."""
    if not (isinstance(k, int) and k >= 2 and isinstance(n_blocks, int) and n_blocks >= 2):
        raise StatsInputError(f"critical_difference: needs k >= 2 and n_blocks >= 2, got k={k}, n_blocks={n_blocks}")
    if not 0.0 < alpha < 1.0:
        raise StatsInputError(f"critical_difference: alpha must be between 0 and 1, got {alpha!r}")
    return _q_alpha(k, alpha) * float(np.sqrt(k * (k + 1) / (6.0 * n_blocks)))


def nemenyi_posthoc(
    matrix: object,
    names: Sequence[str] | None = None,
    *,
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> NemenyiResult:
    """Nemenyi all-pairs comparison after a significant Friedman test.

    Pairwise p-value: ``P(Q > |R_i - R_j| / sqrt(k (k + 1) / (6 N)) * sqrt(2))`` for the studentized range Q
    with k groups and infinite df; it controls the family-wise error over all k (k - 1) / 2 pairs, so do not
    correct these p-values again. Equivalently, |R_i - R_j| > CD at level ``alpha``. For comparisons against one
    baseline only, Holm-corrected Wilcoxon / corrected t-tests are more powerful.
    """
    where = "nemenyi_posthoc"
    if not 0.0 < alpha < 1.0:
        raise StatsInputError(f"{where}: alpha must be between 0 and 1, got {alpha!r}")
    values, names = _matrix(matrix, names, where, min_k=3)
    n_blocks, k = values.shape
    avg = sps.rankdata(-values if higher_is_better else values, axis=1).mean(axis=0)
    scale = float(np.sqrt(k * (k + 1) / (6.0 * n_blocks)))
    q = np.abs(avg[:, None] - avg[None, :]) / scale * np.sqrt(2.0)
    upper = np.triu_indices(k, 1)
    p_values = np.ones((k, k))
    p_values[upper] = np.clip(sps.studentized_range.sf(q[upper], k, np.inf), 0.0, 1.0)
    p_values.T[upper] = p_values[upper]
    q_alpha = _q_alpha(k, alpha)
    return NemenyiResult(
        avg_ranks={name: float(r) for name, r in zip(names, avg, strict=True)},
        cd=q_alpha * scale,
        q_alpha=q_alpha,
        alpha=alpha,
        names=names,
        p_values=p_values,
        n_blocks=n_blocks,
    )


def nonsignificant_cliques(avg_ranks: Mapping[str, float], cd: float) -> list[tuple[str, ...]]:
    """Maximal runs of rank-sorted configurations whose average ranks span at most ``cd`` (Demšar's bars).

    Only groups of two or more are returned, best-ranked first; a configuration may belong to several groups.
    """
    ordered = sorted(avg_ranks.items(), key=lambda item: (item[1], item[0]))
    groups: list[tuple[int, int]] = []
    for i in range(len(ordered)):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1][1] - ordered[i][1] <= cd:
            j += 1
        if j > i and not any(start <= i and j <= end for start, end in groups):
            groups.append((i, j))
    return [tuple(name for name, _ in ordered[start : end + 1]) for start, end in groups]
