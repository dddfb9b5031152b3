"""Study-level statistics on crafted results with a known truth: a planted effect is found, a null one is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.ablation import make_results
from mmtune.analysis import ablation_stats as ab
from mmtune.analysis.report import analyse
from mmtune.analysis.results import load_study_data, split_metrics


@pytest.fixture(scope="session")
def crafted(tmp_path_factory):
    """2 x 2 factorial, 3 folds x 2 seeds: clinical features sharpen morbidity scores; covid is the same everywhere."""
    return analyse(make_results(tmp_path_factory.mktemp("crafted")))


@pytest.fixture(scope="session")
def crafted_null(tmp_path_factory):
    return analyse(make_results(tmp_path_factory.mktemp("crafted_null"), clinical_gain=0.0))


def effect(analysis, metric: str, factor: str, kind: str = "main") -> pd.Series:
    frame = analysis.effects
    rows = frame[(frame["metric"] == metric) & (frame["factor"] == factor) & (frame["kind"] == kind)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_split_metrics_are_recomputed_per_trial_and_paired_by_split(crafted):
    splits = crafted.splits
    full = splits[splits["dropped"] == ""]
    # covid in all 4 cells x 6 splits, morbidity only in the 2 cells that learn it
    assert len(full[full["metric"] == "covid/auroc"]) == 24
    assert set(full[full["metric"] == "morbidity/auroc"]["config"]) == {
        "image / covid+morbidity",
        "image+clinical / covid+morbidity",
    }
    assert full["value"].between(0.5, 1.0).all()
    assert set(full["n"]) <= {29, 30, 31}  # one fold of 90 patients
    pivot = ab.pivot(splits, "covid/auroc")
    assert pivot.shape == (6, 4) and not pivot.isna().any().any()
    assert crafted.sizes == ab.Sizes(60.0, 30.0)


def test_planted_clinical_effect_on_morbidity_is_significant(crafted):
    row = effect(crafted, "morbidity/auroc", "modality")
    assert row["level"] == "image+clinical" and row["baseline"] == "image"
    assert row["diff"] > 0.1 and row["lo"] > 0
    assert row["p_holm"] < 0.05 and row["p"] <= row["p_holm"] and row["n_splits"] == 6
    assert row["p_naive"] < row["p"]  # the corrected test is more conservative than the naive paired t-test
    assert row["p_wilcoxon"] == pytest.approx(2 / 2**6)  # all 6 differences positive: the smallest possible p
    assert row["pairs"] == ["image+clinical / covid+morbidity vs image / covid+morbidity"]


def test_absent_effects_are_not_significant(crafted, crafted_null):
    covid = effect(crafted, "covid/auroc", "modality")
    assert covid["p_holm"] > 0.05 and covid["lo"] < 0 < covid["hi"]
    assert len(covid["pairs"]) == 2  # averaged over both task levels
    tasks = effect(crafted, "covid/auroc", "tasks")
    assert tasks["p_holm"] > 0.05
    interaction = effect(crafted, "covid/auroc", "modality", kind="interaction")
    assert interaction["other"] == "tasks: covid+morbidity vs covid" and interaction["p_holm"] > 0.05
    assert effect(crafted_null, "morbidity/auroc", "modality")["p_holm"] > 0.05


def test_holm_and_bh_are_over_every_comparison_of_the_study(crafted):
    from mmtune.analysis.stats import benjamini_hochberg, holm

    frame = crafted.effects
    assert len(frame) == 4  # 3 main effects (morbidity has no tasks contrast) + 1 interaction
    assert np.allclose(frame["p_holm"], holm(frame["p"]))
    assert np.allclose(frame["p_bh"], benjamini_hochberg(frame["p"]))


def test_leaderboard_ranks_and_intervals(crafted):
    board = crafted.board
    morbidity = board[board["metric"] == "morbidity/auroc"]
    assert list(morbidity["config"]) == ["image+clinical / covid+morbidity", "image / covid+morbidity"]
    assert list(morbidity["rank"]) == [1, 2]
    assert (morbidity["lo"] <= morbidity["mean"]).all() and (morbidity["mean"] <= morbidity["hi"]).all()
    assert (board["hi"] <= 1.0).all()  # clipped to the AUROC range
    assert set(board["ci"]) == {"splits (Nadeau-Bengio)"}
    assert all(len(h) == 6 for h in board["aim"])  # one Aim run per split
    covid = board[board["metric"] == "covid/auroc"]
    assert covid["avg_rank"].sum() == pytest.approx(1 + 2 + 3 + 4)


def test_pooled_out_of_fold_delong_pairs_patients_per_seed(crafted):
    delong = crafted.delong
    assert set(delong["task"]) == {"covid"}  # DeLong needs a binary task
    assert set(delong["seed"]) == {0, 1}
    assert (delong["n"] == 90).all()  # every non-test patient once per seed (out-of-fold)
    assert (delong["p_holm"] >= delong["p"]).all()


def test_friedman_nemenyi_on_four_cells(crafted):
    (test,) = crafted.ranks
    assert test.metric == "covid/auroc" and test.n_blocks == 6 and len(test.configs) == 4
    assert test.friedman.iman_davenport_p > 0.05
    assert sum(test.nemenyi.avg_ranks.values()) == pytest.approx(10)


def test_missing_modality_robustness_from_dropped_predictions(crafted):
    robust = crafted.robust
    assert set(robust["config"]) == {"image+clinical / covid", "image+clinical / covid+morbidity"}
    morbidity = robust[robust["metric"] == "morbidity/auroc"].iloc[0]
    assert morbidity["change"] < -0.1 and morbidity["hi"] < 0  # the model loses what clinical features gave it


def test_sentences_say_what_was_found(crafted):
    text = "\n".join(crafted.sentences)
    assert (
        "Switching modality from image to image+clinical improves morbidity AUROC by 0.2" in text
        and "(p = 0.00" in text
        and "Holm) across 3 folds x 2 seeds." in text
    )
    assert "No evidence that switching modality from image to image+clinical changes covid AUROC: +0.01" in text
    assert crafted.sentences[0].startswith("Switching modality")  # significant findings first


def test_results_with_missing_and_errored_trials_load_what_is_there(tmp_path):
    out = make_results(tmp_path, drop=("image / covid @ f0/s0",), errored=("image+clinical / covid+morbidity @ f1/s1",))
    data = load_study_data(out)
    assert data.problems[:2] == ["1 of 24 planned trials are errored", "1 of 24 planned trials are missing"]
    assert len(data.usable) == 22
    assert set(data.missing["state"]) == {"missing", "errored"}
    splits = split_metrics(data)
    analysis = analyse(out)
    row = effect(analysis, "morbidity/auroc", "modality")
    assert row["n_splits"] == 5  # the split without a pair is left out, the rest stay paired
    assert len(splits[(splits["dropped"] == "") & (splits["metric"] == "covid/auroc")]) == 22


def test_fast_macro_auroc_matches_the_stats_module():
    from mmtune.analysis.stats import auroc_multiclass
    from mmtune.analysis.task_metrics import macro_auroc

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 80)
    proba = rng.dirichlet([1, 1, 1], 80)
    proba[:10, 0] = proba[10:20, 0]  # ties
    assert macro_auroc(y, proba) == pytest.approx(auroc_multiclass(y, proba).macro, abs=1e-12)
    y[y == 2] = 1  # a class absent from y is left out of the macro mean, as in auroc_multiclass
    assert macro_auroc(y, proba) == pytest.approx(auroc_multiclass(y, proba).macro, abs=1e-12)


def test_multilabel_tasks_are_read_from_the_declaration_the_predictions_file_carries(tmp_path):
    """Column names alone make ``y_findings_ground_glass`` look like a task of its own; the ``mmtune_tasks`` attrs
    that ``write_predictions`` stores settle it, and survive the Parquet round trip."""
    import pandas as pd
    from mmtune.analysis.task_metrics import TASKS_ATTR, detect_tasks, metric_value
    from mmtune.tasks import TaskKind, TaskSpec
    from mmtune.training.predictions import task_declarations, write_predictions

    labels = ["ground_glass", "consolidation"]
    frame = pd.DataFrame(
        {
            "patient_id": ["a", "b", "c", "d"],
            "y_findings_ground_glass": [1.0, 0.0, 1.0, 0.0],
            "score_findings_ground_glass": [0.9, 0.2, 0.8, 0.1],
            "y_findings_consolidation": [0.0, 1.0, float("nan"), 0.0],
            "score_findings_consolidation": [0.7, 0.6, 0.5, 0.1],
        }
    )
    guessed = detect_tasks(list(frame.columns), dict(frame.dtypes))
    assert "findings" not in guessed or guessed["findings"].classes != labels  # ambiguous without the declaration
    frame.attrs[TASKS_ATTR] = task_declarations([TaskSpec(name="findings", kind=TaskKind.MULTILABEL, classes=labels)])
    path = write_predictions(tmp_path / "predictions.parquet", [frame])
    back = pd.read_parquet(path)
    tasks = detect_tasks(list(back.columns), dict(back.dtypes), back.attrs.get(TASKS_ATTR))
    assert list(tasks) == ["findings"] and tasks["findings"].classes == labels
    value, _ = metric_value(back, tasks["findings"], "auroc")
    assert value == pytest.approx((1.0 + 0.5) / 2)  # ground glass 1.0; consolidation 0.5 (0.6 vs 0.7 and 0.1)
