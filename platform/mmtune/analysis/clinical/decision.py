"""Decision-curve analysis (Vickers & Elkin, 2006): the net benefit of treating patients whose predicted risk is
at least the threshold probability ``pt``, against treating everyone or no one.

``net benefit(pt) = TP / n - FP / n * pt / (1 - pt)``; treat-all: ``prevalence - (1 - prevalence) * pt / (1 - pt)``;
treat-none: 0. A model is useful at ``pt`` only where its curve lies above both lines.
"""

from __future__ import annotations

import numpy as np


def net_benefit(y: np.ndarray, p: np.ndarray, pt: float) -> float:
    y = np.asarray(y, int)
    treat = np.asarray(p, float) >= pt
    n = y.size
    tp = float(np.sum(treat & (y == 1)))
    fp = float(np.sum(treat & (y == 0)))
    return tp / n - fp / n * pt / (1.0 - pt)


def treat_all(y: np.ndarray, pt: float) -> float:
    prevalence = float(np.mean(np.asarray(y, int) == 1))
    return prevalence - (1.0 - prevalence) * pt / (1.0 - pt)


def decision_curve(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Net benefit of the model, treat-all and treat-none over ``thresholds`` (default 0.01..0.99)."""
    pts = np.linspace(0.01, 0.99, 99) if thresholds is None else np.asarray(thresholds, float)
    return {
        "threshold": pts,
        "model": np.array([net_benefit(y, p, t) for t in pts]),
        "treat_all": np.array([treat_all(y, t) for t in pts]),
        "treat_none": np.zeros(pts.size),
    }
