"""Δm (Maninis / Vandenhende) and negative transfer, checked against a hand computation on fixed numbers; the
single-task pairing by factor levels; the ablation report's section on a crafted study."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mmtune.analysis.ablation_stats import Sizes
from mmtune.analysis.delta_m import delta_m_tables, single_task_baselines
from scipy import stats

SPLITS = ["f0/s0", "f1/s0", "f0/s1", "f1/s1"]
VALUES = {
    ("st_a", "a/auroc"): [0.80, 0.70, 0.75, 0.90],
    ("mtl", "a/auroc"): [0.84, 0.70, 0.60, 0.99],  # +5 %, 0 %, -20 %, +10 %
    ("st_b", "b/mae"): [2.0, 4.0, 1.0, 5.0],
    ("mtl", "b/mae"): [1.0, 5.0, 1.0, 4.0],  # lower is better: +50 %, -25 %, 0 %, +20 %
    ("mtl2", "a/auroc"): [0.75, 0.64, 0.70, 0.86],  # always ~0.05 below single-task a
    ("mtl2", "b/mae"): [2.0, 4.0, 1.0, 5.0],
}
PER_TASK = {"a": "a/auroc", "b": "b/mae"}


def values() -> pd.DataFrame:
    rows = [
        {"split_id": s, "config": c, "metric": m, "value": v}
        for (c, m), vs in VALUES.items()
        for s, v in zip(SPLITS, vs)
    ]
    return pd.DataFrame(rows)


def t_interval(x: np.ndarray, factor: float) -> tuple[float, float]:
    """Hand formula: mean -/+ t_{0.975, J-1} * sqrt(var * factor); factor 1/J (plain) or 1/J + n_test/n_train."""
    half = stats.t.ppf(0.975, len(x) - 1) * math.sqrt(np.var(x, ddof=1) * factor)
    return x.mean() - half, x.mean() + half


@pytest.mark.parametrize("sizes", [None, Sizes(n_train=80, n_eval=20)])
def test_delta_m_equals_the_hand_computation(sizes: Sizes | None) -> None:
    baselines = {"mtl": {"a": "st_a", "b": "st_b"}, "mtl2": {"a": "st_a", "b": "st_b"}}
    dm, tasks = delta_m_tables(values(), baselines, PER_TASK, sizes)
    per_split = np.array([(5 + 50) / 2, (0 - 25) / 2, (-20 + 0) / 2, (10 + 20) / 2])  # by hand, in %
    row = dm.set_index("config").loc["mtl"]
    assert row["delta_m"] == pytest.approx(5.0)
    assert per_split.mean() == pytest.approx(5.0)
    factor = 1 / 4 if sizes is None else 1 / 4 + 20 / 80
    lo, hi = t_interval(per_split, factor)
    assert (row["lo"], row["hi"]) == pytest.approx((lo, hi))
    assert row["boot_lo"] >= per_split.min() and row["boot_hi"] <= per_split.max()
    assert row["boot_lo"] < 5.0 < row["boot_hi"]
    assert row["n_splits"] == 4 and row["baselines"] == "a: st_a, b: st_b"

    a = tasks.set_index(["config", "task"]).loc[("mtl", "a")]
    assert a["rel_change"] == pytest.approx((5 + 0 - 20 + 10) / 4)
    assert a["diff"] == pytest.approx(np.mean([0.04, 0.0, -0.15, 0.09]))
    assert not a["negative_transfer"]  # worse in one split, better in two: not significant
    b = tasks.set_index(["config", "task"]).loc[("mtl", "b")]
    assert b["rel_change"] == pytest.approx((50 - 25 + 0 + 20) / 4)
    assert b["diff"] == pytest.approx(np.mean([1.0, -1.0, 0.0, 1.0]))  # signed: positive = better (lower MAE)

    worse = tasks.set_index(["config", "task"]).loc[("mtl2", "a")]
    diffs = np.array([0.75 - 0.80, 0.64 - 0.70, 0.70 - 0.75, 0.86 - 0.90])
    assert worse["diff"] == pytest.approx(diffs.mean())
    t = diffs.mean() / math.sqrt(np.var(diffs, ddof=1) * factor)
    assert worse["p"] == pytest.approx(2 * stats.t.sf(abs(t), 3))
    assert worse["negative_transfer"] and worse["p"] < 0.05
    assert not tasks.set_index(["config", "task"]).loc[("mtl2", "b")]["negative_transfer"]  # identical: diff 0


def test_a_cell_without_every_single_task_baseline_has_no_delta_m() -> None:
    dm, tasks = delta_m_tables(values(), {"mtl": {"a": "st_a"}}, PER_TASK, None)
    assert dm.empty and list(tasks["task"]) == ["a"]


def test_single_task_cells_are_paired_by_the_closest_factor_levels() -> None:
    tasks = {"mt/x": ["a", "b"], "mt/y": ["a", "b"], "a/x": ["a"], "a/y": ["a"], "b/x": ["b"]}
    levels = {c: {"tasks": c.split("/")[0], "fusion": c.split("/")[1]} for c in tasks}
    order = list(tasks)
    assert single_task_baselines(tasks, levels, order) == {
        "mt/x": {"a": "a/x", "b": "b/x"},
        "mt/y": {"a": "a/y", "b": "b/x"},  # the only single-task b cell
    }


def test_ablation_report_has_the_transfer_section(tmp_path: Path) -> None:
    from helpers.ablation import make_results
    from mmtune.analysis.report import analyse, write_report

    root = make_results(tmp_path / "results")
    analysis = analyse(root)
    # crafted study: tasks covid vs covid+morbidity; only covid has a single-task cell -> per-task rows, no Δm
    assert analysis.delta_m.empty
    transfer = analysis.transfer
    assert set(transfer["task"]) == {"covid"} and len(transfer) == 2
    for _, row in transfer.iterrows():
        assert row["baseline"].split(" / ")[0] == row["config"].split(" / ")[0]  # same modality level
    write_report(root)
    md = (root / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Multi-task gain (Δm) and negative transfer" in md
    assert "Δm needs a single-task cell for every task" in md
