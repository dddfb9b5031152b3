"""Study-level comparisons of an ablation (or a tuning study) from its per-split metrics and per-patient predictions.

The unit of replication of an ablation is the split (fold x seed, or held-out group x seed); every cell is
trained on the same splits, so each comparison is a paired difference per split ("a minus b", positive = a
higher). Built on ``mmtune.analysis.stats`` (see docs/statistics.md):

* **leaderboard**: mean per configuration with a 95 % interval over splits (Nadeau-Bengio corrected, since folds
  share training patients), or a per-patient interval (DeLong for a binary AUROC, stratified bootstrap otherwise)
  when a configuration has one split (tuning studies); rank by mean and average rank over common splits;
* **effects**: each factor level against its baseline level, averaged over the other factors' levels where
  both cells report the metric (factorial main effects; one-at-a-time / leave-one-out: the single cell pair),
  and factorial two-way interaction contrasts; corrected resampled t-test (primary) + Wilcoxon signed-rank +
  Cohen's d_z, Holm and Benjamini-Hochberg over every comparison of the study;
* **pooled DeLong**: per seed, the out-of-fold predictions of the two cells pooled over folds, paired by patient;
* **Friedman + Nemenyi** over >= 3 configurations on their common splits;
* **robustness**: each fusion model evaluated with clinical features removed at test time, per split.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mmtune.analysis import stats
from mmtune.analysis.results import DROPPED, StudyData, eval_rows, split_sizes
from mmtune.analysis.task_metrics import TaskColumns, higher_is_better, labelled, metric_function
from mmtune.tasks import TaskKind

LEVEL = 0.95
BOOTSTRAPS = 1000


@dataclass(frozen=True)
class Sizes:
    """Average training / evaluation patients per split; ``assumed`` when derived from the number of folds."""

    n_train: float
    n_eval: float
    assumed: bool = False


def correction_sizes(data: StudyData, splits: pd.DataFrame) -> Sizes | None:
    """n_train / n_eval for the corrected t-test: from ``cells.parquet``, else k-fold's 1/(k-1) ratio."""
    n_train, n_eval = split_sizes(data)
    if n_train and n_eval:
        return Sizes(n_train, n_eval)
    folds = splits["fold"].nunique() if len(splits) else 0
    n = float(splits["n"].mean()) if len(splits) else 0.0
    if folds >= 2 and n > 0:
        return Sizes(n * (folds - 1), n, assumed=True)
    return None


def pivot(splits: pd.DataFrame, metric: str, dropped: str = "") -> pd.DataFrame:
    """split_id x config matrix of one metric (full models unless ``dropped``)."""
    part = splits[(splits["metric"] == metric) & (splits["dropped"] == dropped)]
    if part.empty:
        return pd.DataFrame()
    table = part.pivot_table(index="split_id", columns="config", values="value", aggfunc="mean")
    return table.sort_index()


