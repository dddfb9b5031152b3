"""ROC statistics: AUC, the paired DeLong test, AUC confidence intervals and multi-class one-vs-rest AUROC.

The DeLong computations follow the fast midrank algorithm of Sun & Xu (2014, IEEE Signal Processing Letters
21(11)), O(n log n) instead of DeLong, DeLong & Clarke-Pearson's (1988, Biometrics 44) O(n^2) placements, and
reproduce R pROC (``roc.test(..., method="delong")``, ``ci.auc(..., method="delong")``, ``var``, ``cov``) with
``direction = "<"``: class 1 is expected to score higher, ties count one half, and a curve is never flipped (an AUC
below 0.5 stays below 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from scipy import stats as sps

from mmtune.analysis.stats._validation import (
    StatsInputError,
    as_1d_float,
    as_binary_labels,
    check_alternative,
    check_level,
    same_length,
)


class AucCI(NamedTuple):
    """An AUC and its confidence interval; unpacks as ``auc, lo, hi``."""

    auc: float
    lo: float
    hi: float


class MulticlassAuroc(NamedTuple):
    """Macro one-vs-rest AUROC over the classes present in ``y`` and the per-class values (NaN when absent)."""

    macro: float
    per_class: dict[str, float]


@dataclass(frozen=True)
class DeLongResult:
    """Paired DeLong test of AUC(a) = AUC(b) on the same samples.

    ``diff_lo``/``diff_hi`` bound ``auc_a - auc_b`` at ``level`` (pROC's ``conf.int``); ``var_a``, ``var_b`` and
    ``cov_ab`` are the DeLong (co)variances of the two AUC estimates.
    """

    auc_a: float
    auc_b: float
    z: float
    p_value: float
    diff: float
    diff_lo: float
    diff_hi: float
    var_a: float
    var_b: float
    cov_ab: float
    n_pos: int
    n_neg: int
    level: float
    alternative: str


@dataclass(frozen=True)
class _Placements:
    """Midrank placements of k score vectors: AUCs ``[k]``, positives' ``[k, m]`` and negatives' ``[k, n]``."""

    aucs: np.ndarray
    pos: np.ndarray
    neg: np.ndarray

    def covariance(self) -> np.ndarray:
        """DeLong covariance matrix ``[k, k]`` of the AUC estimates (sample covariances with ddof = 1, as pROC)."""
        m, n = self.pos.shape[1], self.neg.shape[1]
        s_pos = np.atleast_2d(np.cov(self.pos, ddof=1))
        s_neg = np.atleast_2d(np.cov(self.neg, ddof=1))
        return s_pos / m + s_neg / n


def _placements(y: np.ndarray, scores: np.ndarray) -> _Placements:
    """Sun & Xu's midrank formulation for scores ``[k, N]`` and labels ``y`` (1 = positive)."""
    pos_scores = scores[:, y == 1]
    neg_scores = scores[:, y == 0]
    m, n = pos_scores.shape[1], neg_scores.shape[1]
    rank_pos = sps.rankdata(pos_scores, axis=1)  # midranks within positives
    rank_neg = sps.rankdata(neg_scores, axis=1)  # midranks within negatives
    rank_all = sps.rankdata(np.concatenate([pos_scores, neg_scores], axis=1), axis=1)
    aucs = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    # Positive i: share of negatives scored below it (ties 1/2); negative j: share of positives scored above it.
    pos_place = (rank_all[:, :m] - rank_pos) / n
    neg_place = 1.0 - (rank_all[:, m:] - rank_neg) / m
    return _Placements(aucs=aucs, pos=pos_place, neg=neg_place)


def roc_auc(y: object, score: object) -> float:
    """Binary ROC AUC (Mann-Whitney form, ties count 1/2); equals ``sklearn.metrics.roc_auc_score``.

    A fast metric for bootstrap loops: one midrank sort, no per-call validation beyond labels and lengths.
    """
    where = "roc_auc"
    labels = as_binary_labels(y, where)
    values = as_1d_float(score, "score", where)
    same_length(where, y=labels, score=values)
    ranks = sps.rankdata(values)
    m = int(labels.sum())
    n = labels.size - m
    return float((ranks[labels == 1].sum() - m * (m + 1) / 2.0) / (m * n))


def _p_from_z(z: float, alternative: str) -> float:
    if alternative == "two-sided":
        return float(2.0 * sps.norm.sf(abs(z)))
    if alternative == "greater":
        return float(sps.norm.sf(z))
    return float(sps.norm.cdf(z))


def _degenerate_z(diff: float) -> float:
    """z without variance, as pROC: equal AUCs give 0 (p = 1), different ones +-inf (p = 0)."""
    return 0.0 if diff == 0.0 else float(np.copysign(np.inf, diff))


def _prepare_pair(y: object, score_a: object, score_b: object | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    labels = as_binary_labels(y, where)
    arrays = {"score_a": as_1d_float(score_a, "score_a" if score_b is not None else "score", where)}
    if score_b is not None:
        arrays["score_b"] = as_1d_float(score_b, "score_b", where)
    same_length(where, y=labels, **arrays)
    m = int(labels.sum())
    if m < 2 or labels.size - m < 2:
        raise StatsInputError(
            f"{where}: DeLong needs at least 2 positives and 2 negatives, got {m} and {labels.size - m}"
        )
    return labels, np.vstack(list(arrays.values()))


def delong_test(
    y: object,
    score_a: object,
    score_b: object,
    *,
    level: float = 0.95,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
) -> DeLongResult:
    """Paired DeLong test: do two models' scores on the SAME patients have different ROC AUCs?

    Use it to compare two configurations on one test set (or on one CV fold's predictions). The samples are
    the unit of replication, so it says nothing about variation across training runs; for that compare per-split
    metrics with :func:`corrected_resampled_ttest` or :func:`wilcoxon_signed_rank`. ``alternative="greater"``
    tests AUC(a) > AUC(b). As in pROC, identical AUCs with zero variance give z = 0 and p = 1; a curve with AUC 0
    or 1 has zero DeLong variance, so p-values involving it can be misleading.
    """
    where = "delong_test"
    level = check_level(level, where)
    alternative = check_alternative(alternative, where)
    labels, scores = _prepare_pair(y, score_a, score_b, where)
    placements = _placements(labels, scores)
    cov = placements.covariance()
    auc_a, auc_b = (float(v) for v in placements.aucs)
    diff = auc_a - auc_b
    var_diff = max(float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]), 0.0)
    sig = float(np.sqrt(var_diff))
    z = diff / sig if sig > 0.0 else _degenerate_z(diff)
    crit = float(sps.norm.ppf(1.0 - (1.0 - level) / 2.0))
    return DeLongResult(
        auc_a=auc_a,
        auc_b=auc_b,
        z=z,
        p_value=_p_from_z(z, alternative),
        diff=diff,
        diff_lo=diff - crit * sig,
        diff_hi=diff + crit * sig,
        var_a=float(cov[0, 0]),
        var_b=float(cov[1, 1]),
        cov_ab=float(cov[0, 1]),
        n_pos=int(labels.sum()),
        n_neg=int(labels.size - labels.sum()),
        level=level,
        alternative=alternative,
    )


