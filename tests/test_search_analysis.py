"""Search analysis of a tuning study: level effects at a common budget with t-intervals, Optuna importances,
figures and the report's opening sentences; on hand-made results (checked against scipy / statsmodels computed
here) and on a real finished ASHA search (the session's ``asha_study``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from mmtune.analysis.report import write_report
from mmtune.analysis.search_data import Rungs, load_search_inputs
from mmtune.analysis.search_factors import factors, values_at
from mmtune.analysis.search_summary import analyse_search
from mmtune.cli import main
from mmtune.config.search import SchedulerConfig
from mmtune.results_files import FACTORS_FILE, IMPORTANCE_FILE
from scipy import stats

METRIC = "val/mean_auroc"
FUSIONS = ["concat", "late", "film"]


def make_study(root, trials: int = 12, errored: int = 1, diverged: int = 1, seed: int = 3):
    """``trials`` TERMINATED trials over fusion (3 declared levels, ``film`` never sampled) x weighting (one level)
    x lr (log-uniform), ASHA-like budgets (1, 2 or 4 epochs), plus errored and diverged trials."""
    rng = np.random.default_rng(seed)
    rows, progress = [], []
    effect = {"concat": 0.0, "late": 0.08}
    for i in range(trials + errored + diverged):
        trial = f"t{i:03d}"
        fusion = FUSIONS[i % 2]
        lr = float(10 ** rng.uniform(-4, -2))
        epochs = [1, 1, 2, 4][i % 4]
        status = "ERROR" if trials <= i < trials + errored else "TERMINATED"
        values = [0.6 + effect[fusion] + 0.03 * e + rng.normal(0, 0.03) for e in range(1, epochs + 1)]
        if i >= trials + errored:
            values[-1] = math.nan  # diverged
        if status == "ERROR":
            values = values[:1]
        progress += [{"trial": trial, "epoch": e, "metric": METRIC, "value": v} for e, v in enumerate(values, start=1)]
        progress += [{"trial": trial, "epoch": e, "metric": "val/covid/auroc", "value": 0.5} for e in (1,)]
        rows.append(
            {
                "trial": trial,
                "status": status,
                "epochs": epochs,
                "stopped_early": epochs < 4,
                "best_epoch": 1,
                "aim_hash": None,
                "trial_dir": str(root / "tune" / trial),
                "predictions": None,
                "error": "RuntimeError: boom" if status == "ERROR" else None,
                "model.fusion.name": fusion,
                "weighting.name": "equal",
                "optim.lr": lr,
                "model.backbone.params.width": [8, 16, None][i % 3],  # conditional int choice: NaN where inactive
                f"best/{METRIC}": float(np.nanmax(values)) if np.isfinite(values).any() else math.nan,
            }
        )
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "trials.parquet", index=False)
    pd.DataFrame(progress).to_parquet(root / "progress.parquet", index=False)
    space = {
        "name": root.name,
        "metric": METRIC,
        "mode": "max",
        "space": {
            "model.fusion.name": {"choice": FUSIONS},
            "weighting.name": {"choice": ["equal"]},
            "optim.lr": {"loguniform": [1.0e-4, 1.0e-2]},
            "model.backbone.params.width": {"choice": [8, 16], "when": {"model.backbone.name": "small_cnn"}},
        },
        "scheduler": {"name": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2},
    }
    (root / "space.yaml").write_text(yaml.safe_dump(space), encoding="utf-8")
    return root


def test_level_means_and_cis_at_the_common_budget_match_scipy(tmp_path):
    root = make_study(tmp_path / "hand")
    inputs = load_search_inputs(root)
    assert inputs.excluded == {"errored": 1, "diverged (non-finite metric)": 1}
    assert len(inputs.trials) == 12 and inputs.total == 14
    table, budget = factors(inputs)
    assert budget == 1  # trials stopped at the first rung: every usable trial is compared at epoch 1
    progress = pd.read_parquet(root / "progress.parquet")
    trials = pd.read_parquet(root / "trials.parquet").iloc[:12]
    at_one = progress[(progress["metric"] == METRIC) & (progress["epoch"] == 1)].set_index("trial")["value"]
    for fusion in ("concat", "late"):
        values = at_one[trials.loc[trials["model.fusion.name"] == fusion, "trial"]].to_numpy()
        lo, hi = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        row = table[(table["dimension"] == "model.fusion.name") & (table["level"] == fusion) & table["common"]]
        assert row[["n_trials", "budget"]].values.tolist() == [[len(values), 1]]
        assert row["mean"].item() == pytest.approx(values.mean())
        assert (row["ci_lo"].item(), row["ci_hi"].item()) == pytest.approx((lo, hi))
    film = table[(table["level"] == "film") & table["common"]]
    assert film["n_trials"].item() == 0 and math.isnan(film["mean"].item())  # declared, never sampled
    survivors = table[~table["common"]]
    assert set(survivors["budget"]) == {4}
    assert survivors[survivors["dimension"] == "model.fusion.name"]["n_trials"].sum() == 3  # t003, t007, t011
    lr = table[(table["dimension"] == "optim.lr") & table["common"]]
    assert len(lr) == 3 and lr["n_trials"].sum() == 12  # log-quantile bins
    edges = np.quantile(np.log10(trials["optim.lr"]), [0, 1 / 3, 2 / 3, 1])
    assert lr["level"].iloc[0] == f"{10 ** edges[0]:.1e}-{10 ** edges[1]:.1e}"
    width = table[(table["dimension"] == "model.backbone.params.width") & table["common"]]
    assert width["level"].tolist() == ["8", "16"] and width["n_trials"].tolist() == [4, 4]  # only where active


def test_sentences_importance_and_files_on_hand_made_results(tmp_path, capsys):
    root = make_study(tmp_path / "hand")
    with pytest.raises(SystemExit) as done:
        main(["report", str(root)])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "What the search found:" in out
    found = pd.read_parquet(root / FACTORS_FILE)
    assert list(found.columns[:7]) == ["dimension", "level", "n_trials", "budget", "mean", "ci_lo", "ci_hi"]
    importance = pd.read_parquet(root / IMPORTANCE_FILE)
    assert list(importance.columns[:3]) == ["dimension", "importance", "method"]
    fanova = importance[(importance["method"] == "fanova") & importance["importance"].notna()]
    assert set(fanova["dimension"]) == {"model.fusion.name", "optim.lr"}  # width: conditional, weighting: 1 level
    assert fanova["importance"].sum() == pytest.approx(1.0)
    one = importance[importance["dimension"] == "weighting.name"]
    assert one["importance"].isna().all() and one["note"].eq("one level only").all()
    md = (root / "report" / "report.md").read_text(encoding="utf-8")
    opening = md.split("## Study")[0]
    assert "## What the search found" in opening
    assert "weighting: best level `equal`" in opening and "nothing to compare it with" in opening
    analysis = analyse_search(root)
    fusion = next(c for c in analysis.comparisons if c.dimension == "model.fusion.name")
    scores = values_at(analysis.inputs, 1)
    trials = analysis.inputs.trials.set_index("trial")["model.fusion.name"]
    late, concat = scores[trials[trials == "late"].index], scores[trials[trials == "concat"].index]
    assert (fusion.best, fusion.runner_up) == ("late", "concat")
    assert fusion.p == pytest.approx(stats.ttest_ind(late, concat, equal_var=False).pvalue)
    sentence = next(s for s in analysis.sentences if s.startswith("fusion:"))
    verdict = "ahead on this one validation split" if fusion.p < 0.05 else "cannot tell apart on one validation"
    assert verdict in sentence and "mmtune confirm" in sentence
    assert "Excluded from the search analysis: errored 1, diverged (non-finite metric) 1." in md
    assert {"search_levels.png", "search_parallel.png", "search_curves.png"} <= {
        p.name for p in (root / "report").iterdir()
    }
    assert not list(root.glob(".*.tmp"))


def test_too_few_trials_is_said_not_crashed(tmp_path):
    root = make_study(tmp_path / "few", trials=3, errored=0, diverged=0)
    paths = write_report(root)
    md = paths.markdown.read_text(encoding="utf-8")
    assert "Importance of the dimensions not estimated: 3 usable trial(s)" in md
    importance = pd.read_parquet(root / IMPORTANCE_FILE)
    assert importance["importance"].isna().all() and len(importance) == 4
    # no importance: the interaction pair is the first two categorical dims with two used levels (width is partial)
    # (space.yaml order: this fixture's keys are sorted)
    assert "Interaction of model.backbone.params.width x model.fusion.name" in md


def test_all_trials_errored_gives_sentences_and_empty_tables(tmp_path):
    root = make_study(tmp_path / "bad", trials=0, errored=2, diverged=1)
    paths = write_report(root)
    assert "over 0 usable of 3 trials" in paths.search_sentences[0]
    assert pd.read_parquet(root / FACTORS_FILE)["n_trials"].sum() == 0


@pytest.mark.parametrize(
    "name, grace, rf, max_t, brackets",
    [("asha", 1, 2, 4, 1), ("asha", 1, 3, 27, 1), ("asha", 2, 2, 20, 1), ("hyperband", 1, 2, 16, 3)],
)
def test_rungs_are_rays_asha_milestones(tmp_path, name, grace, rf, max_t, brackets):
    from mmtune.tuning.schedulers import build_scheduler

    cfg = SchedulerConfig(name=name, grace_period=grace, reduction_factor=rf, max_t=max_t, brackets=brackets)
    scheduler = build_scheduler(cfg, max_t, tmp_path / "stops.txt")
    ray_milestones = {m for b in scheduler._brackets for m, _ in b._rungs if m < max_t}
    assert Rungs.of(cfg, max_t).milestones == tuple(sorted(ray_milestones))


def test_real_search_writes_factors_and_importance(asha_study, tmp_path, capsys):
    """The session's finished 8-trial ASHA search (curve trial function): ``mmtune report`` on it."""
    space, results, _, _ = asha_study
    root = results.paths.root
    assert (root / "space.yaml").is_file() and (root / "progress.parquet").is_file()
    with pytest.raises(SystemExit) as done:
        main(["report", str(root), "--out", str(tmp_path / "report")])
    assert done.value.code == 0
    frame = pd.read_parquet(results.paths.trials_parquet)
    found = pd.read_parquet(root / FACTORS_FILE)
    common = found[found["common"]]
    assert set(common["dimension"]) == set(space.entries)
    assert (common["budget"] == frame["epochs"].min()).all()  # ASHA stopped some trials at the first rung
    for key in ("model.fusion.name", "weighting.name", "optim.lr"):
        assert common.loc[common["dimension"] == key, "n_trials"].sum() == 8
    alpha = common[common["dimension"] == "weighting.params.alpha"]
    assert alpha["n_trials"].sum() == (frame["weighting.name"] == "gradnorm").sum()  # only where active
    progress = pd.read_parquet(root / "progress.parquet")
    at_budget = progress[(progress["metric"] == space.metric) & (progress["epoch"] == common["budget"].iloc[0])]
    concat = at_budget[at_budget["trial"].isin(frame.loc[frame["model.fusion.name"] == "concat", "trial"])]
    row = common[(common["dimension"] == "model.fusion.name") & (common["level"] == "concat")]
    assert row["n_trials"].item() == len(concat)
    if len(concat):
        assert row["mean"].item() == pytest.approx(concat["value"].mean())
    importance = pd.read_parquet(root / IMPORTANCE_FILE)
    assert set(importance["method"]) <= {"fanova", "ped_anova"} and len(importance)
    fanova = importance[(importance["method"] == "fanova") & importance["importance"].notna()]
    if len(fanova):
        assert fanova["importance"].sum() == pytest.approx(1.0)
        assert "weighting.params.alpha" not in set(fanova["dimension"])  # conditional: not in every trial
    out = capsys.readouterr().out
    assert "What the search found:" in out and "fusion: best level" in out
    md = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert md.index("## What the search found") < md.index("## Leaderboard")
    assert "rungs at epoch 1, 2; max_t 4" in md


def test_search_report_and_files_are_byte_identical_when_run_twice(tmp_path):
    root = make_study(tmp_path / "twice")
    first, second = write_report(root, tmp_path / "a"), write_report(root, tmp_path / "b")
    factors_a = (root / FACTORS_FILE).read_bytes()
    write_report(root, tmp_path / "c")
    assert factors_a == (root / FACTORS_FILE).read_bytes()
    for a, b in zip(sorted(first.out.iterdir()), sorted(second.out.iterdir()), strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name
