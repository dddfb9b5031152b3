"""Demšar-style critical-difference diagram: average ranks on an axis, a CD bar, and thick lines joining
configurations whose ranks differ by no more than the critical difference (not significantly different).

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend switch), written atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path

from mmtune.analysis.stats._validation import StatsInputError
from mmtune.analysis.stats.multi import nonsignificant_cliques
from mmtune.atomic import atomic_write_bytes


def _check(avg_ranks: Mapping[str, float], cd: float) -> list[tuple[str, float]]:
    if len(avg_ranks) < 2:
        raise StatsInputError(f"cd_diagram: needs at least 2 configurations, got {len(avg_ranks)}")
    if not (isinstance(cd, int | float) and math.isfinite(cd) and cd > 0):
        raise StatsInputError(f"cd_diagram: cd must be a positive number, got {cd!r}")
    k = len(avg_ranks)
    for name, rank in avg_ranks.items():
        if not (isinstance(rank, int | float) and 1.0 <= float(rank) <= float(k)):
            raise StatsInputError(f"cd_diagram: average rank of {name!r} must lie in [1, {k}], got {rank!r}")
    return sorted(((str(n), float(r)) for n, r in avg_ranks.items()), key=lambda item: (item[1], item[0]))


def cd_diagram(
    avg_ranks: Mapping[str, float],
    cd: float,
    path: str | Path,
    *,
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Draw the critical-difference diagram of ``avg_ranks`` (1 = best) with critical difference ``cd`` to PNG.

    Best configurations are on the left. Use with :func:`mmtune.analysis.stats.nemenyi_posthoc` (``.avg_ranks``,
    ``.cd``). Returns the written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ordered = _check(avg_ranks, cd)
    k = len(ordered)
    cliques = nonsignificant_cliques(dict(ordered), cd)
    n_left = math.ceil(k / 2)
    rows = max(n_left, k - n_left)

    line_h = 0.28  # inches per name row
    top = 0.9 + (0.35 if title else 0.0)
    clique_h = 0.12 * len(cliques)
    height = top + clique_h + line_h * (rows + 1) + 0.2
    labels = {name: f"{name} ({rank:.2f})" for name, rank in ordered}
    margin = 0.5 + 0.075 * max(len(label) for label in labels.values())  # room for the names at 9 pt
    axis_len = max(2.6, 0.45 * (k - 1))
    width = 2 * margin + axis_len
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0.0, width)
    ax.set_ylim(height, 0.0)  # y grows downwards, in inches
    ax.axis("off")

    left, right = margin, margin + axis_len  # the rank axis; names go in the margins
    lo_rank, hi_rank = 1.0, float(max(k, 2))

    def x_of(rank: float) -> float:
        return left + (rank - lo_rank) / (hi_rank - lo_rank) * (right - left)

    if title:
        ax.text(width / 2, 0.25, title, ha="center", va="center", fontsize=11, fontweight="bold")
    axis_y = top
    ax.plot([left, right], [axis_y, axis_y], color="black", lw=1.2)
    for tick in range(1, k + 1):
        ax.plot([x_of(tick), x_of(tick)], [axis_y, axis_y - 0.08], color="black", lw=1.0)
        ax.text(x_of(tick), axis_y - 0.12, str(tick), ha="center", va="bottom", fontsize=9)
    for tick in range(1, k):
        ax.plot([x_of(tick + 0.5), x_of(tick + 0.5)], [axis_y, axis_y - 0.04], color="black", lw=0.7)

    # CD bar above the axis, starting at rank 1.
    bar_y = axis_y - 0.5
    bar_end = min(1.0 + cd, hi_rank)
    ax.plot([x_of(1.0), x_of(bar_end)], [bar_y, bar_y], color="black", lw=1.5)
    for x in (x_of(1.0), x_of(bar_end)):
        ax.plot([x, x], [bar_y - 0.05, bar_y + 0.05], color="black", lw=1.5)
    ax.text((x_of(1.0) + x_of(bar_end)) / 2, bar_y - 0.08, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)

    # Cliques: thick bars just below the axis, stacked.
    for i, group in enumerate(cliques):
        ranks = [r for n, r in ordered if n in group]
        y = axis_y + 0.12 + 0.12 * i
        ax.plot(
            [x_of(min(ranks)) - 0.04, x_of(max(ranks)) + 0.04], [y, y], color="black", lw=3.0, solid_capstyle="round"
        )

    # Names: best half on the left, the rest on the right, joined to the axis by elbow lines.
    base = axis_y + clique_h + 0.3
    for i, (name, rank) in enumerate(ordered):
        on_left = i < n_left
        row = i if on_left else k - 1 - i
        y = base + row * line_h
        x = x_of(rank)
        end = left - 0.15 if on_left else right + 0.15
        ax.plot([x, x, end], [axis_y, y, y], color="0.25", lw=0.9)
        ax.text(
            end - 0.05 if on_left else end + 0.05,
            y,
            labels[name],
            ha="right" if on_left else "left",
            va="center",
            fontsize=9,
        )

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())
