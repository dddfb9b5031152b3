"""The trial-config contract: the keys of the dict a trial function receives, defined once.

The tuning side writes it (``mmtune.tuning.driver`` builds the param space, ``mmtune.tuning.trial_entry`` adds
the trial's name and directory); the training side reads it (``mmtune.training.trial.run_trial``, and the
learning-curve trainable ``mmtune.tuning.curve``). Both import the names from here, so neither spells a key.

* ``run``: the full run config (the base with the sampled values at their dotted keys); top-level dotted keys
  (``"model.fusion.name": "gated"``) are applied onto it;
* ``resources``: ``workers`` (default 1), ``cpus_per_worker`` (1), ``gpus_per_worker`` (0), ``use_gpu``,
  ``mode`` (``auto`` = inline for one worker, Ray Train otherwise; ``inline``; ``ray_train``);
* ``mmtune``: driver metadata (``metric``, ``mode``, ``searched`` keys, ``tune_dir``, ``started_at``, and
  test/benchmark options such as ``fault`` and ``curve``);
* ``study``, ``trial_name``, ``aim_repo`` (absolute; overrides ``run.tracking.aim_repo``), ``trial_dir`` or
  ``results_dir`` (artefacts go to ``trial_dir``, else ``results_dir/trials/<trial_name>``, else Tune's trial
  directory), ``train_storage_path`` (Ray Train runs; default ``<trial_dir>/ray_train``).

A conditional search key whose condition did not hold has the value ``INACTIVE`` in Tune's config;
``strip_inactive`` removes it before the trial runs (so it keeps the base value).
"""

from __future__ import annotations

from typing import Any

RUN_KEY = "run"
RESOURCES_KEY = "resources"
TRIAL_META_KEY = "mmtune"
STUDY_KEY = "study"
TRIAL_NAME_KEY = "trial_name"
AIM_REPO_KEY = "aim_repo"
TRIAL_DIR_KEY = "trial_dir"
RESULTS_DIR_KEY = "results_dir"
TRAIN_STORAGE_KEY = "train_storage_path"
META_KEYS = frozenset(
    {
        RUN_KEY,
        RESOURCES_KEY,
        STUDY_KEY,
        TRIAL_NAME_KEY,
        AIM_REPO_KEY,
        TRIAL_DIR_KEY,
        RESULTS_DIR_KEY,
        TRAIN_STORAGE_KEY,
        TRIAL_META_KEY,
    }
)

# keys of ``resources``
WORKERS = "workers"
CPUS_PER_WORKER = "cpus_per_worker"
GPUS_PER_WORKER = "gpus_per_worker"
USE_GPU = "use_gpu"
MODE = "mode"
WARM_WORKERS = "warm_workers"  # bool: Ray Train trials use prestarted, preloaded worker processes

# keys of the ``mmtune`` metadata
FAULT_KEY = "fault"  # {kill_at_epoch, marker}: SIGKILL the trial once after that epoch's checkpoint (tests)
TUNE_DIR_KEY = "tune_dir"

# keys the Ray Train trial passes its workers (``train_loop_config``) besides the ones above
NODE_CACHE_KEY = "node_cache"  # bool: workers map the per-node decoded cache (mmtune.data.node_cache)
TARGETS_KEY = (
    "targets"  # {metric: mode}: the study's metric beside trainer.monitor (a diverged epoch reports both worst)
)
STARTUP_KEY = "startup"  # {phase: wall-clock stamp}: the trial's start-up phases so far (bench search --overhead)

# keys a trial reports beside its metrics (``mmtune.training.divergence``); DIVERGED_KEY is a trials.parquet column
DIVERGED_KEY = "diverged"  # True at the epoch whose losses or scores were NaN / inf (the trial then stops)
REASON_KEY = "diverged_reason"  # which values were not finite (one short line)

# Value a conditional key gets in Tune's config when its condition does not hold; stripped before the trial runs.
INACTIVE = "__mmtune_inactive__"


def strip_inactive(config: Any) -> Any:
    """Drop keys whose value is ``INACTIVE`` (conditional keys whose condition did not hold)."""
    if isinstance(config, dict):
        return {k: strip_inactive(v) for k, v in config.items() if not (isinstance(v, str) and v == INACTIVE)}
    if isinstance(config, list):
        return [strip_inactive(v) for v in config]
    return config