def _interval(values: np.ndarray, sizes: Sizes | None) -> tuple[float, float, float, float, float]:
    """(mean, lo, hi, p, naive p) of paired differences (or of values against 0) over splits."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        mean = float(values.mean()) if values.size else float("nan")
        return mean, float("nan"), float("nan"), float("nan"), float("nan")
    zeros = np.zeros_like(values)
    if sizes is not None:
        res = stats.corrected_resampled_ttest(values, zeros, sizes.n_train, sizes.n_eval, level=LEVEL)
        return res.mean_diff, res.lo, res.hi, res.p_value, res.naive_p
    eff = stats.paired_effect_size(values, zeros, level=LEVEL)
    res = stats.corrected_resampled_ttest(values, zeros, 1.0, 1e-12, level=LEVEL)
    return eff.mean_diff, eff.lo, eff.hi, res.naive_p, res.naive_p


# ---------------------------------------------------------------------------------------------------- leaderboard


def leaderboard(data: StudyData, splits: pd.DataFrame, sizes: Sizes | None) -> pd.DataFrame:
    """Per metric and configuration: mean, 95 % CI, spread, splits, rank and average rank, Aim hashes."""
    rows = []
    hashes = aim_hashes(data)
    for metric in data.metrics:
        table = pivot(splits, metric)
        if table.empty:
            continue
        better_high = higher_is_better(metric)
        complete = table.dropna(axis=0, how="any")
        avg_ranks: dict[str, float] = {}
        if table.shape[1] >= 2 and len(complete) >= 1:  # 1 = best within each split, ties averaged (Demsar)
            values = complete.to_numpy()
            ranks = rankdata(-values if better_high else values, axis=1)
            avg_ranks = dict(zip(complete.columns, ranks.mean(axis=0), strict=True))
        for config in table.columns:
            values = table[config].dropna().to_numpy()
            if values.size == 0:
                continue
            if values.size >= 2:
                mean, lo, hi, _, _ = _interval(values, sizes)
                lo, hi = _clip(metric, lo, hi)
                method = "splits (Nadeau-Bengio)" if sizes is not None else "splits (t)"
            else:
                mean, lo, hi, method = patient_interval(data, config, metric)
            rows.append(
                {
                    "metric": metric,
                    "config": config,
                    "label": data.config_labels.get(config, config),
                    "mean": mean,
                    "lo": lo,
                    "hi": hi,
                    "sd": float(np.std(values, ddof=1)) if values.size >= 2 else float("nan"),
                    "n_splits": int(values.size),
                    "avg_rank": float(avg_ranks.get(config, float("nan"))),
                    "ci": method,
                    "aim": hashes.get(config, []),
                }
            )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["rank"] = 0
    for metric, part in frame.groupby("metric", sort=False):
        ascending = not higher_is_better(str(metric))
        ranks = part["mean"].rank(ascending=ascending, method="min")
        frame.loc[part.index, "rank"] = ranks.astype(int)
    order = {m: i for i, m in enumerate(data.metrics)}
    frame["_m"] = frame["metric"].map(order)
    frame = frame.sort_values(["_m", "rank", "config"], kind="mergesort").drop(columns="_m").reset_index(drop=True)
    return frame


def _clip(metric: str, lo: float, hi: float) -> tuple[float, float]:
    """A t-interval can leave a bounded metric's range (AUROC above 1); clip it to the range."""
    name = metric.rsplit("/", 1)[-1]
    bounds = {
        "auroc": (0.0, 1.0),
        "ap": (0.0, 1.0),
        "accuracy": (0.0, 1.0),
        "dice": (0.0, 1.0),
        "spearman": (-1.0, 1.0),
    }
    if name not in bounds or not (math.isfinite(lo) and math.isfinite(hi)):
        return lo, hi
    low, high = bounds[name]
    return max(lo, low), min(hi, high)


def aim_hashes(data: StudyData) -> dict[str, list[str]]:
    """Aim run hashes of each configuration's usable trials (sorted by split)."""
    out: dict[str, list[str]] = {}
    usable = data.usable.sort_values(["config", "split_id"], kind="mergesort")
    for config, part in usable.groupby("config", sort=False):
        out[str(config)] = [str(h) for h in part.get("aim_hash", pd.Series(dtype=str)) if isinstance(h, str) and h]
    return out


def patient_interval(data: StudyData, config: str, metric: str) -> tuple[float, float, float, str]:
    """A configuration with one split: CI over patients (DeLong for binary AUROC, stratified bootstrap otherwise)."""
    trials = data.usable[data.usable["config"] == config]
    if trials.empty:
        return float("nan"), float("nan"), float("nan"), "-"
    frame = eval_rows(data.predictions[str(trials.iloc[0]["trial"])], data.eval_split)
    task_name, _, name = metric.rpartition("/")
    task = data.tasks.get(task_name)
    if task is None or frame.empty:
        return float("nan"), float("nan"), float("nan"), "-"
    y, s = labelled(frame, task)
    fn = metric_function(task, name)
    if fn is None or y.size < 4:
        return float("nan"), float("nan"), float("nan"), "-"
    try:
        if task.kind == TaskKind.BINARY and name == "auroc":
            res = stats.auc_ci(y, s, level=LEVEL, method="delong")
            return res.auc, res.lo, res.hi, "patients (DeLong)"
        strata = y if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS) else None
        boot = stats.bootstrap_ci(fn, y, s, stratify=strata, n_boot=BOOTSTRAPS, level=LEVEL, seed=0)
        return boot.estimate, boot.lo, boot.hi, "patients (bootstrap)"
    except (ValueError, stats.StatsInputError):
        return float(fn(y, s)), float("nan"), float("nan"), "-"


