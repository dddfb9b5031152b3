"""The one study lifecycle of ``mmtune tune`` and ``mmtune ablate``: validate everything, connect to Ray, run (or
resume) the study, write its results. What differs between a search and an ablation is the plan's
(``mmtune.tuning.plan.StudyPlan``).

Order matters: every check that needs no cluster runs first (the file, key paths, registries, data), then Ray is
joined or started, then the resources are compared with what the cluster has, and only then is anything
submitted. Trials are ``tune.with_resources(trial_fn, ...)`` function trainables; ``trial_fn`` defaults to
``mmtune.training.trial.run_trial`` and receives the dict described in ``mmtune.tuning.trial_entry``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mmtune.atomic import atomic_write_text
from mmtune.console import err_console, warn
from mmtune.errors import UserError
from mmtune.study_lock import check_unlocked, study_lock
from mmtune.trial_config import (
    AIM_REPO_KEY,
    CPUS_PER_WORKER,
    GPUS_PER_WORKER,
    MODE,
    RESOURCES_KEY,
    STUDY_KEY,
    TRIAL_META_KEY,
    TUNE_DIR_KEY,
    WARM_WORKERS,
    WORKERS,
)
from mmtune.tuning.data import ensure_data, plan_data
from mmtune.tuning.interrupt import graceful_stop
from mmtune.tuning.plan import StudyPlan, as_plan
from mmtune.tuning.results import StudyPaths, StudyResults
from mmtune.tuning.space import SearchSpace

TrialFn = Callable[[dict[str, Any]], Any]
CONNECT_TIMEOUT_S = 5.0
TRIAL_OPTIONS_FILE = "mmtune_trial_options.json"  # in tune/: --trial-option of the start, reused by --resume


class ClusterError(UserError):
    """The Ray cluster cannot be reached or cannot run the study."""


class StudyExistsError(UserError):
    """A fresh study would overwrite an existing one (or there is nothing to resume)."""


def default_trial_fn() -> TrialFn:
    """``mmtune.training.trial.run_trial``: one worker inline, several as a Ray Train ``TorchTrainer``."""
    from mmtune.training.trial import run_trial

    return run_trial


def load_trial_fn(spec: str) -> TrialFn:
    """``module:function`` -> the function (``--trainable``; e.g. ``mmtune.tuning.curve:curve_trial``)."""
    import importlib

    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name or "run_trial")
    except (ImportError, AttributeError) as exc:
        raise UserError(f"--trainable {spec}: cannot import it ({exc})") from None


# ---------------------------------------------------------------------------------------------------- Ray


def _check_reachable(address: str) -> None:
    """Fail in seconds with one line instead of Ray's long retry loop when nothing listens at ``address``."""
    parsed = urlparse(address if "://" in address else f"gcs://{address}")
    host = parsed.hostname
    port = parsed.port or (10001 if parsed.scheme == "ray" else 6379)
    if not host:
        raise ClusterError(f"--address {address}: expected local, auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ClusterError(f"--address {address}: cannot reach {host}:{port} ({exc.strerror or exc})") from None


def connect(address: str | None, verbose: bool = False, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` or start a local Ray; True when this call started Ray (and must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    from mmtune.training.trial import LOCAL_RAY_ENV, RAY_ENV

    address = address or "local"
    # before Ray starts (a local cluster's processes inherit them); Tune also hands these to its trials, and they
    # to Ray Train's controller
    for key, value in {**RAY_ENV, **(LOCAL_RAY_ENV if address == "local" else {})}.items():
        os.environ.setdefault(key, value)
    kwargs: dict[str, Any] = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.WARNING}
    if address == "local":
        kwargs.update(include_dashboard=True, dashboard_host="127.0.0.1", num_cpus=num_cpus)
    elif address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError) as exc:
        raise ClusterError(f"--address {address}: {str(exc).splitlines()[0]}") from None
    return True


def init_aim_repo(path: str | None) -> None:
    """Create the Aim repo once in the driver, so concurrent trials never race to initialise it.

    A remote repo (``aim://host:port``, an ``aim server`` on a cluster's head) already exists.
    """
    if not path or "://" in path:
        return
    from aim import Repo

    Path(path).mkdir(parents=True, exist_ok=True)
    if not Repo.exists(path):
        Repo.from_path(path, init=True)


# ---------------------------------------------------------------------------------------------------- study


def _trial_name(trial: Any) -> str:
    return str(trial.trial_id)


def study_paths(study: StudyPlan | SearchSpace, results_dir: str | Path) -> StudyPaths:
    return StudyPaths(Path(results_dir).expanduser().resolve() / study.name)


def trial_fields(study: StudyPlan, paths: StudyPaths, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything in a trial's Tune config beside ``run`` (see ``mmtune.tuning.trial_entry``)."""
    res = study.config.resources
    meta: dict[str, Any] = {
        "metric": study.metric,
        "mode": study.mode,
        "searched": list(study.searched),
        TUNE_DIR_KEY: str(paths.tune_dir),
    }
    for key, value in (extra or {}).items():
        node = meta
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return {
        STUDY_KEY: study.name,
        AIM_REPO_KEY: study.base["tracking"].get("aim_repo"),
        RESOURCES_KEY: {
            WORKERS: res.workers,
            CPUS_PER_WORKER: res.cpus_per_worker,
            GPUS_PER_WORKER: res.gpus_per_worker,
            MODE: "inline" if res.runs_inline else "ray_train",
            WARM_WORKERS: res.warm_workers,
        },
        TRIAL_META_KEY: meta,
    }


def run_study(
    study: StudyPlan | SearchSpace,
    *,
    results_dir: str | Path = "results",
    address: str | None = "local",
    resume: bool = False,
    trial_fn: TrialFn | None = None,
    meta: Mapping[str, Any] | None = None,
    verbose: bool = False,
    live: bool = True,
    num_cpus: int | None = None,
    callbacks: list[Any] | None = None,
) -> StudyResults:
    """Run a study (a search space or an ablation, see ``mmtune.tuning.plan``), or ``resume`` it, and write
    ``results/<study>/``; returns the results.

    Every check that needs no cluster runs before Ray starts (the data-dependent ones too when the data are
    prepared); ``callbacks`` are extra Tune callbacks (benchmarks record timings with them).
    """
    plan = as_plan(study)
    started_at = time.time()
    paths = study_paths(plan, results_dir)
    check_unlocked(paths.root)
    _check_start(plan, paths, resume)
    data = plan_data(plan)  # may fill in base.data.path for a bare card
    if resume:
        plan.check_resume(paths)  # a change that alters the finished trials is refused before Ray
    warnings = plan.check_with_data(data.manifest) if data.ready else None
    trial_fn = trial_fn or default_trial_fn()
    with study_lock(paths.root, f"{plan.name} ({'resume' if resume else 'start'})"):
        _check_start(plan, paths, resume)  # again, now that no other run can start it
        started = connect(address, verbose=verbose, num_cpus=num_cpus)
        live_table = None
        fresh = not paths.has_experiment()
        try:
            with graceful_stop() as stop:
                manifest = ensure_data(data, address=None if address in (None, "local") else address)
                if warnings is None:
                    warnings = plan.check_with_data(manifest)
                for line in warnings:
                    warn(line)
                from mmtune.tuning.resources import cluster_snapshot, plan_resources

                cluster, nodes = cluster_snapshot()
                resources = plan_resources(plan.config.resources, cluster, nodes, where=f"{plan.path}: resources")
                plan.before_fit(paths, manifest, resume)
                if not plan.config.resources.runs_inline and plan.config.resources.warm_workers:
                    from mmtune.training.warm_workers import prestart_for_study

                    prestart_for_study(plan.config.resources.workers, resources.max_concurrent)
                grow = plan.grow_experiment(paths) if resume else None
                if grow:  # the new trials run as a new experiment beside the finished ones; kept if it fails,
                    paths = StudyPaths(paths.root, grow)  # so the next --resume restores it (cells.parquet grew)
                init_aim_repo(plan.base["tracking"].get("aim_repo"))
                restore = resume and not grow
                tuner, live_table = _build_tuner(plan, paths, resources, trial_fn, meta, restore, live, callbacks or [])
                err_console.print(plan.start_line(resources, paths), highlight=False, soft_wrap=True)
                started_fit = time.monotonic()
                try:
                    tuner.fit()
                except Exception:
                    if fresh:
                        _forget_unstarted(paths)
                    raise
                fit_seconds = time.monotonic() - started_fit
        finally:
            if live_table is not None:
                live_table.close()
            if started:
                import ray

                ray.shutdown()
        results = plan.write_results(paths, resume=resume, started_at=started_at)
    results.fit_seconds = fit_seconds
    results.stop = stop
    return results


def _check_start(plan: StudyPlan, paths: StudyPaths, resume: bool) -> None:
    """``--resume`` needs a study; a fresh start must not overwrite one."""
    if resume and not paths.has_experiment():
        raise StudyExistsError(f"{paths.root}: no study to resume; run without --resume to start it")
    if not resume and paths.has_experiment():
        raise StudyExistsError(f"{paths.root}: study {plan.name!r} exists; {plan.restart_hint}")


def _forget_unstarted(paths: StudyPaths) -> None:
    """A fresh study whose fit failed before any trial reported leaves no Tune state behind: the corrected rerun
    starts it again instead of being refused ("study exists") or resuming the broken start."""
    tune_dir = paths.tune_dir
    if not tune_dir.is_dir():
        return
    if any(p.stat().st_size for p in tune_dir.glob("*/result.json")):
        return
    shutil.rmtree(tune_dir, ignore_errors=True)


def _trial_options(paths: StudyPaths, meta: Mapping[str, Any] | None, resume: bool) -> dict[str, Any]:
    """The trials' extra metadata (``--trial-option``): recorded at the start, reused by ``--resume`` (Tune
    requires the restored param space to have the keys of the original) and by the experiments that grow the
    study (``resume`` False for them: a new Tuner)."""
    first = paths.experiments[0] / TRIAL_OPTIONS_FILE
    if not meta and first.is_file() and (resume or first.parent != paths.tune_dir):
        options = dict(json.loads(first.read_text(encoding="utf-8")))
    else:
        options = dict(meta or {})
    if not resume:
        atomic_write_text(paths.tune_dir / TRIAL_OPTIONS_FILE, json.dumps(options, sort_keys=True, default=str))
    return options


def _restore(paths: StudyPaths, trainable: Any, param_space: dict[str, Any]) -> Any:
    """Tune's experiment on disk, with the param space: without it the ``tune.sample_from`` resolvers of
    conditional (``when:``) keys are lost, and every trial created after the resume gets Ray's unresolved
    placeholder as its config and fails."""
    from ray import tune

    try:
        return tune.Tuner.restore(
            str(paths.tune_dir), trainable, resume_unfinished=True, resume_errored=True, param_space=param_space
        )
    except ValueError as exc:
        if "param_space" not in str(exc):
            raise
        raise StudyExistsError(
            f"{paths.root}: --resume with a different study file or options than the start; resume with the same "
            "file and --set options, or start a new study (--name)"
        ) from None


def _build_tuner(
    plan: StudyPlan,
    paths: StudyPaths,
    resources: Any,
    trial_fn: TrialFn,
    meta: Mapping[str, Any] | None,
    resume: bool,
    live: bool,
    extra_callbacks: list[Any],
) -> tuple[Any, Any]:
    """A new Tuner from the plan's ``TuneSpec``, or the experiment on disk restored (``resume``)."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from mmtune.tuning.live import LiveTrialTable
    from mmtune.tuning.trial_entry import make_trainable

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's own tables stay silent at verbose=0; ours is live
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # JSON + CSV are added below, no TensorBoard
    trainable = tune.with_resources(make_trainable(trial_fn), resources.trial)
    live_table = LiveTrialTable(plan.name, plan.metric, plan.mode, plan.searched, plan.max_t) if live else None
    callbacks: list[Any] = [JsonLoggerCallback(), CSVLoggerCallback(), *extra_callbacks]
    if live_table is not None:
        callbacks.insert(0, live_table)
    meta = _trial_options(paths, meta, resume)
    spec = plan.tune_spec(paths, trial_fields(plan, paths, meta), resources.max_concurrent)
    if resume:
        tuner = _restore(paths, trainable, spec.param_space)
        internal = tuner._local_tuner  # the restored run config keeps pickled callbacks; show a fresh live table
        if internal is not None:
            internal.get_run_config().callbacks = callbacks
        return tuner, live_table
    tuner = tune.Tuner(
        trainable,
        param_space=spec.param_space,
        tune_config=tune.TuneConfig(
            metric=plan.metric,
            mode=plan.mode,
            scheduler=spec.scheduler,
            search_alg=spec.search_alg,
            num_samples=spec.num_samples,
            max_concurrent_trials=spec.max_concurrent_trials,
            reuse_actors=plan.config.resources.reuse_actors,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=paths.tune_dir.name,
            storage_path=str(paths.root),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=plan.config.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=spec.keep_checkpoints,
                checkpoint_score_attribute=plan.metric,
                checkpoint_score_order=plan.mode,
            ),
            callbacks=callbacks,
        ),
    )
    return tuner, live_table
