"""The Ray Tune trial function inside real Tune runs: per-epoch reports with checkpoints, resume after the trial
process is SIGKILLed, the trial's artefacts, and a 2-worker Ray Train (DDP) trial reporting the same metric keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mmtune.config.loading import apply_overrides, load_yaml
from mmtune.training.trial import run_trial, trial_resources

REPO = Path(__file__).resolve().parents[1]


def _run_config(prepared: Path, aim: Path, epochs: int) -> dict[str, Any]:
    run = load_yaml(REPO / "configs" / "multitask.yaml")
    return apply_overrides(
        run,
        {
            "data.path": str(prepared),
            "tracking.aim_repo": str(aim),
            "trainer.max_epochs": epochs,
            "trainer.progress": False,
        },
    )


def _tune(config: dict[str, Any], storage: Path, name: str, max_failures: int = 0) -> tuple[Any, list[dict], int]:
    """One real Tune experiment of ``run_trial``; every reported result and the number of Tune checkpoints."""
    from ray import tune

    results: list[dict] = []
    checkpoints: list[Any] = []

    class Collect(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            results.append(dict(result))

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            checkpoints.append(checkpoint)

    tuner = tune.Tuner(
        tune.with_resources(run_trial, trial_resources(config["resources"])),
        param_space=config,
        tune_config=tune.TuneConfig(metric="val/mean_auroc", mode="max", num_samples=1),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            callbacks=[Collect()],
            failure_config=tune.FailureConfig(max_failures=max_failures),
            verbose=0,
        ),
    )
    grid = tuner.fit()
    assert not grid.errors, grid.errors
    return grid[0], results, len(checkpoints)


@pytest.mark.slow
def test_inline_trial_reports_each_epoch_with_a_checkpoint_and_resumes_after_a_kill(
    prepared_synthetic: Path, tmp_path: Path, ray_local
) -> None:
    marker = tmp_path / "killed.txt"
    config = {
        "run": _run_config(prepared_synthetic, tmp_path / "aim", epochs=3),
        "resources": {"workers": 1, "cpus_per_worker": 1},
        "study": "trial_test",
        "model.fusion.name": "gated",  # a sampled value beside ``run`` is applied to it
        "mmtune": {"fault": {"kill_at_epoch": 2, "marker": str(marker)}},
    }
    result, reports, n_checkpoints = _tune(config, tmp_path / "tune", "inline", max_failures=1)

    assert marker.is_file(), "the trial process was not killed"
    epochs = [r["epoch"] for r in reports]
    assert epochs[-1] == 3 and sorted(set(epochs)) == [1, 2, 3]
    assert epochs.count(1) == 1, "the restarted trial began again from epoch 1 instead of its checkpoint"
    assert n_checkpoints == len(reports) >= 3  # every report came with a checkpoint
    for report in reports:
        assert {"train/loss", "train/covid/loss", "val/covid/auroc", "val/morbidity/auroc", "val/mean_auroc"} <= set(
            report
        )
    hashes = {r["aim_hash"] for r in reports}
    assert len(hashes) == 1 and len(hashes.pop()) == 24  # the resumed trial kept its Aim run

    trial_dir = Path(result.path)
    summary = json.loads((trial_dir / "metrics.json").read_text())
    assert summary["epochs"] == 3 and summary["path"] == "inline" and summary["study"] == "trial_test"
    assert summary["complete"] is True and (trial_dir / "best.ckpt").is_file()
    best = max(reports, key=lambda r: r["val/mean_auroc"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["metrics"]["val/mean_auroc"] == pytest.approx(best["val/mean_auroc"], abs=1e-6)
    assert "test/covid/auroc" in summary["metrics"] and "test_no_clinical/covid/auroc" in summary["metrics"]
    predictions = pd.read_parquet(trial_dir / "predictions.parquet")
    plain = predictions[predictions["modality_dropped"].isna()]
    assert set(plain["split"]) == {"val", "test"} and plain["patient_id"].is_unique


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["memory", "node", "ray_data"])
def test_two_worker_ray_train_trial_reports_the_same_metric_keys(
    prepared_synthetic: Path, tmp_path: Path, ray_local, cache: str
) -> None:
    """``memory``: each worker reads the data and takes its rank's rows; ``node``: each worker maps the node cache,
    its rank's rows; ``ray_data``: Ray Data shards the train split."""
    run = _run_config(prepared_synthetic, tmp_path / "aim", epochs=2)
    run["data"]["cache"] = cache
    config = {"run": run, "resources": {"workers": 2, "cpus_per_worker": 0.5}, "study": "trial_test"}
    try:
        result, reports, _ = _tune(config, tmp_path / "tune", "ray_train")
    finally:
        if cache == "node":  # the trial's workers use the default cache dir (Ray's environment, not this test's)
            import shutil

            from mmtune.config.run import DataConfig
            from mmtune.data.loading import resolve_data
            from mmtune.data.node_cache import entry_dir

            names = [t if isinstance(t, str) else t["name"] for t in run["tasks"]]
            info = resolve_data(DataConfig(**run["data"]), names)
            shutil.rmtree(entry_dir(info), ignore_errors=True)
            entry_dir(info).with_suffix(".lock").unlink(missing_ok=True)

    assert [r["epoch"] for r in reports] == [1, 2]
    for report in reports:
        assert Path(report["checkpoint_path"]).is_dir()  # Ray Train checkpoints every reported epoch
        assert len(report["aim_hash"]) == 24
    keys = {k for k in reports[-1] if k.startswith(("train/", "val/"))}
    assert {"train/loss", "train/covid/loss", "val/covid/auroc", "val/morbidity/auroc_type_i", "val/mean_auroc"} <= keys
    trial_dir = Path(result.path)
    summary = json.loads((trial_dir / "metrics.json").read_text())
    assert summary["path"] == "ray_train" and summary["epochs"] == 2 and summary["complete"] is True
    assert "test/covid/auroc" in summary["metrics"]
    predictions = pd.read_parquet(trial_dir / "predictions.parquet")
    plain = predictions[predictions["modality_dropped"].isna()]
    n_val_test = len(plain)
    assert plain["patient_id"].is_unique and n_val_test > 0
