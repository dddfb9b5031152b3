"""One plain-words sentence per finding, from the rows of ``mmtune.analysis.ablation_stats``.

"Switching modality from image to image+clinical improves morbidity AUROC by 0.07 [0.04, 0.10] (p = 0.001, Holm)
across 5 folds x 3 seeds." A comparison is called significant when its Holm-adjusted p-value (over every
comparison of the study) is below ``ALPHA``; otherwise the sentence says there is no evidence of a change and
still gives the interval, so "no evidence" is never read as "no effect".
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from mmtune.analysis.task_metrics import label_of

ALPHA = 0.05


def p_text(p: float) -> str:
    """``p = 0.41`` / ``p = 0.004`` / ``p < 0.001`` / ``p = n/a``."""
    if p is None or not math.isfinite(p):
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return f"p = {p:.2f}"


def num(value: float, signed: bool = False, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if round(value, digits) == 0:
        value = 0.0  # never print -0.00
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def interval(lo: float, hi: float, signed: bool = False) -> str:
    return f"[{num(lo, signed)}, {num(hi, signed)}]"


def subject(row: Any, design: str) -> str:
    """What the comparison changes, in words."""
    if design == "leave_one_out":
        return f"Removing {row['factor']} from the full configuration"
    return f"Switching {row['factor']} from {row['baseline']} to {row['level']}"


def _change(row: Any, design: str) -> tuple[float, float, float]:
    """The change the subject causes: a - b, or b - a for leave-one-out (removing = without minus with)."""
    d, lo, hi = float(row["diff"]), float(row["lo"]), float(row["hi"])
    if design == "leave_one_out":
        return -d, -hi, -lo
    return d, lo, hi


def effect_sentence(row: Any, design: str, replication: str) -> str:
    """The sentence of one main effect or interaction row."""
    holm = float(row["p_holm"])
    where = replication if row.get("complete", True) else f"{int(row['n_splits'])} splits"
    metric = label_of(str(row["metric"]))
    if row["kind"] == "interaction":
        what = f"the effect of switching {row['factor']} from {row['baseline']} to {row['level']} on {metric}"
        if math.isfinite(holm) and holm < ALPHA:
            return (
                f"{what[0].upper()}{what[1:]} depends on {row['other']}: interaction {num(float(row['diff']), True)} "
                f"{interval(float(row['lo']), float(row['hi']), True)} ({p_text(holm)}, Holm) across {where}."
            )
        return f"No evidence that {what} depends on {row['other']} ({p_text(holm)}, Holm) across {where}."
    change, lo, hi = _change(row, design)
    text = subject(row, design)
    if math.isfinite(holm) and holm < ALPHA:
        better = change > 0 if row["higher_is_better"] else change < 0
        verb = "improves" if better else "worsens"
        size, a, b = (change, lo, hi) if change > 0 else (-change, -hi, -lo)
        return f"{text} {verb} {metric} by {num(size)} {interval(a, b)} ({p_text(holm)}, Holm) across {where}."
    lowered = text[0].lower() + text[1:]
    return (
        f"No evidence that {lowered} changes {metric}: {num(change, True)} {interval(lo, hi, True)} "
        f"({p_text(holm)}, Holm) across {where}."
    )


def effect_sentences(effects: pd.DataFrame, design: str, replication: str, total_splits: int) -> list[str]:
    """Main effects first (significant ones first), then interactions."""
    if effects.empty:
        return []
    frame = effects.copy()
    frame["complete"] = frame["n_splits"] >= total_splits
    frame["_kind"] = (frame["kind"] == "interaction").astype(int)
    frame["_sig"] = (~(frame["p_holm"] < ALPHA)).astype(int)
    frame = frame.sort_values(["_kind", "_sig", "p_holm"], kind="mergesort")
    return [effect_sentence(row, design, replication) for _, row in frame.iterrows()]


def rank_sentence(test: Any) -> str:
    """Friedman + Nemenyi in words."""
    f = test.friedman
    best = min(f.avg_ranks.items(), key=lambda item: (item[1], item[0]))
    cliques = test.nemenyi.cliques()
    head = (
        f"{label_of(test.metric)}: Friedman test over {test.friedman.k} configurations on {test.n_blocks} splits "
        f"(Iman-Davenport {p_text(f.iman_davenport_p)}); best average rank {best[0]} ({best[1]:.2f}); "
        f"Nemenyi critical difference {test.nemenyi.cd:.2f}"
    )
    if f.iman_davenport_p >= ALPHA:
        return head + ": no evidence that the configurations differ."
    if cliques:
        groups = "; ".join(", ".join(c) for c in cliques)
        return head + f"; not significantly different from each other: {groups}."
    return head + "; every pair differs."


def robustness_sentence(row: Any, replication: str) -> str:
    metric = label_of(str(row["metric"]))
    return (
        f"Without {row['dropped']} features at test time, {row['config']} goes from {num(float(row['full']))} to "
        f"{num(float(row['without']))} {metric} ({num(float(row['change']), True)} "
        f"{interval(float(row['lo']), float(row['hi']), True)}, {p_text(float(row['p']))}) across {replication}."
    )


def transfer_sentences(dm: Any, transfer: Any, replication: str) -> list[str]:
    """Δm of each multi-task cell, and every task with negative transfer, in words."""
    out = []
    for _, row in dm.iterrows():
        out.append(
            f"Multi-task cell {row['config']} changes its tasks by Δm = {num(float(row['delta_m']), True)} % on average "
            f"against their single-task cells {interval(float(row['lo']), float(row['hi']), True)} across "
            f"{replication}."
        )
    for _, row in transfer[transfer["negative_transfer"].astype(bool)].iterrows() if len(transfer) else []:
        out.append(
            f"Negative transfer: {row['config']} is worse than single-task {row['baseline']} on "
            f"{label_of(str(row['metric']))} ({num(float(row['mtl']))} vs {num(float(row['single']))}, "
            f"{num(float(row['rel_change']), True)} %, {p_text(float(row['p']))})."
        )
    return out
