"""The statistics of ``mmtune confirm``: the confirmed configurations compared over CV splits, then scored once on
the held-out test split.

**Cross-validation** (the selection evidence): per split (fold x seed) metrics of every configuration from its
out-of-fold validation patients (``mmtune.analysis.results.split_metrics``), the leaderboard of the ablation engine
(Nadeau-Bengio corrected intervals), and the CV winner compared with every other configuration (the runner-up,
the rest, the baseline) by the corrected resampled t-test on the paired per-split differences, Wilcoxon beside
it, Holm over all these comparisons and metrics. ``mean_auroc`` (the search's usual metric) is the mean of the
classification tasks' AUROCs within each split.

**Held-out test** (scored once, never used for selection): each configuration's test score is that of its
*fold-model ensemble*, the mean of the predicted probabilities of its F x S cross-validation models on each test
patient. Chosen over re-training on all non-test patients because (1) the fold models exist already (every CV
trial scores the test split with its best-epoch weights), so it costs no training; (2) the models scored are
exactly the ones whose CV performance was measured; (3) a re-fit on all non-test patients has no validation
patients left to pick its best epoch, so it would need a new, unvalidated choice of epoch count. Averaging the
fold models is also a bagged ensemble, usually at least as good as a single re-fit. AUROC with a 95 % CI
(DeLong for binary tasks, class-stratified bootstrap of the macro one-vs-rest AUROC for multiclass ones), and the
winner against the runner-up and the baseline by DeLong (binary) or a paired bootstrap (multiclass), Holm over the
test comparisons.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtune.analysis import ablation_stats as ab
from mmtune.analysis import stats
from mmtune.analysis.findings import ALPHA, interval, num, p_text
from mmtune.analysis.results import DROPPED, StudyData, load_study_data, split_metrics
from mmtune.analysis.task_metrics import (
    TASKS_ATTR,
    TaskColumns,
    detect_tasks,
    higher_is_better,
    labelled,
    metric_function,
)
from mmtune.errors import UserError
from mmtune.results_files import CONFIRM_FILE
from mmtune.tasks import TaskKind

LEVEL = 0.95
BOOTSTRAPS = 2000
MEAN_AUROC = "mean_auroc"
HELD_OUT = "held out, not used for selection"


@dataclass
class ConfirmAnalysis:
    """Every table of the confirmation, computed once."""

    data: StudyData
    meta: dict[str, Any]
    primary: str
    metrics: list[str]  # primary first, then each task's metric
    board: pd.DataFrame  # ablation leaderboard (CV) over ``metrics``
    order: list[str]  # configurations by CV mean of the primary metric, best first
    cv_tests: pd.DataFrame  # winner vs each other configuration, per metric
    test_predictions: pd.DataFrame  # fold-model ensembles on the test split, one row per config x patient
    test_scores: pd.DataFrame  # config, task, auroc, lo, hi, n, method
    test_tests: pd.DataFrame  # winner vs runner-up / baseline on the test split, per task
    labels: dict[str, str] = field(default_factory=dict)
    sentences: list[str] = field(default_factory=list)

    @property
    def winner(self) -> str:
        return self.order[0]

    @property
    def runner_up(self) -> str | None:
        tops = [c for c in self.order[1:] if self.role(c) != "baseline"]
        return tops[0] if tops else None

    @property
    def baseline(self) -> str | None:
        return self.meta.get("baseline")

    def role(self, config: str) -> str:
        for level in self.meta.get("levels", []):
            if level["name"] == config:
                return str(level["role"])
        return "top"


def read_meta(root: Path) -> dict[str, Any]:
    path = root / CONFIRM_FILE
    if not path.is_file():
        raise UserError(f"{root}: not a confirmation (no {CONFIRM_FILE}); run `mmtune confirm results/<study>`")
    return json.loads(path.read_text(encoding="utf-8"))


def config_labels(meta: dict[str, Any]) -> dict[str, str]:
    """``c39fc_00002 (fusion=gated, weighting=dwa)``; a k=v baseline shows its overrides."""
    from mmtune.analysis.results import short_key

    out = {}
    for level in meta.get("levels", []):
        shown = level.get("overrides") or level.get("searched") or {}
        parts = [f"{short_key(k)}={_short(v)}" for k, v in shown.items()]
        name = str(level["name"])
        if level.get("trial") and name != level["trial"]:
            name = f"{name} = {level['trial']}"
        out[str(level["name"])] = f"{name} ({', '.join(parts)})" if parts else name
    return out


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# ---------------------------------------------------------------------------------------------------- CV


def with_mean_auroc(splits: pd.DataFrame) -> pd.DataFrame:
    """Add ``mean_auroc`` rows: the mean of the ``<task>/auroc`` values of each trial (full model and dropped)."""
    aurocs = splits[splits["metric"].str.endswith("/auroc")]
    if aurocs.empty:
        return splits
    keys = ["config", "trial", "split_id", "seed", "fold", "group", "dropped"]
    mean = aurocs.groupby(keys, as_index=False, sort=False).agg(value=("value", "mean"), n=("n", "min"))
    mean["metric"] = MEAN_AUROC
    return pd.concat([splits, mean[list(splits.columns)]], ignore_index=True)


def cv_comparisons(
    splits: pd.DataFrame, metrics: list[str], winner: str, others: list[str], sizes: ab.Sizes | None
) -> pd.DataFrame:
    """Winner minus each other configuration per metric over the shared splits; Holm over every row."""
    rows = []
    for metric in metrics:
        table = ab.pivot(splits, metric)
        for other in others:
            if winner not in table.columns or other not in table.columns:
                continue
            pair = table[[winner, other]].dropna()
            a, b = pair[winner].to_numpy(float), pair[other].to_numpy(float)
            row: dict[str, Any] = {"metric": metric, "a": winner, "b": other, "n_splits": len(pair)}
            row.update(mean_a=float(a.mean()) if a.size else math.nan, mean_b=float(b.mean()) if b.size else math.nan)
            if a.size >= 2 and np.any(a != b):
                n_train, n_eval = (sizes.n_train, sizes.n_eval) if sizes is not None else (1.0, 1e-12)
                res = stats.corrected_resampled_ttest(a, b, n_train, n_eval, level=LEVEL)
                row.update(diff=res.mean_diff, lo=res.lo, hi=res.hi, p=res.p_value, p_naive=res.naive_p)
                row["p_wilcoxon"] = stats.wilcoxon_signed_rank(a, b).p_value
            else:
                diff = float((a - b).mean()) if a.size else math.nan
                row.update(diff=diff, lo=math.nan, hi=math.nan, p=math.nan, p_naive=math.nan, p_wilcoxon=math.nan)
            rows.append(row)
    frame = _with_holm(pd.DataFrame(rows))
    if not frame.empty:
        frame["higher_is_better"] = [higher_is_better(m) for m in frame["metric"]]
    return frame


# ---------------------------------------------------------------------------------------------------- test


def ensemble_test_predictions(data: StudyData) -> pd.DataFrame:
    """Per configuration, the mean of its fold models' test predictions per patient (full models only).

    Scores (probabilities, regression outputs) are averaged; labels are the patient's; ``n_models`` counts the
    models that scored the patient. ``attrs[mmtune_tasks]`` is kept so task kinds stay unambiguous."""
    frames = []
    declared: dict[str, Any] = {}
    for _, trial in data.usable.iterrows():
        frame = data.predictions[str(trial["trial"])]
        declared.update(frame.attrs.get(TASKS_ATTR) or {})
        rows = frame[frame["split"] == "test"] if "split" in frame.columns else frame.iloc[0:0]
        if DROPPED in rows.columns:
            rows = rows[rows[DROPPED].fillna("").astype(str) == ""]
        if rows.empty:
            continue
        frames.append(rows.assign(config=str(trial["config"]), model=str(trial["trial"])))
    if not frames:
        return pd.DataFrame(columns=["config", "patient_id", "n_models"])
    stacked = pd.concat(frames, ignore_index=True)
    scores = [c for c in stacked.columns if c.startswith("score_")]
    labels = [c for c in stacked.columns if c.startswith(("y_", "dataset"))]
    grouped = stacked.groupby(["config", "patient_id"], sort=True)
    out = grouped[scores].mean()
    out[labels] = grouped[labels].first()
    out["n_models"] = grouped["model"].nunique()
    out = out.reset_index()
    for task, spec in declared.items():  # argmax of the averaged class probabilities
        if spec.get("kind") == TaskKind.MULTICLASS and f"pred_{task}" in stacked.columns:
            cols = [f"score_{task}_{c}" for c in spec.get("classes") or []]
            if cols and all(c in out.columns for c in cols):
                out[f"pred_{task}"] = out[cols].to_numpy(float).argmax(axis=1)
    out["split"] = "test"
    out.attrs[TASKS_ATTR] = declared
    return out


def _tasks(predictions: pd.DataFrame) -> dict[str, TaskColumns]:
    found = detect_tasks(list(predictions.columns), dict(predictions.dtypes), predictions.attrs.get(TASKS_ATTR))
    return {n: t for n, t in found.items() if t.kind in (TaskKind.BINARY, TaskKind.MULTICLASS)}


def test_scores(predictions: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Test AUROC with a 95 % CI per configuration and classification task."""
    rows = []
    for name, task in _tasks(predictions).items():
        for config in order:
            part = predictions[predictions["config"] == config]
            if part.empty:
                continue
            y, s = labelled(part, task)
            row: dict[str, Any] = {
                "config": config,
                "task": name,
                "n": int(y.size),
                "models": int(part["n_models"].max()),
            }
            try:
                if task.kind == TaskKind.BINARY:
                    res = stats.auc_ci(y, s, level=LEVEL, method="delong")
                    row.update(auroc=res.auc, lo=res.lo, hi=res.hi, method="DeLong")
                else:
                    fn = metric_function(task, "auroc")
                    boot = stats.bootstrap_ci(fn, y, s, stratify=y, n_boot=BOOTSTRAPS, level=LEVEL, seed=0)
                    row.update(auroc=boot.estimate, lo=boot.lo, hi=boot.hi, method="bootstrap (macro one-vs-rest)")
            except (ValueError, UserError):
                row.update(auroc=math.nan, lo=math.nan, hi=math.nan, method="-")
            rows.append(row)
    return pd.DataFrame(rows, columns=["config", "task", "n", "models", "auroc", "lo", "hi", "method"])