# ---------------------------------------------------------------------------------------------------- effects


def cell_levels(data: StudyData) -> dict[str, dict[str, str]]:
    """config -> {factor: level} from the trials' ``factor.<f>`` columns."""
    out: dict[str, dict[str, str]] = {}
    columns = [c for c in data.trials.columns if c.startswith("factor.")]
    for _, row in data.trials.drop_duplicates("config").iterrows():
        out[str(row["config"])] = {c[len("factor.") :]: str(row[c]) for c in columns}
    return out


def _matching(levels: dict[str, dict[str, str]], factor: str, a: str, b: str) -> list[tuple[str, str]]:
    """Cell pairs (a-level cell, b-level cell) that differ only in ``factor``."""
    pairs = []
    for cell_a, lv_a in levels.items():
        if lv_a.get(factor) != a:
            continue
        for cell_b, lv_b in levels.items():
            if lv_b.get(factor) == b and all(lv_b[f] == lv_a[f] for f in lv_a if f != factor):
                pairs.append((cell_a, cell_b))
    return sorted(pairs)


matching_pairs = _matching  # public name (analysis.simple_effects uses the private one)


def _paired_diffs(table: pd.DataFrame, pairs: list[tuple[str, str]], signs: list[float] | None = None) -> pd.Series:
    """Per split: mean over the pairs (both present) of sign * (a - b)."""
    if table.empty:
        return pd.Series(dtype=float)
    parts = []
    for i, (a, b) in enumerate(pairs):
        if a in table.columns and b in table.columns:
            parts.append((signs[i] if signs else 1.0) * (table[a] - table[b]))
    if not parts:
        return pd.Series(dtype=float)
    return pd.concat(parts, axis=1).mean(axis=1, skipna=True).dropna()


def effects(data: StudyData, splits: pd.DataFrame, sizes: Sizes | None) -> pd.DataFrame:
    """Main effects (each non-baseline level vs baseline) and factorial interactions, with corrected p-values."""
    levels = cell_levels(data)
    rows: list[dict[str, Any]] = []
    for metric in data.metrics:
        table = pivot(splits, metric)
        for factor, names in data.factors.items():
            base = data.baselines.get(factor, names[0])
            for level in names:
                if level == base:
                    continue
                pairs = _matching(levels, factor, level, base)
                diffs = _paired_diffs(table, pairs)
                used = [p for p in pairs if p[0] in table.columns and p[1] in table.columns]
                rows.append(_row("main", metric, factor, level, base, "", diffs, sizes, used))
        if data.design == "factorial":
            rows += _interactions(data, levels, table, metric, sizes)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame[frame["n_splits"] > 0].reset_index(drop=True)
    frame["p_holm"] = stats.holm(frame["p"].to_numpy(dtype=float)) if len(frame) else []
    frame["p_bh"] = stats.benjamini_hochberg(frame["p"].to_numpy(dtype=float)) if len(frame) else []
    return frame


def _interactions(
    data: StudyData, levels: dict[str, dict[str, str]], table: pd.DataFrame, metric: str, sizes: Sizes | None
) -> list[dict[str, Any]]:
    rows = []
    for f, g in itertools.combinations(list(data.factors), 2):
        bf, bg = data.baselines.get(f, data.factors[f][0]), data.baselines.get(g, data.factors[g][0])
        for lf in data.factors[f]:
            for lg in data.factors[g]:
                if lf == bf or lg == bg:
                    continue
                quads = _quadruples(levels, f, g, (lf, bf), (lg, bg))
                if not quads:
                    continue
                parts = []
                for fg, bfg, fbg, bfbg in quads:
                    if all(c in table.columns for c in (fg, bfg, fbg, bfbg)):
                        parts.append((table[fg] - table[bfg]) - (table[fbg] - table[bfbg]))
                diffs = pd.concat(parts, axis=1).mean(axis=1).dropna() if parts else pd.Series(dtype=float)
                rows.append(_row("interaction", metric, f, lf, bf, f"{g}: {lg} vs {bg}", diffs, sizes, []))
    return rows


