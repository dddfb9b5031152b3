"""The search analysis' figures as deterministic PNG bytes (matplotlib object API on Agg, as ``plots``).

* level effects: one panel per dimension, each level's mean with its 95 % CI at the common budget;
* interaction: heatmap of the mean metric over the levels of the two most important categorical dimensions;
* parallel coordinates: one line per trial across the dimensions, coloured by the metric;
* learning curves: one panel per dimension (curves coloured by level), the scheduler's rungs as dashed lines and
  each trial's stopping point (x: stopped early, o: ran to ``max_t``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmtune.analysis.plots import PALETTE, _figure, png_bytes
from mmtune.analysis.search_data import CATEGORICAL, Dimension, SearchInputs, is_missing
from mmtune.analysis.search_factors import trial_levels
from mmtune.analysis.task_metrics import label_of


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 2)
    return max(1, math.ceil(n / cols)), max(cols, 1)


def _metric_label(inputs: SearchInputs) -> str:
    return label_of(inputs.metric) if "/" in inputs.metric else inputs.metric


def levels_figure(inputs: SearchInputs, table: pd.DataFrame) -> bytes:
    """One panel per dimension: level means with 95 % CIs (filled: common budget; hollow: survivors at max_t)."""
    dims = inputs.dimensions
    rows, cols = _grid(len(dims))
    fig = _figure(4.6 * cols, 2.9 * rows)
    for i, dimension in enumerate(dims):
        ax = fig.add_subplot(rows, cols, i + 1)
        part = table[table["dimension"] == dimension.key]
        order = list(dict.fromkeys(part.sort_values("order", kind="mergesort")["level"]))
        for common, offset, face in ((True, -0.1, None), (False, 0.1, "none")):
            sub = part[part["common"] == common].set_index("level")
            for j, level in enumerate(order):
                if level not in sub.index or sub.at[level, "n_trials"] == 0:
                    continue
                row = sub.loc[level]
                color = PALETTE[0] if common else PALETTE[1]
                if np.isfinite(row["ci_lo"]):
                    ax.plot([j + offset] * 2, [row["ci_lo"], row["ci_hi"]], color=color, lw=1.4)
                ax.plot([j + offset], [row["mean"]], "o", color=color, ms=5, mfc=face or color)
                ax.annotate(
                    f"n={int(row['n_trials'])}",
                    (j + offset, row["mean"]),
                    fontsize=6,
                    xytext=(4, 2),
                    textcoords="offset points",
                )
        _clip_to_unit(ax, part)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, fontsize=7, rotation=15 if len(order) > 3 else 0)
        ax.set_xlim(-0.5, len(order) - 0.5)
        ax.set_title(dimension.key, fontsize=9)
        ax.set_ylabel(_metric_label(inputs), fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    budgets = sorted(set(table["budget"]))
    fig.suptitle(
        f"Level means with 95 % CI (filled: every trial at epoch {budgets[0]}; hollow: survivors at epoch "
        f"{budgets[-1]})"
        if len(budgets) > 1
        else "Level means with 95 % CI",
        fontsize=9,
    )
    fig.tight_layout()
    return png_bytes(fig)


def _clip_to_unit(ax: Any, part: pd.DataFrame) -> None:
    """Metrics in [0, 1] (AUROC, accuracy): keep a wide CI of a two-trial level from squashing the panel."""
    means = part["mean"].dropna()
    if means.empty or not means.between(0, 1).all():
        return
    bounds = pd.concat([part["ci_lo"], part["ci_hi"], means]).dropna().clip(0, 1)
    pad = 0.05 * max(float(bounds.max() - bounds.min()), 0.05)
    ax.set_ylim(max(0.0, float(bounds.min()) - pad), min(1.0, float(bounds.max()) + pad) + pad)


def interaction_figure(inputs: SearchInputs, scores: pd.Series, a: Dimension, b: Dimension) -> bytes:
    """Heatmap of the mean metric (and trial count) per level pair of two categorical dimensions."""
    la, order_a = trial_levels(inputs, a)
    lb, order_b = trial_levels(inputs, b)
    frame = pd.DataFrame({"a": la.reindex(scores.index), "b": lb.reindex(scores.index), "v": scores}).dropna()
    means = frame.pivot_table(index="a", columns="b", values="v", aggfunc="mean").reindex(
        index=order_a, columns=order_b
    )
    counts = frame.pivot_table(index="a", columns="b", values="v", aggfunc="count").reindex(
        index=order_a, columns=order_b
    )
    fig = _figure(1.2 * len(order_b) + 2.6, 0.6 * len(order_a) + 1.6)
    ax = fig.add_subplot(1, 1, 1)
    data = means.to_numpy(float)
    image = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", aspect="auto")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            n = counts.iat[i, j]
            text = "-" if not np.isfinite(data[i, j]) else f"{data[i, j]:.3f}\nn={int(n)}"
            ax.text(
                j, i, text, ha="center", va="center", fontsize=7, color="white" if np.isfinite(data[i, j]) else "0.4"
            )
    ax.set_xticks(range(len(order_b)))
    ax.set_xticklabels(order_b, fontsize=7)
    ax.set_yticks(range(len(order_a)))
    ax.set_yticklabels(order_a, fontsize=7)
    ax.set_xlabel(b.key, fontsize=8)
    ax.set_ylabel(a.key, fontsize=8)
    ax.set_title(f"Mean {_metric_label(inputs)} per level pair", fontsize=9)
    bar = fig.colorbar(image, ax=ax)
    bar.ax.tick_params(labelsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def _axis_positions(inputs: SearchInputs, dimension: Dimension, trials: pd.DataFrame) -> tuple[pd.Series, list]:
    """Trial -> position in [0, 1] on this dimension's axis (NaN where inactive) and the tick labels."""
    column = trials[dimension.key]
    if dimension.kind == CATEGORICAL:
        labels, order = trial_levels(inputs, dimension)
        labels = labels.reindex(trials.index)
        step = 1.0 / max(1, len(order) - 1)
        where = {level: i * step if len(order) > 1 else 0.5 for i, level in enumerate(order)}
        return labels.map(where), [(where[lv], lv) for lv in order]
    values = column.map(lambda v: math.nan if is_missing(v) else float(v)).astype(float)
    scale = np.log10(values) if dimension.log else values
    lo, hi = (
        (np.log10(dimension.bounds) if dimension.log else dimension.bounds)
        if dimension.bounds
        else (scale.min(), scale.max())
    )
    span = (hi - lo) or 1.0
    ticks = [(0.0, f"{10**lo if dimension.log else lo:.2g}"), (1.0, f"{10**hi if dimension.log else hi:.2g}")]
    return (scale - lo) / span, ticks


