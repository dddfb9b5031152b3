"""Warm Ray Train worker processes (``mmtune.training.warm_workers``) in real Tune studies on the local Ray: with
``resources.warm_workers`` on, every trial's worker finds a process that already imported torch and Lightning (the
driver's batch for the first trial, the previous trial's replacement after it); turned off, none does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.tune import write_space
from mmtune.training.warm_workers import WARM_STAMP, serialized_worker_env


def _first_reports(folder: Path, prepared: Path, name: str, warm: bool, trials: int) -> list[dict[str, Any]]:
    """Each trial's first report of a Ray Train study that runs one trial at a time."""
    from mmtune.tuning.driver import run_study
    from mmtune.tuning.space import load_search_space
    from ray.tune.callback import Callback

    class FirstReports(Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            if result.get("training_iteration") == 1:
                self.rows.append({k: v for k, v in result.items() if k.startswith("startup/")})

    folder.mkdir(parents=True)
    space = write_space(
        folder,
        prepared,
        name=name,
        space={"optim.lr": {"choice": [1e-3, 2e-3][:trials]}},
        search={"name": "grid", "seed": 0},
        scheduler={"name": "fifo", "max_t": 1},
        num_samples=1,
        resources={"workers": 1, "cpus_per_worker": 1, "inline": False, "warm_workers": warm, "max_concurrent": 1},
    )
    collect = FirstReports()
    results = run_study(load_search_space(space), results_dir=folder / "results", live=False, callbacks=[collect])
    assert (results.frame["status"] == "TERMINATED").all(), results.frame[["status"]]
    return collect.rows


@pytest.mark.slow
def test_ray_train_trials_start_in_warm_processes_and_not_when_turned_off(
    prepared_synthetic: Path, tmp_path: Path, ray_local
) -> None:
    warm = _first_reports(tmp_path / "warm", prepared_synthetic, "warm", warm=True, trials=2)
    assert len(warm) == 2
    for row in warm:
        assert row[f"startup/{WARM_STAMP}"] == 1.0
        # torch, Lightning and mmtune's modules were imported before the trial asked for its worker
        assert row["startup/imports_done_at"] - row["startup/loop_entered_at"] < 0.5
    cold = _first_reports(tmp_path / "cold", prepared_synthetic, "cold", warm=False, trials=1)
    assert len(cold) == 1
    for row in cold:
        assert row[f"startup/{WARM_STAMP}"] == 0.0
        assert row["startup/imports_done_at"] - row["startup/loop_entered_at"] > 0.5  # a cold process imports


def test_the_predicted_worker_environment_is_compact_sorted_json_with_the_hook(monkeypatch) -> None:
    """Ray pools processes by the serialised environment string, so its exact form matters."""
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")  # a variable Ray Train propagates
    text = serialized_worker_env({"PL_DISABLE_FORK": "1"})
    assert " " not in text
    env_vars = json.loads(text)["env_vars"]
    assert list(env_vars) == sorted(env_vars)
    assert env_vars["PL_DISABLE_FORK"] == "1" and env_vars["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "0.2"
    assert env_vars["RAY_WARN_BLOCKING_GET_INSIDE_ASYNC"] == "0"
    assert env_vars["__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"] == "mmtune.training.warm_workers.preload"
