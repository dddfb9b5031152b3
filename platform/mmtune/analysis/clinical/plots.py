"""Clinical figures as deterministic PNG bytes (same conventions as ``mmtune.analysis.plots``): ROC + PR curves,
reliability diagrams with the bin sizes, decision curves with treat-all / treat-none."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmtune.analysis.clinical import calibration as cal
from mmtune.analysis.clinical.decision import decision_curve
from mmtune.analysis.plots import PALETTE, _figure, png_bytes

Curve = tuple[str, np.ndarray, np.ndarray]  # (label, y in {0, 1}, probability)


def _axes(fig: object, n: int, i: int, title: str) -> object:
    ax = fig.add_subplot(1, n, i + 1)  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return ax


def _usable(curves: Sequence[Curve]) -> list[Curve]:
    return [(label, y, p) for label, y, p in curves if np.unique(y).size == 2]


def roc_pr_figure(
    title: str, curves: Sequence[Curve], operating: dict[str, tuple[float, float]] | None = None
) -> bytes:
    """ROC (with the operating point of each curve when given: (1 - specificity, sensitivity)) beside PR."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    fig = _figure(8.4, 4.0)
    roc, pr = _axes(fig, 2, 0, f"{title}: ROC"), _axes(fig, 2, 1, f"{title}: precision-recall")
    roc.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    for j, (label, y, p) in enumerate(_usable(curves)):
        color = PALETTE[j % len(PALETTE)]
        fpr, tpr, _ = roc_curve(y, p)
        roc.plot(fpr, tpr, color=color, lw=1.4, label=f"{label} (AUC {auc(fpr, tpr):.2f})")
        if operating and label in operating:
            x0, y0 = operating[label]
            roc.plot([x0], [y0], "o", color=color, ms=5)
        precision, recall, _ = precision_recall_curve(y, p)
        pr.plot(recall, precision, color=color, lw=1.4, label=f"{label} (AP {average_precision_score(y, p):.2f})")
        pr.axhline(float(np.mean(y)), color=color, lw=0.7, ls=":")
    roc.set_xlabel("1 - specificity", fontsize=8)
    roc.set_ylabel("sensitivity", fontsize=8)
    pr.set_xlabel("recall (sensitivity)", fontsize=8)
    pr.set_ylabel("precision (PPV)", fontsize=8)
    for ax in (roc, pr):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.legend(fontsize=6.5, loc="lower right" if ax is roc else "lower left")
    fig.tight_layout()
    return png_bytes(fig)


def calibration_figure(title: str, curves: Sequence[Curve], bins: int) -> bytes:
    """Reliability diagram (observed fraction vs mean predicted per equal-width bin, marker area ~ patients) and
    the distribution of predictions below it."""
    fig = _figure(4.6, 5.2)
    top = fig.add_axes([0.14, 0.36, 0.8, 0.56])
    bottom = fig.add_axes([0.14, 0.09, 0.8, 0.18])
    top.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="perfect calibration")
    for j, (label, y, p) in enumerate(_usable(curves)):
        color = PALETTE[j % len(PALETTE)]
        predicted, observed, sizes = cal.reliability(y, p, bins)
        top.plot(predicted, observed, "-", color=color, lw=1.2)
        top.scatter(predicted, observed, s=12 + 60 * sizes / max(sizes.max(), 1), color=color, label=label)
        bottom.hist(p, bins=np.linspace(0, 1, bins + 1), histtype="step", color=color)
    top.set_title(f"{title}: calibration ({bins} bins)", fontsize=9)
    top.set_ylabel("observed fraction", fontsize=8)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.01)
    top.tick_params(labelsize=7)
    top.legend(fontsize=6.5, loc="upper left")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("predicted probability", fontsize=8)
    bottom.set_ylabel("patients", fontsize=8)
    bottom.tick_params(labelsize=7)
    return png_bytes(fig)


def decision_figure(title: str, curves: Sequence[Curve]) -> bytes:
    """Net benefit against threshold probability, with treat-all and treat-none."""
    fig = _figure(4.6, 4.0)
    ax = _axes(fig, 1, 0, f"{title}: decision curve")
    usable = _usable(curves)
    low = 0.0
    for j, (label, y, p) in enumerate(usable):
        curve = decision_curve(y, p)
        ax.plot(curve["threshold"], curve["model"], color=PALETTE[j % len(PALETTE)], lw=1.4, label=label)
        low = min(low, float(np.min(curve["model"])))
    if usable:
        y0 = usable[0][1]
        curve = decision_curve(y0, usable[0][2])
        ax.plot(curve["threshold"], curve["treat_all"], color="0.4", lw=1.0, ls="--", label="treat all")
        prevalence = float(np.mean(y0))
        ax.set_ylim(max(low, -0.1) - 0.02, prevalence * 1.1 + 0.02)
    ax.axhline(0.0, color="0.2", lw=1.0, ls=":", label="treat none")
    ax.set_xlim(0, 1)
    ax.set_xlabel("threshold probability", fontsize=8)
    ax.set_ylabel("net benefit", fontsize=8)
    ax.legend(fontsize=6.5, loc="upper right")
    fig.tight_layout()
    return png_bytes(fig)
