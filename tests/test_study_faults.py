"""A search you can trust under faults (issue 11, items 1-4), on the session's real local Ray with real signals
(``os.kill`` on a ``mmtune tune`` subprocess), a real NaN (a learning rate of 1e6) and real trial failures.

Each test reproduces a row of the issue's table that main got wrong: resuming a space with ``when:`` keys,
SIGTERM, a diverging config winning, failed trials exiting 0, two writers on one study, ``report`` on a running
study, and a resumed trial drifting from an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers.tune import CURVE, result_epochs, write_space
from mmtune.cli import main
from mmtune.tuning.curve import curve_trial
from mmtune.tuning.driver import run_study
from mmtune.tuning.space import load_search_space


def _cli(tmp_path: Path, path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mmtune", "tune", str(path), "--results", str(tmp_path / "results"), *extra]


def _finished(tune_dir: Path, epochs: int) -> set[str]:
    if not tune_dir.is_dir():
        return set()
    return {d.name for d in tune_dir.iterdir() if d.is_dir() and result_epochs(d)[-1:] == [epochs]}


def _start(command: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0.5"}
    return subprocess.Popen(
        command, cwd=cwd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None and not predicate():
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1][-3000:]
    assert predicate(), "timed out"


def _end(process: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:  # the driver's own local Ray shares its session: end what is left of it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return out, err


# ---------------------------------------------------------------------------------------------------- item 2


@pytest.mark.slow
def test_a_diverging_trial_is_stopped_marked_and_never_best(tmp_path, prepared_synthetic, ray_local, capsys):
    """On main lr 1e6 gave NaN losses and scores, val/mean_auroc 0.5, and best_config.yaml got lr 1e6."""
    path = write_space(
        tmp_path,
        prepared_synthetic,
        name="nan",
        space={"optim.lr": {"grid": [1.0e6, 1.0e-3]}},
        scheduler={"name": "asha", "max_t": 2, "grace_period": 2},
        num_samples=1,
    )
    with pytest.raises(SystemExit) as info:
        main(["tune", str(path), "--results", str(tmp_path / "results")])
    root = tmp_path / "results" / "nan"
    err = capsys.readouterr().err
    assert info.value.code == 3, err
    assert "1 of 2 trials diverged" in err and f"logs: {root / 'tune'}" in err
    frame = pd.read_parquet(root / "trials.parquet").set_index("optim.lr")
    assert bool(frame.loc[1.0e6, "diverged"]) and not bool(frame.loc[1.0e-3, "diverged"])
    assert frame.loc[1.0e6, "epochs"] == 1  # stopped at the epoch it diverged
    assert pd.isna(frame.loc[1.0e6, "best/val/mean_auroc"])
    assert frame.loc[1.0e6, "error"].startswith("non-finite ")
    assert yaml.safe_load((root / "best_config.yaml").read_text())["optim"]["lr"] == 1.0e-3
    report = (root / "report" / "report.md").read_text(encoding="utf-8")
    assert "2 trials: 1 usable, 1 diverged (usable = complete, finite metrics)" in report
    diverged = frame.loc[1.0e6, "trial"]
    assert f"| {diverged} | diverged | TERMINATED | non-finite " in report


# ---------------------------------------------------------------------------------------------------- item 3


def test_failed_trials_exit_3_and_say_where_the_logs_are(tmp_path, prepared_synthetic, ray_local, capsys):
    """On main a study whose trials failed (Tune ERROR) counted them as finished and exited 0."""
    path = write_space(
        tmp_path,
        prepared_synthetic,
        name="failing",
        space={"model.fusion.name": {"grid": ["concat", "late"]}},
        scheduler={"name": "fifo", "max_t": 2},
        num_samples=1,
        max_failures=0,
    )
    marker = tmp_path / "killed.txt"
    with pytest.raises(SystemExit) as info:
        main(
            [
                *("tune", str(path), "--results", str(tmp_path / "results"), "--trainable", CURVE, "--no-report"),
                *("--trial-option", "curve.aim=false", "--trial-option", "fault.kill_at_epoch=1"),
                *("--trial-option", f"fault.marker={marker}"),
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 3, err
    root = tmp_path / "results" / "failing"
    assert f"study failing: 1 of 2 trials failed; logs: {root / 'tune'} (<trial>/error.txt" in err
    frame = pd.read_parquet(root / "trials.parquet")
    assert sorted(frame["status"]) == ["ERROR", "TERMINATED"]
    failed = frame.loc[frame["status"] == "ERROR", "trial"].item()
    assert (root / "tune" / failed / "error.txt").is_file()
    assert frame.loc[frame["status"] == "TERMINATED", "trial"].item() in (root / "best_config.yaml").read_text()


# ---------------------------------------------------------------------------------------------------- item 1


@pytest.mark.slow
def test_a_resumed_trial_matches_an_uninterrupted_one(tmp_path, prepared_synthetic, ray_local):
    """Two identical real trials; one is SIGKILLed after its epoch-1 checkpoint and resumes in a new process.
    On main the resumed one drew fresh random streams (0.4815 vs 0.4352 at the same epoch)."""
    path = write_space(
        tmp_path,
        prepared_synthetic,
        name="parity",
        space={"optim.lr": {"grid": [2.0e-3]}},
        scheduler={"name": "fifo", "max_t": 3},
        num_samples=2,
        max_failures=1,
    )
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["base"]["data"]["augment"] = True  # augmentation and the shuffle both draw random numbers
    doc["base"]["tracking"]["aim_repo"] = None
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    marker = tmp_path / "killed.txt"
    meta = {"fault.kill_at_epoch": 1, "fault.marker": str(marker)}
    results = run_study(load_search_space(path), results_dir=tmp_path / "results", meta=meta)
    killed_pid = int(marker.read_text().split()[0])
    frame = results.frame.set_index("trial")
    assert (frame["status"] == "TERMINATED").all() and (frame["epochs"] == 3).all()
    histories = {}
    for trial in frame.index:
        lines = (results.paths.tune_dir / trial / "result.json").read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        histories[trial] = {r["training_iteration"]: r for r in rows}
    resumed = [t for t, h in histories.items() if h[3]["pid"] != killed_pid and h[1]["pid"] == killed_pid]
    assert len(resumed) == 1, {t: [h[e]["pid"] for e in h] for t, h in histories.items()}
    other = next(t for t in histories if t != resumed[0])
    for epoch in (2, 3):
        for key in ("train/loss", "val/loss", "val/mean_auroc"):
            a, b = histories[resumed[0]][epoch][key], histories[other][epoch][key]
            assert a == pytest.approx(b, rel=1e-6, abs=1e-7), (epoch, key, a, b)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_state_and_resume_finishes_a_when_space(tmp_path, prepared_synthetic, ray_local, signum):
    """The shipped kind of space (random search, a ``when:`` key). On main, after the resume every trial created
    later failed with Ray's unresolved ``('__fn_ph', ...)`` placeholder as its config, and the run exited 0; a
    SIGTERM died with Ray's C++ stack dump, exit 1, no resume hint, nothing written."""
    path = write_space(tmp_path, prepared_synthetic, name="sig", scheduler={"name": "fifo", "max_t": 3}, num_samples=8)
    log = tmp_path / "starts.log"
    options = ("curve.epoch_seconds=0.5", f"curve.log={log}", "curve.aim=false")
    command = _cli(tmp_path, path, "--num-cpus", "2", "--trainable", CURVE, "--no-report")
    for option in options:
        command += ["--trial-option", option]
    driver = _start(command, tmp_path)
    tune_dir = tmp_path / "results" / "sig" / "tune"
    _wait_for(lambda: len(_finished(tune_dir, 3)) >= 2, driver)
    time.sleep(1.0)
    os.kill(driver.pid, signum)
    _, err = _end(driver)
    assert driver.returncode == 128 + signum, err[-3000:]
    root = tmp_path / "results" / "sig"
    name = signal.Signals(signum).name
    assert f"study sig: stopped by {name}; Tune's state is saved; continue it with: mmtune tune {path} --resume" in err
    assert "Traceback" not in err and "*** SIGTERM received" not in err
    frame = pd.read_parquet(root / "trials.parquet")  # the results of what finished are written
    assert 2 <= (frame["status"] == "TERMINATED").sum() < 8
    best = yaml.safe_load((root / "best_config.yaml").read_text().split("\n", 2)[2])
    header = (root / "best_config.yaml").read_text().splitlines()[0]
    assert frame.set_index("trial").loc[header.split()[3], "status"] == "TERMINATED"  # only complete trials win
    assert best["trainer"]["max_epochs"] == 3
    assert not (root / "study.lock").exists()
    if signum == signal.SIGINT:
        return

    results = run_study(load_search_space(path), results_dir=tmp_path / "results", resume=True, trial_fn=curve_trial)
    frame = results.frame
    assert len(frame) == 8 and (frame["status"] == "TERMINATED").all(), frame[["trial", "status", "error"]]
    assert (frame["epochs"] == 3).all()
    for trial in frame["trial"]:
        config = (root / "trials" / trial / "config.yaml").read_text()
        assert "__fn_ph" not in config
    gradnorm = frame[frame["weighting.name"] == "gradnorm"]
    assert gradnorm["weighting.params.alpha"].between(0.5, 2.0).all()  # the when: key was drawn, not a placeholder


