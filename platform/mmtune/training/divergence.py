"""Non-finite is failure: a trial whose losses or scores become NaN or infinite has diverged.

Metrics computed from NaN scores can look harmless (an AUROC of 0.5 from all-NaN scores), so ASHA would keep a
diverged trial and the study could pick it as best. The trial reporter checks every epoch's losses and
validation scores with ``non_finite``; a diverged epoch is reported with ``DIVERGED_KEY`` set and the worst value
for the mode (``worst``) in place of the metrics it could win with, and the trial stops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mmtune.trial_config import DIVERGED_KEY, REASON_KEY

__all__ = ["DIVERGED_KEY", "REASON_KEY", "diverged_report", "non_finite", "worst"]

SCORE_PREFIXES = ("score_", "mse_")  # prediction columns that are never NaN unless the model's output is


def worst(mode: str) -> float:
    """The value no other result loses to: -inf when higher is better, +inf when lower is."""
    return -math.inf if mode == "max" else math.inf


def non_finite(metrics: Mapping[str, Any], predictions: Any = None) -> list[str]:
    """Names of the losses (``.../loss`` keys) and prediction score columns holding NaN or inf."""
    bad = [
        key
        for key, value in metrics.items()
        if isinstance(key, str)
        and key.endswith("loss")
        and isinstance(value, (int, float))
        and not math.isfinite(float(value))
    ]
    if predictions is not None and len(predictions):
        import numpy as np

        for column in predictions.columns:
            if str(column).startswith(SCORE_PREFIXES):
                values = np.asarray(predictions[column], dtype=np.float64)
                if not np.isfinite(values).all():
                    bad.append(f"val {column}")
    return bad


def diverged_report(metrics: Mapping[str, Any], bad: list[str], targets: Mapping[str, str]) -> dict[str, Any]:
    """The report of a diverged epoch: every ``targets`` key (metric -> mode) at its worst, the flag, the reason."""
    out = dict(metrics)
    for key, mode in targets.items():
        out[key] = worst(mode)
    out[DIVERGED_KEY] = True
    out[REASON_KEY] = ("non-finite " + ", ".join(bad[:4]) + (f" (+{len(bad) - 4} more)" if len(bad) > 4 else ""))[:200]
    return out
