"""The Tune driver on the session's real local Ray: ASHA stops trials early, results dir, Aim runs, bad input.

Most tests use the learning-curve trial function (deterministic, cheap) because they test the driver; one slow
test runs the real ``mmtune.training.trial.run_trial`` end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from helpers.tune import CURVE, write_space
from mmtune.cli import main
from mmtune.config.run import load_run_config
from mmtune.results_files import REPORT_AIM_RUN_FILE
from mmtune.tuning.curve import curve_trial
from mmtune.tuning.driver import StudyExistsError, run_study
from mmtune.tuning.space import load_search_space

SEARCHED = ["model.fusion.name", "weighting.name", "weighting.params.alpha", "optim.lr"]


def test_asha_stops_some_trials_early(asha_study):
    _, results, _, _ = asha_study
    frame = pd.read_parquet(results.paths.trials_parquet)
    assert len(frame) == 8
    assert (frame["status"] == "TERMINATED").all()
    stopped = frame[frame["stopped_early"]]
    full = frame[~frame["stopped_early"]]
    assert 1 <= len(stopped) < 8, frame[["trial", "epochs", "stopped_early"]]
    assert (stopped["epochs"] < 4).all() and (full["epochs"] == 4).all()
    assert frame["epochs"].sum() < 8 * 4  # ASHA saved compute
    # stopped trials were the weaker ones at the rung where they stopped: none beats the best finished trial
    assert stopped["best/val/mean_auroc"].max() < full["best/val/mean_auroc"].max()
    for key in SEARCHED:
        assert key in frame.columns
    gradnorm = frame["weighting.name"] == "gradnorm"
    assert frame.loc[gradnorm, "weighting.params.alpha"].between(0.5, 2.0).all()
    assert frame.loc[~gradnorm, "weighting.params.alpha"].isna().all()
    assert frame["optim.lr"].between(1e-4, 3e-3).all()
    assert set(frame["model.fusion.name"]) <= {"concat", "late", "gated", "film"}
    assert (frame["best/val/mean_auroc"] >= frame["final/val/mean_auroc"] - 1e-12).all()


def test_results_dir_holds_predictions_and_a_runnable_best_config(asha_study):
    _, results, _, _ = asha_study
    frame = pd.read_parquet(results.paths.trials_parquet)
    for _, row in frame.iterrows():
        predictions = pq.read_table(row["predictions"])
        assert predictions.num_rows > 0 and "patient_id" in predictions.column_names
        config = yaml.safe_load((results.paths.trials_dir / row["trial"] / "config.yaml").read_text())
        assert config["model"]["fusion"]["name"] == row["model.fusion.name"]
    best = frame.loc[frame["best/val/mean_auroc"].idxmax()]
    cfg = load_run_config(results.paths.best_config)
    assert cfg.model.fusion.name == best["model.fusion.name"]
    assert cfg.weighting.name == best["weighting.name"]
    assert cfg.optim.lr == pytest.approx(best["optim.lr"])
    assert cfg.trainer.max_epochs == 4
    if best["weighting.name"] != "gradnorm":
        assert "alpha" not in cfg.weighting.params  # an inactive conditional key keeps the base value
    assert not list(results.paths.root.glob(".*.tmp"))  # no half-written outputs left behind


def test_every_trial_has_an_aim_run(asha_study):
    _, results, folder, _ = asha_study
    frame = pd.read_parquet(results.paths.trials_parquet)
    repo = folder / "aim"
    out = subprocess.run(
        [str(Path(sys.executable).parent / "aim"), "runs", "--repo", str(repo), "ls"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split()) - {"Total", "runs."}
    listed = {token for token in listed if len(token) == 24}
    # a `mmtune report` on this session-wide study (another test may run one) adds the study-level report run
    report_run = results.paths.root / REPORT_AIM_RUN_FILE
    if report_run.exists():
        listed -= {report_run.read_text(encoding="utf-8").strip()}
    assert set(frame["aim_hash"]) == listed
    assert len(listed) == 8


def test_a_second_start_of_the_same_study_is_refused(asha_study):
    space, _, folder, _ = asha_study
    with pytest.raises(StudyExistsError, match=r"exists; pass --resume to continue it or --name"):
        run_study(space, results_dir=folder / "results", trial_fn=curve_trial)


def test_impossible_resources_fail_fast_with_one_line(tmp_path, prepared_synthetic, ray_local, capsys):
    path = write_space(tmp_path, prepared_synthetic, resources={"workers": 1, "gpus_per_worker": 1})
    started = time.monotonic()
    with pytest.raises(SystemExit) as info:
        main(["tune", str(path), "--results", str(tmp_path / "results"), "--trainable", CURVE])
    assert info.value.code == 2
    assert time.monotonic() - started < 120
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "resources.gpus_per_worker: a worker needs 1 GPU on one node" in err
    assert "(ray.cluster_resources())" in err
    assert not (tmp_path / "results").exists()


def test_not_a_prepared_data_set_is_one_line(tmp_path, synthetic_raw, capsys):
    path = write_space(tmp_path, synthetic_raw)  # raw files, not the prepared Parquet
    with pytest.raises(SystemExit) as info:
        main(["tune", str(path), "--results", str(tmp_path / "results")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {synthetic_raw}: not a prepared data set (no manifest.json); run `mmtune data prepare` first"
    assert not (tmp_path / "results").exists()


def test_unreachable_address_exits_2_quickly(tmp_path, prepared_synthetic):
    path = write_space(tmp_path, prepared_synthetic)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "mmtune", "tune", str(path), "--address", "127.0.0.1:9", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == "error: --address 127.0.0.1:9: cannot reach 127.0.0.1:9 (Connection refused)"
    assert time.monotonic() - started < 90


@pytest.mark.slow
def test_real_trials_end_to_end(tmp_path, prepared_synthetic, ray_local):
    """``run_trial`` (Lightning inline) under the driver: metrics, Aim hashes and predictions per trial.

    ASHA with ``grace_period == max_t`` stops every trial at its last report (``max_t``): the final best-weights
    evaluation on val and test must already have run by then."""
    path = write_space(
        tmp_path,
        prepared_synthetic,
        name="real",
        space={
            "model.fusion.name": {"grid": ["concat", "late"]},
            "optim.lr": {"loguniform": [1.0e-3, 3.0e-3]},
        },
        scheduler={"name": "asha", "max_t": 2, "grace_period": 2},
        num_samples=1,
    )
    with pytest.raises(SystemExit) as done:  # the CLI, so its closing report is written too
        main(["tune", str(path), "--results", str(tmp_path / "results")])
    assert done.value.code in (0, None)
    root = tmp_path / "results" / "real"
    frame = pd.read_parquet(root / "trials.parquet")
    assert list(frame["status"]) == ["TERMINATED", "TERMINATED"], frame.get("error")
    assert sorted(frame["model.fusion.name"]) == ["concat", "late"]
    assert (frame["epochs"] == 2).all()
    assert frame["final/val/mean_auroc"].between(0, 1).all()
    assert frame["aim_hash"].str.len().eq(24).all()
    # per-epoch MTL diagnostics reach trials.parquet: task weights, shared-gradient norms, gradient cosine
    assert (frame["final/diag/covid/weight"] == 1.0).all()  # the base config's equal weighting
    assert (frame["final/diag/morbidity/grad_norm"] > 0).all()
    assert frame["final/diag/covid~morbidity/grad_cosine"].between(-1, 1).all()
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "aim"), "runs", "--repo", str(tmp_path / "aim"), "ls"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.split()
    assert set(frame["aim_hash"]) <= set(listed)  # each trial's run is in the study's Aim repo
    from mmtune.data.format import read_manifest

    shards = [prepared_synthetic / s for s in read_manifest(prepared_synthetic).shards]
    prepared_ids = {p for s in shards for p in pq.read_table(s)["patient_id"].to_pylist()}
    for _, row in frame.iterrows():
        ids = set(pq.read_table(row["predictions"])["patient_id"].to_pylist())
        assert ids and ids <= prepared_ids
        summary = json.loads((Path(row["trial_dir"]) / "metrics.json").read_text())
        assert summary["complete"] is True and summary["epochs"] == 2  # evaluated although Tune stopped it at max_t
        assert 0 <= summary["metrics"]["test/covid/auroc"] <= 1
        predictions = pd.read_parquet(row["predictions"])
        assert set(predictions["split"]) == {"val", "test"}
        assert set(predictions["modality_dropped"].dropna()) == {"clinical"}  # concat / late read both modalities
    assert load_run_config(root / "best_config.yaml").model.fusion.name in {"concat", "late"}
    report = (root / "report" / "report.md").read_text(encoding="utf-8")
    assert all(trial in report for trial in frame["trial"])  # the report ends the search and covers every trial
    assert report.startswith("# mmtune report: real\n\n## What the search found")  # the search analysis opens it
    assert "Importance of the dimensions not estimated: 2 usable trial(s)" in report  # too few, said not crashed
    factors = pd.read_parquet(root / "factors.parquet")
    assert set(factors.loc[factors["dimension"] == "model.fusion.name", "level"]) == {"concat", "late"}
    assert (factors["budget"] == 2).all() and (root / "importance.parquet").is_file()
    # issue 16: each finished trial's Aim run has its clinical figures and a slice montage; the report shows the
    # best configuration's calibration and operating point, and one study-level Aim run carries its tables
    from mmtune.tracking.aim import reindex
    from mmtune.tracking.aim_objects import sequences

    reindex(tmp_path / "aim")
    for run_hash in frame["aim_hash"]:
        names = {name for name, _ in sequences(tmp_path / "aim", run_hash, "images")}
        assert {"roc_pr", "calibration", "decision", "slices"} <= names
    assert "## Best configuration: calibration and operating point" in report and "## Model card" in report
    report_run = (root / "aim_report_run.txt").read_text().strip()
    assert ("best_configuration", {}) in sequences(tmp_path / "aim", report_run, "texts")


def test_optuna_search_with_async_hyperband(tmp_path, prepared_synthetic, ray_local):
    path = write_space(
        tmp_path,
        prepared_synthetic,
        name="tpe",
        search={"name": "optuna", "seed": 1},
        scheduler={"name": "hyperband", "max_t": 4, "grace_period": 1, "reduction_factor": 2},
        num_samples=6,
    )
    results = run_study(
        load_search_space(path), results_dir=tmp_path / "results", trial_fn=curve_trial, meta={"curve.aim": False}
    )
    frame = results.frame
    assert len(frame) == 6 and (frame["status"] == "TERMINATED").all()
    gradnorm = frame["weighting.name"] == "gradnorm"
    assert frame.loc[gradnorm, "weighting.params.alpha"].between(0.5, 2.0).all()
    assert frame.loc[~gradnorm, "weighting.params.alpha"].isna().all()  # Optuna never suggested it
    assert frame["optim.lr"].between(1e-4, 3e-3).all() and frame["optim.lr"].nunique() == 6
    assert ((frame["epochs"] == 4) | frame["stopped_early"]).all()
