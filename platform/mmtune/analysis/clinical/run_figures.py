"""The clinical figures of one finished run (for Aim): ROC + PR, reliability diagram and decision curve per
classification task and split, without bootstrap tables so every trial can afford them.

The operating point drawn on the ROC curve is the threshold fixed on the run's own validation predictions (Youden),
as in the report, applied unchanged to the split drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmtune.analysis.clinical import operating
from mmtune.analysis.clinical.plots import calibration_figure, decision_figure, roc_pr_figure
from mmtune.analysis.clinical.tables import components
from mmtune.analysis.task_metrics import TASKS_ATTR, detect_tasks
from mmtune.tasks import CLASSIFICATION_KINDS

KINDS = ("roc_pr", "calibration", "decision")
ECE_BINS = 10


@dataclass(frozen=True)
class RunFigure:
    """One PNG: its kind (``roc_pr`` | ``calibration`` | ``decision``), task, split and caption."""

    kind: str
    task: str
    split: str
    png: bytes
    caption: str


def _split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    rows = frame[frame["split"] == split] if "split" in frame.columns else frame.iloc[0:0]
    if "modality_dropped" in rows.columns:
        rows = rows[rows["modality_dropped"].fillna("").astype(str) == ""]
    return rows


def run_figures(predictions: pd.DataFrame, splits: tuple[str, ...] | None = None) -> list[RunFigure]:
    """Figures of every classification task on each of ``splits`` present in ``predictions`` (default: the test
    split, or validation when the run has no test split; three PNGs per task and split cost ~0.5 s)."""
    if splits is None:
        splits = ("test",) if len(_split(predictions, "test")) else ("val",)
    tasks = detect_tasks(list(predictions.columns), dict(predictions.dtypes), predictions.attrs.get(TASKS_ATTR))
    tasks = {k: t for k, t in tasks.items() if t.kind in CLASSIFICATION_KINDS}
    val = _split(predictions, "val")
    out: list[RunFigure] = []
    for name, task in tasks.items():
        thresholds = {}
        for comp in components(val, task) if len(val) else []:
            keep = comp.y >= 0
            if np.unique(comp.y[keep]).size == 2:
                thresholds[comp.part] = operating.choose_threshold(comp.y[keep], comp.p[keep], "youden")
        for split in splits:
            rows = _split(predictions, split)
            if rows.empty:
                continue
            curves, points = [], {}
            for comp in components(rows, task):
                keep = comp.y >= 0
                label = comp.part or name
                y, p = comp.y[keep], comp.p[keep]
                curves.append((label, y, p))
                if comp.part in thresholds and np.unique(y).size == 2:
                    r = operating.rates(y, p, thresholds[comp.part])
                    points[label] = (1.0 - r["specificity"], r["sensitivity"])
            if not any(np.unique(y).size == 2 for _, y, _ in curves):
                continue
            where = f"{split} split, {len(rows)} patients"
            dot = "; dots: the Youden threshold fixed on validation" if points else ""
            out.append(RunFigure("roc_pr", name, split, roc_pr_figure(name, curves, points), f"{name} ({where}{dot})"))
            out.append(
                RunFigure(
                    "calibration",
                    name,
                    split,
                    calibration_figure(name, curves, ECE_BINS),
                    f"{name} reliability ({where}; {ECE_BINS} equal-width bins)",
                )
            )
            out.append(
                RunFigure("decision", name, split, decision_figure(name, curves), f"{name} net benefit ({where})")
            )
    return out
