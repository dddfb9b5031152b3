"""``mmtune confirm`` end to end on the session's real Ray and tiny synthetic data: a real 3-trial search, its top
2 + a k=v baseline confirmed over 2 folds x 1 seed, the fold-model ensembles scored on the test split; bad input
refused in one line before Ray, with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers.tune import write_space
from mmtune.cli import main


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


@pytest.fixture(scope="module")
def search(tmp_path_factory, prepared_synthetic, ray_local) -> Path:
    """A finished real search: 3 configurations of fusion x weighting, 1 epoch each (FIFO: every trial complete)."""
    folder = tmp_path_factory.mktemp("confirm")
    space = write_space(
        folder,
        prepared_synthetic,
        name="tiny",
        space={
            "model.fusion.name": {"grid": ["concat", "late", "gated"]},
        },
        scheduler={"name": "fifo", "max_t": 1},
        num_samples=1,
    )
    doc = yaml.safe_load(space.read_text())
    doc["base"]["model"]["backbone"]["params"]["width"] = 4
    doc["base"]["model"]["fusion"]["dim"] = 16
    doc["base"]["trainer"]["max_epochs"] = 1
    space.write_text(yaml.safe_dump(doc))
    results = folder / "results"
    assert run_cli(["tune", str(space), "--results", str(results), "--no-report"]) == 0
    return results / "tiny"


@pytest.mark.slow
def test_bad_input_is_one_line_and_writes_nothing(search, tmp_path, prepared_synthetic, capsys):
    capsys.readouterr()
    out = tmp_path / "out"

    def refused(args: list[str], expected: str) -> None:
        assert run_cli(["confirm", "--results", str(out), "--folds", "2", "--seeds", "1", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
        assert not out.exists() and not (search.parent / "tiny_confirm").exists()

    refused([str(tmp_path / "nope")], "study directory not found")
    refused([str(search), "--top", "4"], "--top 4: study tiny has only 3 distinct complete configuration(s)")
    refused([str(search), "--baseline", "zzz"], "--baseline zzz: not a trial of study tiny")
    refused([str(search), "--baseline", "optim.lrr=0.1"], "'optim.lrr' is not a run config key")
    refused([str(search), "--baseline", "model.fusion.name=nope"], "cell 'baseline': unknown fusion 'nope'")
    refused([str(search), "--top", "2", "--folds", "99"], "k = 99 folds")

    unfinished = tmp_path / "unfinished"
    shutil.copytree(search, unfinished, ignore=shutil.ignore_patterns("tune"))
    frame = pd.read_parquet(unfinished / "trials.parquet")
    frame.loc[0, "status"] = "RUNNING"
    frame.to_parquet(unfinished / "trials.parquet")
    refused([str(unfinished)], "the study is not finished (1 of 3 trials are RUNNING)")

    # a study whose data have no test split: the same study on a copy of the data with the test patients removed
    no_test = tmp_path / "no_test_data"
    shutil.copytree(prepared_synthetic, no_test)
    manifest = json.loads((no_test / "manifest.json").read_text())
    manifest["counts"].pop("test", None)
    (no_test / "manifest.json").write_text(json.dumps(manifest))
    moved = tmp_path / "no_test"
    shutil.copytree(search, moved)
    for path in [moved / "space.yaml", *moved.glob("trials/*/config.yaml")]:
        path.write_text(path.read_text().replace(str(prepared_synthetic), str(no_test)))
    refused([str(moved)], "have no test split")


@pytest.mark.slow
def test_confirm_end_to_end(search, capsys):
    ranked = pd.read_parquet(search / "trials.parquet").sort_values("best/val/mean_auroc", ascending=False)
    top2 = list(ranked["trial"][:2])
    args = ["confirm", str(search), "--top", "2", "--folds", "2", "--seeds", "1"]
    assert run_cli([*args, "--baseline", "model.fusion.name=film"]) == 0
    out = capsys.readouterr().out
    root = search.parent / "tiny_confirm"
    meta = json.loads((root / "confirm.json").read_text())
    assert [lv["name"] for lv in meta["levels"]] == [*top2, "baseline"] and meta["baseline"] == "baseline"
    assert meta["test_scoring"] == "fold-model ensemble"

    cells = pd.read_parquet(root / "cells.parquet")
    trials = pd.read_parquet(root / "trials.parquet")
    assert len(cells) == len(trials) == 6 and set(trials["status"]) == {"TERMINATED"}
    assert set(cells["cell"]) == {*top2, "baseline"}
    for _, split in cells.groupby("split_id"):  # same folds for every configuration: identical split sizes
        assert split[["n_train", "n_val", "n_test"]].nunique().max() == 1 and len(split) == 3
    study = yaml.safe_load((root / "confirm_study.yaml").read_text())
    assert study["factors"]["config"]["baseline"] == {"model.fusion.name": "film"}
    assert study["base"]["trainer"]["max_epochs"] == 1  # the search's full budget (max_t)

    test = pd.read_parquet(root / "test_predictions.parquet")
    n_test = int(cells["n_test"].iloc[0])
    assert test.groupby("config")["patient_id"].nunique().to_dict() == {c: n_test for c in (*top2, "baseline")}
    assert (test["n_models"] == 2).all() and test["score_covid"].between(0, 1).all()
    # the ensemble is the mean of the two fold models' test predictions
    one = trials[trials["cell"] == top2[0]]["trial"]
    fold_preds = [pd.read_parquet(root / "trials" / t / "predictions.parquet") for t in one]
    fold_test = pd.concat([p[(p["split"] == "test") & p["modality_dropped"].isna()] for p in fold_preds])
    expected = fold_test.groupby("patient_id")["score_covid"].mean()
    got = test[test["config"] == top2[0]].set_index("patient_id")["score_covid"]
    assert (expected.sort_index() - got.sort_index()).abs().max() < 1e-6

    scores = pd.read_parquet(root / "confirm" / "test_auroc.parquet")
    assert set(scores["task"]) == {"covid", "morbidity"} and scores["auroc"].between(0, 1).all()
    assert (scores["lo"] <= scores["auroc"]).all() and (scores["auroc"] <= scores["hi"]).all()
    comparisons = pd.read_parquet(root / "confirm" / "test_comparisons.parquet")
    assert set(comparisons["role"]) <= {"runner-up", "baseline"} and "runner-up" in set(comparisons["role"])
    assert set(comparisons.loc[comparisons["task"] == "covid", "method"]) == {"DeLong"}
    md = (root / "confirm" / "report.md").read_text()
    assert "held out, not used for selection" in md and "(test_auroc.png)" in md and "(test_roc.png)" in md
    assert "over 2 folds x 1 seed" in md and "held-out test AUROC" in md and "Holm" in md
    assert "over 2 folds x 1 seed" in out and "confirmation report:" in out