def test_comparisons(predictions: pd.DataFrame, winner: str, others: list[tuple[str, str]]) -> pd.DataFrame:
    """Winner vs each (config, role) on the test patients both scored: DeLong (binary) or paired bootstrap."""
    rows = []
    for name, task in _tasks(predictions).items():
        for other, role in others:
            a = predictions[predictions["config"] == winner].set_index("patient_id")
            b = predictions[predictions["config"] == other].set_index("patient_id")
            shared = a.index.intersection(b.index)
            if shared.empty:
                continue
            ya, sa = labelled(a.loc[shared].reset_index(), task)
            _, sb = labelled(b.loc[shared].reset_index(), task)
            row: dict[str, Any] = {"task": name, "a": winner, "b": other, "role": role, "n": int(ya.size)}
            try:
                if task.kind == TaskKind.BINARY:
                    res = stats.delong_test(ya, sa, sb, level=LEVEL)
                    row.update(auc_a=res.auc_a, auc_b=res.auc_b, diff=res.diff, lo=res.diff_lo, hi=res.diff_hi)
                    row.update(p=res.p_value, method="DeLong")
                else:
                    fn = metric_function(task, "auroc")
                    res = stats.paired_bootstrap_diff(fn, ya, sa, sb, n_boot=BOOTSTRAPS, level=LEVEL, seed=0)
                    row.update(auc_a=res.metric_a, auc_b=res.metric_b, diff=res.diff, lo=res.lo, hi=res.hi)
                    row.update(p=res.p_value, method="paired bootstrap")
            except (ValueError, UserError):
                row.update(auc_a=math.nan, auc_b=math.nan, diff=math.nan, lo=math.nan, hi=math.nan, p=math.nan)
                row["method"] = "-"
            rows.append(row)
    return _with_holm(pd.DataFrame(rows))