def _quadruples(
    levels: dict[str, dict[str, str]], f: str, g: str, fl: tuple[str, str], gl: tuple[str, str]
) -> list[tuple[str, str, str, str]]:
    """Cells (f=l,g=l), (f=b,g=l), (f=l,g=b), (f=b,g=b) with equal other factors, per stratum."""
    index = {tuple(sorted(lv.items())): cell for cell, lv in levels.items()}
    out = []
    for cell, lv in levels.items():
        if lv.get(f) != fl[0] or lv.get(g) != gl[0]:
            continue

        def find(vf: str, vg: str, lv: dict[str, str] = lv) -> str | None:
            return index.get(tuple(sorted({**lv, f: vf, g: vg}.items())))

        quad = (cell, find(fl[1], gl[0]), find(fl[0], gl[1]), find(fl[1], gl[1]))
        if all(quad):
            out.append(quad)  # type: ignore[arg-type]
    return sorted(out)


def _row(
    kind: str,
    metric: str,
    factor: str,
    level: str,
    base: str,
    other: str,
    diffs: pd.Series,
    sizes: Sizes | None,
    pairs: list[tuple[str, str]],
) -> dict[str, Any]:
    values = diffs.to_numpy(dtype=float)
    mean, lo, hi, p, naive = _interval(values, sizes)
    wil_p, dz = float("nan"), float("nan")
    if values.size >= 2:
        wil_p = stats.wilcoxon_signed_rank(values, np.zeros_like(values)).p_value
        dz = stats.paired_effect_size(values, np.zeros_like(values)).cohens_dz
    return {
        "kind": kind,
        "metric": metric,
        "factor": factor,
        "level": level,
        "baseline": base,
        "other": other,
        "diff": mean,
        "lo": lo,
        "hi": hi,
        "p": p,
        "p_naive": naive,
        "p_wilcoxon": wil_p,
        "d_z": dz,
        "n_splits": int(values.size),
        "pairs": [f"{a} vs {b}" for a, b in pairs],
        "higher_is_better": higher_is_better(metric),
    }


# ---------------------------------------------------------------------------------------------------- DeLong


def pooled_delong(data: StudyData, effect_rows: pd.DataFrame) -> pd.DataFrame:
    """Per main-effect cell pair, binary task and seed: DeLong on the pooled out-of-fold predictions."""
    if effect_rows.empty:
        return pd.DataFrame()
    levels = cell_levels(data)
    rows = []
    seen: set[tuple[str, str, str]] = set()
    for _, eff in effect_rows[effect_rows["kind"] == "main"].iterrows():
        task = data.tasks.get(str(eff["metric"]).rpartition("/")[0])
        if task is None or task.kind != TaskKind.BINARY or not str(eff["metric"]).endswith("/auroc"):
            continue
        for a, b in _matching(levels, str(eff["factor"]), str(eff["level"]), str(eff["baseline"])):
            if (a, b, task.name) in seen:
                continue
            seen.add((a, b, task.name))
            for seed in data.seeds:
                row = delong_pair(data, a, b, task, seed)
                if row is not None:
                    rows.append({"factor": eff["factor"], "level": eff["level"], "baseline": eff["baseline"], **row})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["p_holm"] = stats.holm(frame["p"].to_numpy(float))  # a family of its own: patient-level tests
    return frame


def pooled_predictions(data: StudyData, config: str, seed: int | None, task: TaskColumns) -> pd.DataFrame | None:
    """Evaluation predictions of a configuration's trials of one seed, concatenated; ``None`` if a patient repeats
    (not out-of-fold)."""
    trials = data.usable[data.usable["config"] == config]
    if seed is not None:
        trials = trials[trials["seed"] == seed]
    frames = [eval_rows(data.predictions[str(t)], data.eval_split) for t in trials["trial"]]
    frames = [f for f in frames if not f.empty and all(c in f.columns for c in task.labels + task.scores)]
    if not frames:
        return None
    pooled = pd.concat(frames, ignore_index=True)
    if pooled["patient_id"].duplicated().any():
        return None
    return pooled


