"""Multiple-comparison corrections over all p-values of a study (``statsmodels.stats.multitest.multipletests``).

Both functions accept any array shape, return adjusted p-values of the same shape, and leave NaN entries (tests
that could not be run) as NaN without letting them count as comparisons.
"""

from __future__ import annotations

import numpy as np

from mmtune.analysis.stats._validation import StatsInputError


def _adjust(pvalues: object, method: str, where: str) -> np.ndarray:
    from statsmodels.stats.multitest import multipletests

    try:
        p = np.asarray(pvalues, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(f"{where}: p-values must be numeric ({exc})") from None
    out = np.full(p.shape, np.nan)
    present = ~np.isnan(p)
    values = p[present]
    if np.any((values < 0.0) | (values > 1.0)):
        bad = float(values[(values < 0.0) | (values > 1.0)][0])
        raise StatsInputError(f"{where}: p-values must lie in [0, 1], got {bad:g}")
    if values.size:
        out[present] = multipletests(values, method=method)[1]
    return out


def holm(pvalues: object) -> np.ndarray:
    """Holm's step-down adjustment: controls the family-wise error rate (any false positive) under any dependence.

    Use it for a handful of planned comparisons (each factor's effect, each config against the baseline) when
    every claimed difference must hold. Uniformly more powerful than Bonferroni.
    """
    return _adjust(pvalues, "holm", "holm")


def benjamini_hochberg(pvalues: object) -> np.ndarray:
    """Benjamini-Hochberg step-up adjustment: controls the false discovery rate (expected share of false claims).

    Use it for many exploratory comparisons (all pairs of many configs, many tasks x metrics) where a few false
    positives among many findings are acceptable. Valid under independence or positive dependence of the tests.
    """
    return _adjust(pvalues, "fdr_bh", "benjamini_hochberg")
