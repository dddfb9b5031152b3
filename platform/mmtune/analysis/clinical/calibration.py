"""Calibration of predicted probabilities of a binary outcome (Van Calster et al., 2019, "Calibration: the
Achilles heel of predictive analytics").

* Brier score: mean squared error of the probabilities (0 best).
* ECE: expected calibration error over ``bins`` equal-width probability bins (weighted mean |observed - predicted|).
* Calibration intercept ("calibration-in-the-large"): ``a`` in ``logit P(y=1) = a + logit(p)`` (slope fixed at 1);
  0 when the mean prediction is right, < 0 when the model over-predicts.
* Calibration slope: ``b`` in ``logit P(y=1) = a + b logit(p)``; 1 is ideal, < 1 means too extreme predictions
  (overfitting), > 1 too modest ones.

Both logistic fits are a few Newton steps in numpy (cheap enough to bootstrap); the tests check them against
statsmodels' GLM.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` with probabilities clipped to ``[1e-6, 1 - 1e-6]`` (a 0 or 1 has no finite logit)."""
    q = np.clip(np.asarray(p, dtype=float), EPS, 1.0 - EPS)
    return np.log(q / (1.0 - q))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error with ``bins`` equal-width bins on [0, 1] (the last bin includes 1)."""
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    observed = np.bincount(which, weights=y, minlength=bins)
    predicted = np.bincount(which, weights=p, minlength=bins)
    used = counts > 0
    return float(np.sum(np.abs(observed[used] - predicted[used])) / y.size)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def calibration_intercept(y: np.ndarray, p: np.ndarray, steps: int = 50) -> float:
    """``a`` of ``logit P(y=1) = a + logit(p)`` by Newton's method; NaN when ``y`` has one class only."""
    y = np.asarray(y, float)
    if y.min() == y.max():
        return float("nan")
    offset = logit(p)
    a = 0.0
    for _ in range(steps):
        mu = _sigmoid(a + offset)
        grad = float(np.sum(y - mu))
        hess = float(np.sum(mu * (1.0 - mu)))
        if hess <= 0:
            return float("nan")
        step = grad / hess
        a += step
        if abs(step) < 1e-10:
            break
    return float(a)


def calibration_slope(y: np.ndarray, p: np.ndarray, steps: int = 50) -> float:
    """``b`` of ``logit P(y=1) = a + b logit(p)`` (logistic regression, Newton-Raphson); NaN when undefined
    (one class, or perfectly separated by ``p``)."""
    return calibration_fit(y, p, steps)[1]


def calibration_fit(y: np.ndarray, p: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """(intercept, slope) of the logistic recalibration ``logit P(y=1) = a + b logit(p)``."""
    y = np.asarray(y, float)
    if y.size < 3 or y.min() == y.max():
        return float("nan"), float("nan")
    x = np.column_stack([np.ones(y.size), logit(p)])
    beta = np.zeros(2)
    for _ in range(steps):
        mu = _sigmoid(x @ beta)
        w = mu * (1.0 - mu)
        hess = x.T @ (x * w[:, None])
        try:
            step = np.linalg.solve(hess, x.T @ (y - mu))
        except np.linalg.LinAlgError:
            return float("nan"), float("nan")
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.abs(beta).max() > 1e6:
            return float("nan"), float("nan")
        if np.abs(step).max() < 1e-10:
            return float(beta[0]), float(beta[1])
    return float("nan"), float("nan")  # no convergence: (quasi-)separation


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean predicted, observed fraction, patients) per non-empty bin, the points of a reliability diagram
    (``sklearn.calibration.calibration_curve`` with the same equal-width bins, plus the bin sizes)."""
    from sklearn.calibration import calibration_curve

    y = np.asarray(y, float)
    p = np.asarray(p, float)
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    which = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    return predicted, observed, counts[counts > 0]
