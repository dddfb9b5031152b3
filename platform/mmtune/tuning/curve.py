"""A learning-curve trial function: deterministic per config, cheap, and a real Tune function trainable.

It takes the same config as ``run_trial`` (``mmtune.tuning.trial_entry``) and exercises everything the driver
relies on, without training a network: one ``ray.tune.report`` per epoch with a checkpoint, the best epoch's
``predictions.parquet`` in ``trial_dir``, resume from ``ray.tune.get_checkpoint()``, an Aim run per trial (its hash
reported as ``aim_hash``), and test-only fault injection (the trial SIGKILLs its own process once).
The driver's tests and ``mmtune bench search --trainable curve`` use it; real studies use
``mmtune.training.trial.run_trial``.

The curve of a config rises from 0.5 toward a final value fixed by a hash of its searched values; slower
learners overtake faster ones late, as real curves do, so early stopping has something to get wrong.
Options live in ``config["mmtune"]["curve"]``: ``epoch_seconds`` (sleep per epoch, default 0), ``aim`` (default
true), ``log`` (a file that gets one line ``<trial_id> <start_epoch> <pid>`` per (re)start).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmtune.config.loading import get_dotted
from mmtune.results_files import PREDICTIONS_FILE
from mmtune.trial_config import (
    AIM_REPO_KEY,
    FAULT_KEY,
    RUN_KEY,
    STUDY_KEY,
    TRIAL_DIR_KEY,
    TRIAL_META_KEY,
    TRIAL_NAME_KEY,
)

STATE_FILE = "curve_state.json"


def curve_params(searched: Mapping[str, Any]) -> tuple[float, float]:
    """(final metric, learning rate of the curve) of a config: a stable hash of its searched values."""
    text = json.dumps({k: searched[k] for k in sorted(searched)}, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).digest()
    u1 = int.from_bytes(digest[:4], "big") / 2**32
    u2 = int.from_bytes(digest[4:8], "big") / 2**32
    final = 0.6 + 0.35 * u1
    lr = searched.get("optim.lr")
    if isinstance(lr, (int, float)) and lr > 0:
        final -= 0.04 * abs(math.log10(lr) + 3.0)  # best near 1e-3
    speed = 0.25 + 1.5 * u2
    return final, speed


def curve_value(final: float, speed: float, epoch: int) -> float:
    """Metric after ``epoch`` (1-based) epochs."""
    return 0.5 + (final - 0.5) * (1.0 - math.exp(-speed * epoch))


def curve_trial(config: dict[str, Any]) -> None:
    """Report one epoch per ``ray.tune.report`` (with a checkpoint) up to ``run.trainer.max_epochs``."""
    from ray import tune

    run_cfg = config[RUN_KEY]
    meta = dict(config.get(TRIAL_META_KEY) or {})
    options = dict(meta.get("curve") or {})
    metric = meta.get("metric") or run_cfg["trainer"]["monitor"]
    better = (lambda a, b: a > b) if meta.get("mode", "max") == "max" else (lambda a, b: a < b)
    searched = {key: get_dotted(run_cfg, key) for key in meta.get("searched", [])}
    final, speed = curve_params(searched)
    max_epochs = int(run_cfg["trainer"]["max_epochs"])
    trial_dir = Path(config[TRIAL_DIR_KEY]) if config.get(TRIAL_DIR_KEY) else None

    start, best = 0, None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = json.loads((Path(folder) / STATE_FILE).read_text())
            start, best = int(state["epoch"]), state.get("best")
    if options.get("log"):
        with open(options["log"], "a", encoding="utf-8") as handle:
            handle.write(f"{meta.get('trial_id')} {start} {os.getpid()}\n")

    run = _aim_run(config, searched) if options.get("aim", True) else None
    first_step_at = time.time()
    for epoch in range(start + 1, max_epochs + 1):
        time.sleep(float(options.get("epoch_seconds", 0.0)))
        value = curve_value(final, speed, epoch)
        if best is None or better(value, best):
            best = value
            if trial_dir is not None:
                trial_dir.mkdir(parents=True, exist_ok=True)
                _write_predictions(trial_dir / PREDICTIONS_FILE, final, epoch)
        metrics: dict[str, Any] = {
            metric: value,
            "train/loss": 1.0 - value,
            "epoch": epoch,
            "first_step_at": first_step_at,
            "started_at": meta.get("started_at", first_step_at),
            "resumed_from": start,
        }
        if run is not None:
            name, context = _aim_name(metric)
            run.track(value, name=name, epoch=epoch, context=context)
            metrics["aim_hash"] = run.hash
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / STATE_FILE).write_text(json.dumps({"epoch": epoch, "best": best}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        _maybe_fault(meta, epoch)
    if run is not None:
        run.close()


def _aim_name(metric: str) -> tuple[str, dict[str, str]]:
    parts = metric.split("/")
    return parts[-1], ({"subset": parts[0]} if len(parts) > 1 else {})


def _aim_run(config: Mapping[str, Any], searched: Mapping[str, Any]) -> Any:
    repo = config.get(AIM_REPO_KEY) or get_dotted(config[RUN_KEY], "tracking.aim_repo")
    if not repo:
        return None
    from aim import Run

    study = str(config.get(STUDY_KEY) or config[RUN_KEY]["tracking"]["experiment"])
    trial = str(config.get(TRIAL_NAME_KEY) or config[RUN_KEY].get("name"))
    run = Run(repo=repo, experiment=study)
    run.name = trial
    run["hparams"] = {
        k: v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for k, v in searched.items()
    }
    run["tags_map"] = {"study": study, "trial": trial}
    run.add_tag(f"study:{study}")
    run.add_tag(f"trial:{trial}")
    return run


def _write_predictions(path: Path, final: float, epoch: int) -> None:
    """Per-patient scores of a pretend validation split (the columns the real trial writes)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(epoch)
    n = 16
    labels = np.arange(n) % 2
    scores = np.clip(labels * (final - 0.5) + rng.uniform(0, 1, n) * 0.5, 0, 1)
    table = pa.table(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "split": ["val"] * n,
            "y_covid": labels.astype("int64"),
            "p_covid": scores.astype("float32"),
        }
    )
    pq.write_table(table, path)


def _maybe_fault(meta: Mapping[str, Any], epoch: int) -> None:
    """Test-only: kill this trial's process (a real SIGKILL) once, right after checkpointing ``kill_at_epoch``."""
    fault = meta.get(FAULT_KEY) or {}
    if not fault or int(fault.get("kill_at_epoch", -1)) != epoch:
        return
    marker = Path(fault["marker"])
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, f"{meta.get('trial_id')} {os.getpid()}\n".encode())
    os.close(fd)
    time.sleep(0.5)  # let the checkpoint reach the driver before the process dies
    os.kill(os.getpid(), signal.SIGKILL)
