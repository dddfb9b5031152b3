"""What runs first in every trial process: turn Tune's config into the dict the trial function expects.

The contract with the trial function (``mmtune.training.trial.run_trial``, or the learning-curve trainable
``mmtune.tuning.curve.curve_trial``) is :mod:`mmtune.trial_config`:

* ``run``: the full run config (the base with the sampled values at their dotted keys; conditional keys whose
  condition did not hold are removed, so they keep the base value), ``name`` = the trial name;
* ``resources``: ``workers``, ``cpus_per_worker``, ``gpus_per_worker``, ``mode`` (``inline`` or ``ray_train``);
* ``study``, ``trial_name``, ``aim_repo`` (absolute), ``trial_dir`` (Tune's trial directory on the study's
  storage: ``predictions.parquet`` and ``metrics.json`` of the best epoch go there);
* ``mmtune``: driver metadata (``metric``, ``mode``, ``searched`` keys, ``tune_dir``, ``started_at`` =
  ``time.time()`` when the trial process got its config, and test/benchmark options such as ``fault``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmtune.trial_config import (
    RUN_KEY,
    TRIAL_DIR_KEY,
    TRIAL_META_KEY,
    TRIAL_NAME_KEY,
    TUNE_DIR_KEY,
    strip_inactive,
)


def prepare_trial_config(config: dict[str, Any], trial_name: str, trial_id: str) -> dict[str, Any]:
    """The dict a trial function receives (see the module docstring)."""
    started = time.time()
    out = strip_inactive(config)
    meta = dict(out.get(TRIAL_META_KEY) or {})
    meta.update(trial_id=trial_id, started_at=started)
    out[TRIAL_META_KEY] = meta
    out[TRIAL_NAME_KEY] = trial_name
    if meta.get(TUNE_DIR_KEY) and not out.get(TRIAL_DIR_KEY):
        out[TRIAL_DIR_KEY] = str(Path(meta[TUNE_DIR_KEY]) / trial_id)
    run = dict(out.get(RUN_KEY) or {})
    run["name"] = trial_name
    out[RUN_KEY] = run
    return out


def make_trainable(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """Wrap a trial function so it receives ``prepare_trial_config``'s dict (same ``__name__`` for Tune)."""

    @functools.wraps(fn)
    def trial(config: dict[str, Any]) -> Any:
        from ray import tune

        context = tune.get_context()
        return fn(prepare_trial_config(config, context.get_trial_name(), context.get_trial_id()))

    return trial
