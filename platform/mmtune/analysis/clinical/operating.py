"""Operating points of a binary score: sensitivity at a fixed specificity (and back), a threshold chosen on
validation predictions, and the confusion-matrix rates of a fixed threshold (``score >= threshold`` is positive).

A threshold fixed *before* the test set is seen is what a hospital would deploy; reading sensitivity off the test
ROC curve at the best point is optimistic. ``choose_threshold`` therefore runs on validation predictions only and
``rates`` applies the number unchanged to test.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mmtune.errors import UserError


class ThresholdError(UserError):
    """A threshold target outside (0, 1) or a validation set that cannot choose a threshold."""


def _check_target(target: float, what: str) -> float:
    if not 0.0 < float(target) < 1.0:
        raise ThresholdError(f"{what}: expected a target in (0, 1), got {target}")
    return float(target)


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, highest threshold first, starting at (0, 0) with an
    infinite threshold: ``sklearn.metrics.roc_curve(drop_intermediate=False)`` without its input checks (this runs
    inside bootstrap loops; the tests compare the two)."""
    y = np.asarray(y, int)
    s = np.asarray(s, float)
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order] == 1
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]  # last index of each distinct score
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = max(int(y_sorted.sum()), 1), max(int(s.size - y_sorted.sum()), 1)
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return fpr, tpr, np.r_[np.inf, s_sorted[last]]


def sensitivity_at_specificity(y: np.ndarray, s: np.ndarray, target: float) -> float:
    """The highest sensitivity of any threshold whose specificity is >= ``target`` (empirical ROC, no
    interpolation)."""
    _check_target(target, "specificity target")
    if np.unique(y).size < 2:
        return float("nan")
    fpr, tpr, _ = _roc(y, s)
    ok = (1.0 - fpr) >= target - 1e-12
    return float(tpr[ok].max())


def specificity_at_sensitivity(y: np.ndarray, s: np.ndarray, target: float) -> float:
    """The highest specificity of any threshold whose sensitivity is >= ``target``."""
    _check_target(target, "sensitivity target")
    if np.unique(y).size < 2:
        return float("nan")
    fpr, tpr, _ = _roc(y, s)
    ok = tpr >= target - 1e-12
    return float((1.0 - fpr[ok]).max())


def choose_threshold(y: np.ndarray, s: np.ndarray, rule: str = "youden", target: float | None = None) -> float:
    """A threshold on validation predictions: ``youden`` (max sensitivity + specificity - 1), ``sensitivity``
    (the highest threshold with sensitivity >= ``target``) or ``specificity`` (the lowest with specificity >=
    ``target``)."""
    y = np.asarray(y, int)
    if np.unique(y).size < 2:
        raise ThresholdError(
            f"choosing the operating threshold needs both classes in the validation predictions; got {y.size} "
            f"patients of one class"
        )
    fpr, tpr, thresholds = _roc(y, s)
    finite = np.isfinite(thresholds)
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    if rule == "youden":
        return float(thresholds[int(np.argmax(tpr - fpr))])
    if rule == "sensitivity":
        _check_target(target if target is not None else -1, "threshold.sensitivity")
        ok = np.flatnonzero(tpr >= float(target) - 1e-12)  # thresholds decrease: the first is the highest
        return float(thresholds[ok[0]])
    if rule == "specificity":
        _check_target(target if target is not None else -1, "threshold.specificity")
        ok = np.flatnonzero((1.0 - fpr) >= float(target) - 1e-12)
        return float(thresholds[ok[-1]])
    raise ThresholdError(f"threshold rule: expected youden, sensitivity or specificity, got {rule!r}")


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def rates(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV and accuracy of ``s >= threshold``; NaN where a denominator is 0."""
    y = np.asarray(y, int)
    pred = np.asarray(s, float) >= threshold
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    tn = float(np.sum(~pred & (y == 0)))
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, y.size),
    }


def rate(name: str, threshold: float) -> Callable[[np.ndarray, np.ndarray], float]:
    """``fn(y, s)`` giving one of :func:`rates` at a fixed threshold (what the bootstrap resamples)."""
    return lambda y, s: rates(y, s, threshold)[name]
