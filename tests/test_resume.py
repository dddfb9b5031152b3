"""Faults with real process kills: a SIGKILLed driver resumes without re-running finished trials, and a trial
whose worker process is SIGKILLed continues from its last checkpoint (``FailureConfig``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers.tune import CURVE, result_epochs, trial_starts, write_space
from mmtune.tuning.curve import curve_trial
from mmtune.tuning.driver import run_study
from mmtune.tuning.space import load_search_space

FIFO_SPACE = {
    "model.fusion.name": {"grid": ["concat", "late", "gated"]},
    "weighting.name": {"grid": ["equal", "uncertainty"]},
}


def _finished_trials(tune_dir: Path, epochs: int) -> set[str]:
    return {d.name for d in tune_dir.iterdir() if d.is_dir() and result_epochs(d)[-1:] == [epochs]}


@pytest.mark.slow
def test_resume_after_the_driver_is_killed(tmp_path, prepared_synthetic, ray_local):
    path = write_space(
        tmp_path,
        prepared_synthetic,
        name="killed",
        space=FIFO_SPACE,
        scheduler={"name": "fifo", "max_t": 3},
        num_samples=1,
    )
    log = tmp_path / "starts.log"
    command = [
        *(sys.executable, "-m", "mmtune", "tune", str(path), "--results", str(tmp_path / "results")),
        *("--num-cpus", "2", "--trainable", CURVE),
        *("--trial-option", "curve.epoch_seconds=0.7", "--trial-option", f"curve.log={log}"),
        *("--trial-option", "curve.aim=false"),
    ]
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0.5"}  # snapshot Tune's state often
    driver = subprocess.Popen(
        command, cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    tune_dir = tmp_path / "results" / "killed" / "tune"
    finished_before: set[str] = set()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None and len(finished_before) < 2:
            finished_before = _finished_trials(tune_dir, 3) if tune_dir.is_dir() else set()
            time.sleep(0.2)
        assert driver.poll() is None, driver.stderr.read().decode() if driver.stderr else ""
        time.sleep(1.5)  # Tune snapshots its state every 0.5 s here: the snapshot knows these trials finished
        reported_before = {d.name: result_epochs(d) for d in tune_dir.iterdir() if d.is_dir()}
        os.kill(driver.pid, signal.SIGKILL)  # the driver dies without any chance to clean up
        driver.wait(timeout=30)
    finally:
        # The killed driver's own local Ray (raylet, GCS, agents) shares its process group: end it too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL
    assert 2 <= len(finished_before) < 6
    assert not (tmp_path / "results" / "killed" / "trials.parquet").exists()
    starts_before = trial_starts(log)
    lock = tmp_path / "results" / "killed" / "study.lock"
    assert lock.is_file()  # a SIGKILLed driver leaves its lock: reported as stale, cleared by hand (test_study_faults)
    lock.unlink()

    results = run_study(load_search_space(path), results_dir=tmp_path / "results", resume=True, trial_fn=curve_trial)

    frame = pd.read_parquet(results.paths.trials_parquet)
    assert len(frame) == 6 and (frame["status"] == "TERMINATED").all() and (frame["epochs"] == 3).all()
    starts = trial_starts(log)
    for trial in finished_before:  # finished trials were not run again
        assert starts[trial] == starts_before[trial], trial
    for trial in frame["trial"]:
        epochs = result_epochs(tune_dir / trial)
        assert epochs[-1] == 3 and set(epochs) == {1, 2, 3}, (trial, epochs)
        if 2 <= len(reported_before.get(trial, [])) < 3:  # mid-way at the kill: resumed from a checkpoint
            assert len(starts[trial]) == 2 and starts[trial][-1][0] >= 1, (trial, starts[trial])


def test_a_killed_trial_worker_continues_from_its_checkpoint(tmp_path, prepared_synthetic, ray_local):
    path = write_space(
        tmp_path,
        prepared_synthetic,
        name="fault",
        space={"model.fusion.name": {"grid": ["concat", "late"]}},
        scheduler={"name": "fifo", "max_t": 4},
        num_samples=1,
        max_failures=1,
    )
    log, marker = tmp_path / "starts.log", tmp_path / "killed.txt"
    meta = {"curve.log": str(log), "curve.aim": False, "fault.kill_at_epoch": 2, "fault.marker": str(marker)}
    results = run_study(load_search_space(path), results_dir=tmp_path / "results", trial_fn=curve_trial, meta=meta)

    killed_trial, killed_pid = marker.read_text().split()
    starts = trial_starts(log)
    assert [s for s, _ in starts[killed_trial]] == [0, 2]  # restarted once, from the epoch-2 checkpoint
    assert starts[killed_trial][0][1] == int(killed_pid) != starts[killed_trial][1][1]  # in a new process
    frame = results.frame.set_index("trial")
    assert (frame["status"] == "TERMINATED").all() and (frame["epochs"] == 4).all()
    assert result_epochs(results.paths.tune_dir / killed_trial) == [1, 2, 3, 4]
    other = next(t for t in frame.index if t != killed_trial)
    assert [s for s, _ in starts[other]] == [0]