def delong_pair(data: StudyData, a: str, b: str, task: TaskColumns, seed: int | None) -> dict[str, Any] | None:
    pa, pb = pooled_predictions(data, a, seed, task), pooled_predictions(data, b, seed, task)
    if pa is None or pb is None:
        return None
    y_col, s_col = task.labels[0], task.scores[0]
    joined = pa[["patient_id", y_col, s_col]].merge(pb[["patient_id", s_col]], on="patient_id", suffixes=("_a", "_b"))
    joined = joined[joined[y_col] >= 0]
    y = joined[y_col].to_numpy(dtype=np.int64)
    if y.size < 4 or len(np.unique(y)) < 2 or min(int(y.sum()), int(y.size - y.sum())) < 2:
        return None
    res = stats.delong_test(y, joined[f"{s_col}_a"].to_numpy(float), joined[f"{s_col}_b"].to_numpy(float), level=LEVEL)
    return {
        "a": a,
        "b": b,
        "task": task.name,
        "seed": seed if seed is not None else -1,
        "n": int(y.size),
        "auc_a": res.auc_a,
        "auc_b": res.auc_b,
        "diff": res.diff,
        "lo": res.diff_lo,
        "hi": res.diff_hi,
        "p": res.p_value,
    }


def tuning_delong(data: StudyData, board: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """Tuning studies: the best configuration against the next ones on the shared validation patients (DeLong)."""
    rows = []
    for metric in data.metrics:
        task = data.tasks.get(metric.rpartition("/")[0])
        if task is None or task.kind != TaskKind.BINARY or not metric.endswith("/auroc"):
            continue
        ranked = board[board["metric"] == metric].sort_values("rank", kind="mergesort")["config"].tolist()
        for other in ranked[1:top]:
            row = delong_pair(data, ranked[0], other, task, None)
            if row is not None:
                rows.append({"factor": "-", "level": ranked[0], "baseline": other, **row})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["p_holm"] = stats.holm(frame["p"].to_numpy(float))
    return frame


# ---------------------------------------------------------------------------------------------------- Friedman


@dataclass(frozen=True)
class RankTest:
    metric: str
    friedman: Any
    nemenyi: Any
    configs: list[str]
    n_blocks: int


def rank_tests(data: StudyData, splits: pd.DataFrame) -> list[RankTest]:
    """Friedman + Nemenyi per metric over the configurations that share >= 2 complete splits (>= 3 configs)."""
    out = []
    for metric in data.metrics:
        table = pivot(splits, metric).dropna(axis=1, how="all")
        complete = table.dropna(axis=0, how="any")
        if complete.shape[1] < 3 or complete.shape[0] < 2:
            continue
        names = [str(c) for c in complete.columns]
        high = higher_is_better(metric)
        friedman = stats.friedman_test(complete.to_numpy(), names, higher_is_better=high)
        nemenyi = stats.nemenyi_posthoc(complete.to_numpy(), names, higher_is_better=high)
        out.append(RankTest(metric, friedman, nemenyi, names, int(complete.shape[0])))
    return out


# ---------------------------------------------------------------------------------------------------- robustness


def robustness(data: StudyData, splits: pd.DataFrame, sizes: Sizes | None) -> pd.DataFrame:
    """Configurations evaluated with a modality removed: metric with and without it per split, paired."""
    dropped_states = sorted({d for d in splits["dropped"].unique() if d}) if len(splits) else []
    rows = []
    for dropped in dropped_states:
        for metric in data.metrics:
            full, cut = pivot(splits, metric), pivot(splits, metric, dropped)
            for config in [c for c in data.configs if c in cut.columns and c in full.columns]:
                both = pd.concat([full[config], cut[config]], axis=1, keys=["full", "cut"]).dropna()
                if both.empty:
                    continue
                change = (both["cut"] - both["full"]).to_numpy()
                mean, lo, hi, p, _ = _interval(change, sizes)
                rows.append(
                    {
                        "config": config,
                        "dropped": dropped,
                        "metric": metric,
                        "full": float(both["full"].mean()),
                        "without": float(both["cut"].mean()),
                        "change": mean,
                        "lo": lo,
                        "hi": hi,
                        "p": p,
                        "n_splits": len(both),
                    }
                )
    return pd.DataFrame(rows)


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = [
    "DROPPED",
    "RankTest",
    "Sizes",
    "aim_hashes",
    "cell_levels",
    "correction_sizes",
    "effects",
    "leaderboard",
    "matching_pairs",
    "pivot",
    "pooled_delong",
    "rank_tests",
    "robustness",
    "tuning_delong",
]