def delong_variance(y: object, score: object) -> float:
    """DeLong variance of one AUC estimate (pROC ``var(roc, method="delong")``)."""
    labels, scores = _prepare_pair(y, score, None, "delong_variance")
    return float(_placements(labels, scores).covariance()[0, 0])


def bootstrap_aucs(
    y: np.ndarray, score: np.ndarray, n_boot: int, rng: np.random.Generator, chunk: int = 256
) -> np.ndarray:
    """AUCs of ``n_boot`` class-stratified bootstrap resamples, vectorised (each resample keeps both class sizes)."""
    pos = score[y == 1]
    neg = score[y == 0]
    m, n = pos.size, neg.size
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        sample = np.concatenate([pos[rng.integers(0, m, size=(b, m))], neg[rng.integers(0, n, size=(b, n))]], axis=1)
        ranks = sps.rankdata(sample, axis=1)
        out[start : start + b] = (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    return out


def auc_ci(
    y: object,
    score: object,
    level: float = 0.95,
    method: Literal["delong", "bootstrap"] = "delong",
    n_boot: int = 2000,
    seed: int = 0,
) -> AucCI:
    """ROC AUC with a confidence interval, as pROC ``ci.auc``.

    ``"delong"`` (default): normal interval with the DeLong variance, clipped to [0, 1]; fast and exact to pROC,
    but symmetric, so it can be too narrow near AUC = 1 with few positives. ``"bootstrap"``: percentile interval
    of ``n_boot`` class-stratified resamples (pROC's default ``boot.stratified = TRUE``; its random numbers differ,
    so values agree with pROC only up to Monte-Carlo error); prefer it for small or very unbalanced test sets.
    """
    where = "auc_ci"
    level = check_level(level, where)
    if method == "delong":
        labels, scores = _prepare_pair(y, score, None, where)
        placements = _placements(labels, scores)
        auc = float(placements.aucs[0])
        sd = float(np.sqrt(max(placements.covariance()[0, 0], 0.0)))
        crit = float(sps.norm.ppf(1.0 - (1.0 - level) / 2.0))
        return AucCI(auc, float(np.clip(auc - crit * sd, 0.0, 1.0)), float(np.clip(auc + crit * sd, 0.0, 1.0)))
    if method == "bootstrap":
        if not isinstance(n_boot, int) or n_boot < 100:
            raise StatsInputError(f"{where}: n_boot must be an integer >= 100, got {n_boot!r}")
        labels = as_binary_labels(y, where)
        values = as_1d_float(score, "score", where)
        same_length(where, y=labels, score=values)
        aucs = bootstrap_aucs(labels, values, n_boot, np.random.default_rng(seed))
        alpha = 1.0 - level
        lo, hi = np.quantile(aucs, [alpha / 2.0, 1.0 - alpha / 2.0])
        return AucCI(roc_auc(labels, values), float(lo), float(hi))
    raise StatsInputError(f"{where}: method must be 'delong' or 'bootstrap', got {method!r}")


def auroc_multiclass(y: object, proba: object, class_names: list[str] | None = None) -> MulticlassAuroc:
    """Macro one-vs-rest AUROC and per-class AUROC for a multi-class task.

    ``y`` holds class indices 0..C-1 (columns of ``proba [N, C]``; probabilities or logits, only the order within a
    column matters). Equals ``sklearn.metrics.roc_auc_score(y, proba, multi_class="ovr")`` when every class occurs,
    and, unlike it, still works when a class is absent from ``y`` (common in small CV folds): that class gets NaN
    and the macro mean runs over the classes present. At least two classes must be present.
    """
    from sklearn.metrics import roc_auc_score

    where = "auroc_multiclass"
    probs = np.asarray(proba, dtype=float)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise StatsInputError(f"{where}: proba must have shape [N, C] with C >= 2, got {probs.shape}")
    if not np.all(np.isfinite(probs)):
        raise StatsInputError(f"{where}: proba holds non-finite values")
    labels = as_1d_float(y, "y", where)
    same_length(where, y=labels, proba=probs)
    n_classes = probs.shape[1]
    if np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() >= n_classes:
        raise StatsInputError(f"{where}: y must hold class indices 0..{n_classes - 1} (drop masked labels -1 first)")
    labels = labels.astype(np.int64)
    names = [str(c) for c in (class_names if class_names is not None else range(n_classes))]
    if len(names) != n_classes:
        raise StatsInputError(f"{where}: got {len(names)} class names for {n_classes} proba columns")
    present = np.unique(labels)
    if present.size < 2:
        raise StatsInputError(f"{where}: y needs at least 2 classes, got only class {present[0]}")
    per_class: dict[str, float] = {}
    for c, name in enumerate(names):
        is_c = labels == c
        per_class[name] = float(roc_auc_score(is_c, probs[:, c])) if is_c.any() else float("nan")
    values = np.array([per_class[names[c]] for c in present])
    return MulticlassAuroc(float(values.mean()), per_class)
