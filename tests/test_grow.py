"""Growing a finished ablation with ``--resume``: only the new (cell, split) trials run; a change that alters what
the finished trials mean (base config, folds) is refused in one line naming the key, before Ray."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers.tune import write_space
from mmtune.errors import ConfigError
from mmtune.tuning.ablation import expand_with_data, load_study, write_study_files
from mmtune.tuning.curve import curve_trial
from mmtune.tuning.driver import run_study
from mmtune.tuning.space import load_search_space
from test_ablate import run_cli, tiny_study

CARD = Path(__file__).resolve().parents[1] / "datasets" / "synthetic.yaml"
CURVE = "mmtune.tuning.curve:curve_trial"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("max_epochs: 1", "max_epochs: 2"), "base.trainer.max_epochs"),
        (("folds: 2", "folds: 3"), "repeats.folds"),
        (("batch_size: 16", "batch_size: 8"), "base.data.batch_size"),
    ],
)
def test_a_change_to_what_finished_trials_mean_is_refused(tmp_path, capsys, edit, key):
    study_file = Path(tiny_study(tmp_path, tmp_path / "not_prepared", card=str(CARD)))
    root = tmp_path / "results" / "tiny"
    study = load_study(study_file)
    write_study_files(study, root, expand_with_data(study, None), None)  # the study as it ran
    (root / "tune").mkdir()
    (root / "tune" / "experiment_state-0.json").write_text("{}", encoding="utf-8")
    study_file.write_text(study_file.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    assert run_cli(["ablate", str(study_file), "--resume", "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    line = " ".join(err.split())
    assert f"{key} changed since the study ran" in line and "--resume refuses it" in line, err
    assert not (root / "tune-2").exists()


@pytest.mark.slow
def test_adding_a_seed_runs_only_the_new_trials(tmp_path, prepared_synthetic, ray_local):
    study_file = Path(tiny_study(tmp_path, prepared_synthetic))
    results = tmp_path / "results"
    args = ["ablate", str(study_file), "--results", str(results), "--trainable", CURVE]
    assert run_cli(args) == 0
    root = results / "tiny"
    first = pd.read_parquet(root / "trials.parquet")
    assert len(first) == 4 and set(first["status"]) == {"TERMINATED"}

    study_file.write_text(
        study_file.read_text(encoding="utf-8").replace("seeds: [0]", "seeds: [0, 1]"), encoding="utf-8"
    )
    assert run_cli([*args, "--resume"]) == 0
    trials = pd.read_parquet(root / "trials.parquet")
    new = {d.name for d in (root / "tune-2").iterdir() if d.is_dir()}
    assert len(new) == 4  # exactly the 2 cells x 2 folds of seed 1
    assert set(trials["trial"]) == set(first["trial"]) | new  # the finished trials are kept, not re-run
    assert len(trials) == 8 and set(trials["status"]) == {"TERMINATED"}
    expected = {f"{c} @ f{f}/s{s}" for c in ("image", "image+clinical") for f in (0, 1) for s in (0, 1)}
    assert set(trials["key"]) == set(pd.read_parquet(root / "cells.parquet")["key"]) == expected
    assert set(trials.loc[trials["trial"].isin(new), "key"]) == {k for k in expected if k.endswith("/s1")}
    # an unchanged --resume of the grown study runs nothing more
    assert run_cli([*args, "--resume"]) == 0
    assert len(pd.read_parquet(root / "trials.parquet")) == 8 and not (root / "tune-3").exists()


@pytest.mark.slow
def test_a_larger_num_samples_adds_trials_to_a_finished_search(tmp_path, prepared_synthetic, ray_local):
    space_file = write_space(
        tmp_path, prepared_synthetic, name="more", num_samples=2, scheduler={"name": "fifo", "max_t": 2}
    )
    run = {"results_dir": tmp_path / "results", "trial_fn": curve_trial, "live": False}
    first = run_study(load_search_space(space_file), **run).frame
    assert len(first) == 2
    with pytest.raises(ConfigError, match=r"space\.optim\.lr\.loguniform changed since the study ran"):
        run_study(load_search_space(space_file, ["space.optim.lr.loguniform=[0.001, 0.01]"]), resume=True, **run)
    grown = run_study(load_search_space(space_file, ["num_samples=5"]), resume=True, **run).frame
    root = tmp_path / "results" / "more"
    new = {d.name for d in (root / "tune-2").iterdir() if d.is_dir()}
    assert len(new) == 3 and set(grown["trial"]) == set(first["trial"]) | new
    assert set(grown["status"]) == {"TERMINATED"}
    assert grown["optim.lr"].nunique() == 5  # new samples, not the first experiment's again