def _with_holm(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``p_holm``: Holm's adjustment over the rows with a finite ``p`` (the others stay NaN)."""
    if frame.empty:
        return frame
    finite = frame["p"].map(lambda v: math.isfinite(v))
    frame["p_holm"] = math.nan
    if finite.any():
        frame.loc[finite, "p_holm"] = stats.holm(frame.loc[finite, "p"].to_numpy(dtype=float))
    return frame


# ---------------------------------------------------------------------------------------------------- together


def analyse_confirm(root: str | Path) -> ConfirmAnalysis:
    """Read ``results/<study>_confirm`` and compute every table and sentence of the confirmation."""
    data = load_study_data(root)
    meta = read_meta(data.root)
    labels = config_labels(meta)
    data.config_labels = {c: labels.get(c, c) for c in data.configs}
    splits = with_mean_auroc(split_metrics(data))
    primary = str(meta.get("primary") or MEAN_AUROC)
    task_metrics = [m for m in data.metrics if m != primary]
    if primary not in set(splits["metric"]):
        primary = task_metrics[0] if task_metrics else primary
    metrics = [primary, *[m for m in task_metrics if m != primary]]
    data.metrics = metrics
    full = splits[splits["dropped"] == ""]
    sizes = ab.correction_sizes(data, full)
    board = _clip_auroc(ab.leaderboard(data, splits, sizes))
    order = _order(board, primary, data.configs)
    if not order:
        raise UserError(f"{data.root}: no confirmation trial finished with predictions; nothing to analyse")
    winner = order[0]
    others = order[1:]
    cv_tests = cv_comparisons(splits, metrics, winner, others, sizes)
    preds = ensemble_test_predictions(data)
    scores = test_scores(preds, order)
    targets: list[tuple[str, str]] = []
    result = ConfirmAnalysis(data, meta, primary, metrics, board, order, cv_tests, preds, scores, pd.DataFrame())
    if result.runner_up is not None:
        targets.append((result.runner_up, "runner-up"))
    if result.baseline is not None and result.baseline != winner and result.baseline in order:
        targets.append((result.baseline, "baseline"))
    result.test_tests = test_comparisons(preds, winner, targets)
    result.labels = data.config_labels
    result.sentences = sentences(result)
    return result


def _clip_auroc(board: pd.DataFrame) -> pd.DataFrame:
    """AUROC intervals (``mean_auroc`` too) clipped to [0, 1], as the ablation report clips its own metrics."""
    if board.empty:
        return board
    auroc = board["metric"].str.endswith("auroc")
    board.loc[auroc, "lo"] = board.loc[auroc, "lo"].clip(lower=0.0)
    board.loc[auroc, "hi"] = board.loc[auroc, "hi"].clip(upper=1.0)
    return board


def _order(board: pd.DataFrame, primary: str, configs: list[str]) -> list[str]:
    if board.empty:
        return []
    part = board[board["metric"] == primary]
    ascending = not higher_is_better(primary)
    part = part.sort_values(["mean", "config"], ascending=[ascending, True], kind="mergesort")
    ranked = [str(c) for c in part["config"]]
    return ranked + [c for c in configs if c not in ranked and c in set(board["config"])]


# ---------------------------------------------------------------------------------------------------- sentences


def metric_label(metric: str) -> str:
    from mmtune.analysis.task_metrics import label_of

    return "mean AUROC" if metric == MEAN_AUROC else label_of(metric)


def _test_clause(result: ConfirmAnalysis, metric: str, a: str, b: str) -> str:
    task, _, name = metric.rpartition("/")
    if name != "auroc" or result.test_scores.empty:
        return ""
    scores = result.test_scores.set_index(["config", "task"])
    if (a, task) not in scores.index or (b, task) not in scores.index:
        return ""
    sa, sb = scores.loc[(a, task)], scores.loc[(b, task)]
    test = result.test_tests
    row = test[(test["task"] == task) & (test["b"] == b)] if len(test) else test
    p = ""
    if len(row):
        r = row.iloc[0]
        p = f" ({r['method']} {p_text(float(r['p']))}; Holm {p_text(float(r['p_holm'])).removeprefix('p ')})"
    return (
        f"; held-out test AUROC {num(sa['auroc'])} {interval(sa['lo'], sa['hi'])} vs {num(sb['auroc'])} "
        f"{interval(sb['lo'], sb['hi'])}{p}"
    )


def comparison_sentence(result: ConfirmAnalysis, row: Any, replication: str) -> str:
    """ "A beats B on morbidity AUROC by x [CI] (p, Holm) over F folds x S seeds; held-out test AUROC ..." """
    a, b, metric = str(row["a"]), str(row["b"]), str(row["metric"])
    label = metric_label(metric)
    diff, lo, hi, p = float(row["diff"]), float(row["lo"]), float(row["hi"]), float(row["p_holm"])
    better = diff > 0 if higher_is_better(metric) else diff < 0
    role = " (the runner-up)" if b == result.runner_up else " (the baseline)" if b == result.baseline else ""
    if math.isfinite(p) and p < ALPHA and better:
        verdict = f"{a} beats {b}{role} on {label} by {num(abs(diff))}"
    elif math.isfinite(p) and p < ALPHA:
        verdict = f"{a} is worse than {b}{role} on {label} by {num(abs(diff))}"
    else:
        verdict = f"{a} is not distinguishable from {b}{role} on {label}: difference {num(diff, True)}"
    ci = interval(lo, hi, True)
    return f"{verdict} {ci} ({p_text(p)}, Holm) over {replication}{_test_clause(result, metric, a, b)}."


def sentences(result: ConfirmAnalysis) -> list[str]:
    data = result.data
    replication = data.replication_phrase()
    board = result.board[result.board["metric"] == result.primary].set_index("config")
    first = result.winner
    lines = []
    if first in board.index:
        row = board.loc[first]
        rank = next((lv.get("search_rank") for lv in result.meta.get("levels", []) if lv["name"] == first), None)
        was = f" (rank {rank} in the search)" if rank else ""
        lines.append(
            f"Over {replication} of the non-test patients, {result.labels.get(first, first)}{was} has the best "
            f"{metric_label(result.primary)}: {num(float(row['mean']))} {interval(float(row['lo']), float(row['hi']))}."
        )
    tests = result.cv_tests
    targets = [c for c in (result.runner_up, result.baseline) if c is not None and c != first]
    for target in dict.fromkeys(targets):
        part = tests[tests["b"] == target] if len(tests) else tests
        for _, row in part.iterrows():
            lines.append(comparison_sentence(result, row, replication))
    lines.append(
        "Test figures are " + HELD_OUT + ": each configuration's score is that of its fold-model ensemble "
        f"(the mean prediction of its {_models(result)} cross-validation models), computed once after selection."
    )
    return lines


def _models(result: ConfirmAnalysis) -> str:
    if result.test_scores.empty:
        return "0"
    counts = sorted(set(int(v) for v in result.test_scores["models"]))
    return "/".join(str(c) for c in counts)


def write_tables(result: ConfirmAnalysis, folder: Path) -> None:
    """The tables behind the report, as Parquet."""
    board = result.board.drop(columns=["aim"], errors="ignore")
    board.to_parquet(folder / "cv_leaderboard.parquet", index=False)
    for name, frame in (
        ("cv_comparisons.parquet", result.cv_tests),
        ("test_auroc.parquet", result.test_scores),
        ("test_comparisons.parquet", result.test_tests),
    ):
        frame.to_parquet(folder / name, index=False)
