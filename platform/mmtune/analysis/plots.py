"""The report's figures as deterministic PNG bytes: ROC curves, per-split spread, an effects forest plot.

Matplotlib's object API on an Agg canvas (no pyplot state, no global backend switch). PNGs carry no metadata
that changes between runs (``metadata={"Software": None}``), and the strip-plot jitter is seeded, so the same
inputs give byte-identical files.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

DPI = 110
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG without run-dependent metadata."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def roc_figure(panels: Sequence[tuple[str, Sequence[tuple[str, np.ndarray, np.ndarray]]]]) -> bytes:
    """One subplot per panel (a binary task, or one class vs rest); one curve per configuration with its AUC."""
    from sklearn.metrics import roc_auc_score, roc_curve

    n = max(1, len(panels))
    fig = _figure(4.2 * n, 4.0)
    for i, (title, curves) in enumerate(panels):
        ax = fig.add_subplot(1, n, i + 1)
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        for j, (label, y, score) in enumerate(curves):
            if len(np.unique(y)) < 2:
                continue
            fpr, tpr, _ = roc_curve(y, score)
            auc = roc_auc_score(y, score)
            ax.plot(fpr, tpr, color=PALETTE[j % len(PALETTE)], lw=1.4, label=f"{label} (AUC {auc:.2f})")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("1 - specificity", fontsize=8)
        ax.set_ylabel("sensitivity", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    return png_bytes(fig)


def spread_figure(title: str, values: dict[str, np.ndarray], ylabel: str) -> bytes:
    """Box plot + jittered points of each configuration's per-split values (seeded jitter)."""
    names = list(values)
    fig = _figure(max(4.0, 1.1 * len(names) + 1.5), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    data = [np.asarray(values[n], dtype=float) for n in names]
    ax.boxplot(data, showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)
    for i, v in enumerate(data):
        jitter = rng.uniform(-0.12, 0.12, size=v.size)
        ax.scatter(np.full(v.size, i + 1) + jitter, v, s=12, color=PALETTE[i % len(PALETTE)], alpha=0.8, zorder=3)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels([_wrap(n) for n in names], fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def effects_figure(rows: Sequence[tuple[str, float, float, float, bool]], title: str) -> bytes:
    """Forest plot: one line per comparison (label, difference, lo, hi, significant)."""
    n = max(1, len(rows))
    label_inches = 0.3 + 0.062 * max((len(r[0]) for r in rows), default=10)  # 7 pt labels
    width, height = label_inches + 4.0, 0.42 * n + 1.1
    fig = _figure(width, height)
    fig.subplots_adjust(left=label_inches / width, right=0.97, bottom=0.9 / height, top=1 - 0.4 / height)
    ax = fig.add_subplot(1, 1, 1)
    ax.axvline(0.0, color="0.6", lw=0.8)
    for i, (_, d, lo, hi, significant) in enumerate(rows):
        y = n - 1 - i
        color = "#d62728" if significant else "#1f77b4"
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=color, lw=1.6)
        ax.plot([d], [y], "o", color=color, ms=4)
    ax.set_yticks(range(n))
    ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize=7)
    ax.set_xlabel("a - b with 95 % CI (red: Holm p < 0.05)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    return png_bytes(fig)


def _wrap(text: str, width: int = 14) -> str:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)