# ---------------------------------------------------------------------------------------------------- item 4


@pytest.mark.slow
def test_one_writer_per_study_and_a_stale_lock_is_explained(tmp_path, prepared_synthetic, ray_local, capsys):
    """On main two runs of one study both ran (two experiment states in tune/, trials missing from
    trials.parquet), and ``report`` on a running study said "not a results directory"."""
    path = write_space(
        tmp_path,
        prepared_synthetic,
        name="busy",
        space={"model.fusion.name": {"grid": ["concat", "late"]}},
        scheduler={"name": "fifo", "max_t": 40},
        num_samples=1,
    )
    command = _cli(tmp_path, path, "--num-cpus", "2", "--trainable", CURVE, "--no-report")
    command += ["--trial-option", "curve.epoch_seconds=0.5", "--trial-option", "curve.aim=false"]
    driver = _start(command, tmp_path)
    root = tmp_path / "results" / "busy"
    try:
        _wait_for(lambda: (root / "study.lock").is_file(), driver)
        holder = json.loads((root / "study.lock").read_text())
        assert holder["pid"] == driver.pid and holder["host"]
        for argv in (
            ["tune", str(path), "--results", str(tmp_path / "results"), "--trainable", CURVE],
            ["tune", str(path), "--results", str(tmp_path / "results"), "--resume"],
        ):
            with pytest.raises(SystemExit) as info:
                main(argv)
            assert info.value.code == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and err.startswith(
                f"error: {root}: study is being run by pid {driver.pid}"
            )
        with pytest.raises(SystemExit) as info:
            main(["report", str(root)])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {root}: study busy is still running (pid {driver.pid} on ")
        _wait_for(lambda: bool(list((root / "tune").glob("experiment_state-*.json"))), driver)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver dies without releasing its lock
        _end(driver)
    with pytest.raises(SystemExit) as info:
        main(["tune", str(path), "--results", str(tmp_path / "results"), "--resume", "--trainable", CURVE])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    lock = root / "study.lock"
    assert err == (
        f"error: {lock}: stale lock (pid {driver.pid} on {holder['host']}, started "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder['started']))}; that process is gone). If no "
        f"mmtune run uses this study, remove it (rm {lock}) and run again with --resume"
    )
    assert len(list((root / "tune").glob("experiment_state-*.json"))) == 1  # one experiment, one writer