def parallel_figure(inputs: SearchInputs, scores: pd.Series) -> bytes:
    """Parallel coordinates: one polyline per trial over the dimensions, coloured by the metric."""
    from matplotlib import cm, colormaps, colors

    trials = inputs.trials.set_index("trial").reindex(scores.index)
    dims = inputs.dimensions
    fig = _figure(1.9 * max(2, len(dims)) + 1.6, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    positions = [_axis_positions(inputs, d, trials) for d in dims]
    finite = scores[np.isfinite(scores)]
    norm = colors.Normalize(
        vmin=float(finite.min()) if len(finite) else 0, vmax=float(finite.max()) if len(finite) else 1
    )
    cmap = colormaps["viridis"]
    order = scores.sort_values(ascending=inputs.better_is_higher, kind="mergesort").index  # best drawn last
    for trial in order:
        ys = np.array([p.get(trial, math.nan) for p, _ in positions], dtype=float)
        ax.plot(range(len(dims)), ys, color=cmap(norm(scores[trial])), lw=1.2, alpha=0.85, marker="o", ms=2.5)
    for i, (_, ticks) in enumerate(positions):
        ax.axvline(i, color="0.5", lw=0.8)
        for y, text in ticks:
            ax.text(i + 0.03, y, str(text), fontsize=6.5, va="center")
    ax.set_xticks(range(len(dims)))
    ax.set_xticklabels([d.key for d in dims], fontsize=7)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(dims) - 0.5)
    ax.set_ylim(-0.08, 1.08)
    mappable = cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, ax=ax)
    bar.set_label(_metric_label(inputs), fontsize=8)
    bar.ax.tick_params(labelsize=7)
    ax.set_title("Configurations (one line per trial; gaps: inactive conditional key)", fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)


def curves_figure(inputs: SearchInputs, milestones: Sequence[int]) -> bytes:
    """Learning curves, one panel per dimension, coloured by level; rungs dashed; stopping points marked."""
    dims = inputs.dimensions
    rows, cols = _grid(len(dims))
    fig = _figure(4.6 * cols, 3.0 * rows)
    trials = inputs.trials.set_index("trial")
    curves = {t: g.sort_values("epoch") for t, g in inputs.progress.groupby("trial")}
    for i, dimension in enumerate(dims):
        ax = fig.add_subplot(rows, cols, i + 1)
        labels, order = trial_levels(inputs, dimension)
        color = {level: PALETTE[j % len(PALETTE)] for j, level in enumerate(order)}
        for m in milestones:
            ax.axvline(m, color="0.6", lw=0.8, ls="--")
        for trial in sorted(curves):
            curve = curves[trial]
            level = labels.get(trial)
            c = color.get(level, "0.7") if level is not None else "0.7"
            ax.plot(curve["epoch"], curve["value"], color=c, lw=1.0, alpha=0.8)
            stopped = bool(trials.at[trial, "stopped_early"]) if "stopped_early" in trials else False
            ax.plot(curve["epoch"].iloc[-1], curve["value"].iloc[-1], "x" if stopped else "o", color=c, ms=4)
        for level in order:
            ax.plot([], [], color=color[level], label=level)
        ax.legend(fontsize=6, loc="lower right", title=dimension.key, title_fontsize=6.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(_metric_label(inputs), fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Learning curves (dashed: scheduler rungs; x: stopped early; o: ran to max_t)", fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)
