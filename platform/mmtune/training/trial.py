"""The Ray Tune function trainable: one trial = one training run, reported every epoch with a checkpoint.

``config`` (the trial's Tune config) follows the contract in :mod:`mmtune.trial_config` (its keys are defined
there only): ``run`` (top-level dotted keys are applied onto it, so a driver may put sampled values either inside
``run`` or beside it), ``resources``, ``mmtune`` (``mmtune.fault = {kill_at_epoch, marker}`` (tests) SIGKILLs the
trial (inline) or the rank-0 worker (Ray Train) once, right after that epoch's checkpoint was reported), and
``study``, ``trial_name`` (default: Tune's), ``aim_repo``, ``trial_dir`` / ``results_dir``, ``train_storage_path``.

One worker runs the Lightning loop inline in the trial (no worker-group start, in-memory data). More workers run a
Ray Train ``TorchTrainer`` (DDP: gloo on CPU, nccl on GPU; one CPU worker: a plain ``DataParallelTrainer``, no
process group) whose workers read their rank's rows of the train split from the per-node decoded cache
(``data.cache``, mmtune.data.node_cache) or from their own in-memory copy, or (``data.cache: ray_data``) from a Ray
Data shard; its per-epoch ``ray.train.report``
reaches Tune through ``TuneReportCallback``. Either way a restarted trial resumes from its last checkpoint
(``ray.tune.get_checkpoint()`` inline; same Ray Train run name + storage and ``ray.train.get_checkpoint()``).
``predictions.parquet`` and ``metrics.json`` in the trial directory always hold the best epoch so far.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmtune.config.loading import apply_overrides, validate
from mmtune.config.run import RunConfig
from mmtune.trial_config import (
    AIM_REPO_KEY,
    CPUS_PER_WORKER,
    FAULT_KEY,
    GPUS_PER_WORKER,
    META_KEYS,
    MODE,
    NODE_CACHE_KEY,
    RESOURCES_KEY,
    RESULTS_DIR_KEY,
    RUN_KEY,
    STARTUP_KEY,
    STUDY_KEY,
    TARGETS_KEY,
    TRAIN_STORAGE_KEY,
    TRIAL_DIR_KEY,
    TRIAL_META_KEY,
    TRIAL_NAME_KEY,
    USE_GPU,
    WARM_WORKERS,
    WORKERS,
)


@dataclass(frozen=True)
class TrialSetup:
    """Where a trial writes and how it runs."""

    cfg: RunConfig
    study: str
    trial_name: str
    trial_dir: Path
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    use_gpu: bool
    mode: str
    train_storage_path: Path
    warm_workers: bool = True
    fault: dict[str, Any] | None = None
    targets: dict[str, str] | None = None  # the study's Tune metric -> mode (see TrialReporter)

    @property
    def inline(self) -> bool:
        return self.mode == "inline" or (self.mode == "auto" and self.workers <= 1)


def trial_run_config(config: Mapping[str, Any]) -> RunConfig:
    """The trial's ``RunConfig``: ``config["run"]`` with the top-level dotted keys applied; ``aim_repo`` wins."""
    run = copy.deepcopy(dict(config.get(RUN_KEY) or {}))
    overrides = {k: v for k, v in config.items() if k not in META_KEYS and "." in k}
    apply_overrides(run, overrides)
    if config.get(AIM_REPO_KEY):
        run.setdefault("tracking", {})["aim_repo"] = str(Path(config[AIM_REPO_KEY]).expanduser().resolve())
    return validate(RunConfig, run, "trial config")


def trial_setup(config: Mapping[str, Any]) -> TrialSetup:
    """Resolve the trial's run config, names, directories and resources (inside a Tune session)."""
    from ray import tune

    from mmtune.training.fit import resolved_config

    cfg = resolved_config(trial_run_config(config))
    context = tune.get_context()
    trial_name = str(config.get(TRIAL_NAME_KEY) or context.get_trial_name() or cfg.name)
    if config.get(TRIAL_DIR_KEY):
        trial_dir = Path(config[TRIAL_DIR_KEY])
    elif config.get(RESULTS_DIR_KEY):
        trial_dir = Path(config[RESULTS_DIR_KEY]) / "trials" / trial_name
    else:
        trial_dir = Path(context.get_trial_dir())
    trial_dir = trial_dir.expanduser().resolve()
    trial_dir.mkdir(parents=True, exist_ok=True)
    res = dict(config.get(RESOURCES_KEY) or {})
    meta = dict(config.get(TRIAL_META_KEY) or {})
    gpus = float(res.get(GPUS_PER_WORKER, 0) or 0)
    use_gpu = bool(res.get(USE_GPU, gpus > 0))
    if use_gpu and gpus == 0:
        gpus = 1.0
    storage = Path(config.get(TRAIN_STORAGE_KEY) or trial_dir / "ray_train").expanduser().resolve()
    return TrialSetup(
        cfg=cfg,
        study=str(config.get(STUDY_KEY) or cfg.tracking.experiment),
        trial_name=trial_name,
        trial_dir=trial_dir,
        workers=max(1, int(res.get(WORKERS, 1))),
        cpus_per_worker=float(res.get(CPUS_PER_WORKER, 1)),
        gpus_per_worker=gpus,
        use_gpu=use_gpu,
        mode=str(res.get(MODE, "auto")),
        train_storage_path=storage,
        warm_workers=bool(res.get(WARM_WORKERS, True)),
        fault=dict(meta.get(FAULT_KEY) or {}) or None,
        targets={str(meta["metric"]): str(meta.get("mode") or "max")} if meta.get("metric") else None,
    )


# Environment a driver should give its Ray cluster (before ``ray.init`` of a local cluster, or a job's runtime_env):
# Ray Train's controller collects worker reports every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s) and a
# worker's next report waits until the previous one was collected, which stretches epochs shorter than that.
RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}
# and, on a local cluster (one machine, never preempted), no preemption watcher: one process less per trial start
LOCAL_RAY_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def trial_resources(resources: Mapping[str, Any] | None) -> dict[str, float]:
    """What the Tune trial itself must reserve: the whole worker for an inline trial, nothing for a Ray Train
    trial (its workers reserve their own CPUs/GPUs; a trial holding CPUs would starve them, see DESIGN.md)."""
    res = dict(resources or {})
    workers = max(1, int(res.get(WORKERS, 1)))
    mode = str(res.get(MODE, "auto"))
    if mode == "inline" or (mode == "auto" and workers <= 1):
        gpus = float(res.get(GPUS_PER_WORKER, 0) or (1 if res.get(USE_GPU) else 0))
        out = {"cpu": float(res.get(CPUS_PER_WORKER, 1))}
        if gpus:
            out["gpu"] = gpus
        return out
    return {"cpu": 0.0, "memory": 1.0}


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable (see the module docstring)."""
    started_at = time.time()
    setup = trial_setup(config)
    if setup.cfg.model.reference == "gbdt":  # a clinical-only reference cell: no network, no epochs
        run_reference(setup, started_at)
    elif setup.inline:
        run_inline(setup, started_at)
    else:
        run_ray_train(setup, started_at)


def run_reference(setup: TrialSetup, started_at: float) -> None:
    """A GBDT reference cell (``model.reference``): one report (``epoch`` 1) after predictions and metrics exist."""
    from ray import tune

    from mmtune.training.fit import check_before_training, make_aim_logger, setup_process
    from mmtune.training.gbdt import write_reference_run

    cfg = setup.cfg
    info = check_before_training(cfg)
    setup_process(cfg)
    logger = make_aim_logger(cfg, run_name=setup.trial_name, study=setup.study, trial=setup.trial_name)
    metrics, aim_hash = write_reference_run(cfg, info, setup.trial_dir, run_name=setup.trial_name, logger=logger)
    report = {**metrics, "epoch": 1, "best_epoch": 1, "aim_hash": aim_hash or ""}
    report[f"best/{cfg.trainer.monitor}"] = metrics.get(cfg.trainer.monitor, float("nan"))
    report["epoch_wall_s"] = time.time() - started_at
    tune.report(report)


# ----------------------------------------------------------------------------------------------------------------
# inline: the Lightning loop inside the Tune trial


def run_inline(setup: TrialSetup, started_at: float | None = None) -> None:
    import pytorch_lightning as pl
    from ray import tune
    from ray.tune import Checkpoint

    from mmtune.data.loading import load_splits, make_loader
    from mmtune.training.callbacks import TrialReporter, restore_checkpoint
    from mmtune.training.fit import check_before_training, make_aim_logger, setup_process, trainer_kwargs
    from mmtune.training.module import MultiTaskModule
    from mmtune.training.rng_state import RngState, loader_generators

    cfg = setup.cfg
    info = check_before_training(cfg)
    setup_process(cfg)
    splits = load_splits(info, cache=cfg.data.cache)
    train = make_loader(splits["train"], info, cfg.data, train=True, seed=cfg.trainer.seed)
    val = make_loader(splits["val"], info, cfg.data, train=False)
    test = make_loader(splits["test"], info, cfg.data, train=False)
    startup = {"trial_started_at": started_at or time.time(), "data_ready_at": time.time()}
    module = MultiTaskModule(cfg, info)
    ckpt_path, aim_hash = restore_checkpoint(tune.get_checkpoint())
    logger = make_aim_logger(
        cfg, run_name=setup.trial_name, study=setup.study, trial=setup.trial_name, run_hash=aim_hash
    )
    startup["model_ready_at"] = time.time()
    reporter = TrialReporter(
        setup.trial_dir,
        lambda metrics, checkpoint: tune.report(metrics, checkpoint=checkpoint),
        monitor=cfg.trainer.monitor,
        mode=cfg.trainer.mode,
        test_batches=test,
        aim_hash=lambda: _aim_hash(logger),
        checkpoint_factory=Checkpoint.from_directory,
        extra={"trial_name": setup.trial_name, "study": setup.study, "path": "inline"},
        fault=setup.fault,
        startup=startup,
        targets=setup.targets,
    )
    kwargs = trainer_kwargs(cfg, manual=module.manual)
    kwargs.update(
        callbacks=[reporter, RngState(loader_generators(train)), *_early_stopping(cfg)],
        logger=logger if logger is not None else False,
        enable_progress_bar=False,
        enable_checkpointing=True,
        default_root_dir=str(setup.trial_dir),
        devices=1,
        accelerator="gpu" if setup.use_gpu else cfg.trainer.accelerator,
    )
    fit_then_clean_up(pl.Trainer(**kwargs), module, train, val, ckpt_path, logger)


def fit_then_clean_up(trainer: Any, module: Any, train: Any, val: Any, ckpt_path: str | None, logger: Any) -> None:
    """Fit (resuming from ``ckpt_path``), then close the Aim logger and drop the local copy of the restored
    checkpoint, however the fit ends (ASHA abandons a stopped trial's thread; a fault kills it)."""
    try:
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val, ckpt_path=ckpt_path)
    finally:
        if logger is not None:
            logger.close()
        if ckpt_path:
            shutil.rmtree(Path(ckpt_path).parent, ignore_errors=True)


def _early_stopping(cfg: RunConfig) -> list[Any]:
    if not cfg.trainer.early_stopping_patience:
        return []
    from pytorch_lightning.callbacks import EarlyStopping

    return [EarlyStopping(cfg.trainer.monitor, mode=cfg.trainer.mode, patience=cfg.trainer.early_stopping_patience)]


def _aim_hash(logger: Any) -> str | None:
    from pytorch_lightning.utilities import rank_zero_only

    if logger is None or getattr(rank_zero_only, "rank", 0) != 0:
        return None
    return str(logger.experiment.hash)


# ----------------------------------------------------------------------------------------------------------------
# Ray Train: N workers, DDP, Ray Data shards


def run_ray_train(setup: TrialSetup, started_at: float | None = None) -> Any:
    """Run the trial as a Ray Train ``TorchTrainer`` whose reports reach Tune (``TuneReportCallback``)."""
    from ray.train import CheckpointConfig, FailureConfig, ScalingConfig
    from ray.train import DataConfig as RayDataConfig
    from ray.train import RunConfig as TrainRunConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from mmtune.data.loading import build_node_cache, ray_datasets, uses_node_cache
    from mmtune.training.fit import check_before_training
    from mmtune.training.warm_workers import worker_runtime_env

    info = check_before_training(setup.cfg)
    streamed = setup.cfg.data.cache == "ray_data"
    if streamed and info.multi_source and len({s.weight for s in info.sources}) > 1:
        from mmtune.console import warn

        warn("data.path weights: Ray Data shards draw each source in proportion to its size (weights apply in-memory)")
    # every worker maps the node's decoded copy (node cache) or reads its own (small data) and takes its rank's rows:
    # no Ray Data pipeline to start per trial (seconds of its start, bench search --overhead) or to re-read shards
    # each epoch. ``ray_data``: Ray Data shards the train split. val/test: every worker reads them whole
    node_cache = uses_node_cache(info, setup.cfg.data.cache)
    if node_cache:
        build_node_cache(info, ("train", "val", "test"))  # built once here, before the workers map it
    datasets = ray_datasets(info, ("train",)) if streamed else None
    per_worker: dict[str, float] = {"CPU": setup.cpus_per_worker}
    if setup.use_gpu:
        per_worker["GPU"] = setup.gpus_per_worker
    loop_config = {
        RUN_KEY: setup.cfg.model_dump(mode="json"),
        STUDY_KEY: setup.study,
        TRIAL_NAME_KEY: setup.trial_name,
        TRIAL_DIR_KEY: str(setup.trial_dir),
        USE_GPU: setup.use_gpu,
        FAULT_KEY: setup.fault,
        TARGETS_KEY: setup.targets,
        NODE_CACHE_KEY: node_cache,
        STARTUP_KEY: {"trial_started_at": started_at or time.time()},
    }
    # one CPU worker needs no torch.distributed process group (it trains without DDP): a plain data-parallel
    # trainer skips the backend set-up, seconds of each trial's start (bench search --overhead, process_group_setup)
    if setup.workers == 1 and not setup.use_gpu:
        trainer_cls: Any = TorchTrainer.__bases__[0]  # the DataParallelTrainer of the Ray Train version in use
        backend: dict[str, Any] = {}
    else:
        trainer_cls = TorchTrainer
        backend = {"torch_config": TorchConfig(backend="nccl" if setup.use_gpu else "gloo")}
    trainer = trainer_cls(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=setup.workers, use_gpu=setup.use_gpu, resources_per_worker=per_worker),
        **backend,
        run_config=TrainRunConfig(
            name=setup.trial_name,
            storage_path=str(setup.train_storage_path),
            callbacks=[TuneReportCallback()],
            failure_config=FailureConfig(max_failures=1),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            worker_runtime_env=worker_runtime_env() if setup.warm_workers else {},
        ),
        datasets=datasets,
        dataset_config=RayDataConfig(datasets_to_split=["train"]) if datasets else None,
    )
    loop_config[STARTUP_KEY]["trainer_fit_at"] = time.time()
    return trainer.fit()


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: Lightning (``RayDDPStrategy`` with several) over this rank's rows of the train split."""
    import psutil
    import ray.train

    from mmtune.training import warm_workers

    startup = dict(loop_config.get(STARTUP_KEY) or {})
    startup["loop_entered_at"] = time.time()
    warm = warm_workers.was_prestarted(startup.get("trainer_fit_at"))
    # a warm process predates its trial, so its start is no part of this trial: worker_group_start then runs to
    # the loop's entry (the controller, the actor's placement and Ray Train's worker set-up)
    startup["worker_process_created_at"] = startup["loop_entered_at"] if warm else psutil.Process().create_time()
    startup[warm_workers.WARM_STAMP] = float(warm)
    if warm_workers.PRELOADED_AT is not None:  # > 0: the trial waited for its warm process to finish preloading
        startup["worker_preload_wait_s"] = warm_workers.PRELOADED_AT - startup.get("trainer_fit_at", 0.0)
    import pytorch_lightning as pl
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    from mmtune.data.loading import load_splits, make_loader, quiet_ray_data, shard_batches
    from mmtune.data.multisource import resolve_data
    from mmtune.training.callbacks import TrialReporter, restore_checkpoint
    from mmtune.training.fit import make_aim_logger, setup_process, trainer_kwargs
    from mmtune.training.module import MultiTaskModule
    from mmtune.training.rng_state import RngState, loader_generators

    startup["imports_done_at"] = time.time()
    if warm:  # the next trial's warm processes preload on this node while this trial sets up and trains
        warm_workers.replace_self(ray.train.get_context().get_world_rank())
    quiet_ray_data()
    cfg = RunConfig.model_validate(loop_config[RUN_KEY])
    use_gpu = bool(loop_config.get(USE_GPU))
    trial_name = loop_config[TRIAL_NAME_KEY]
    info = resolve_data(cfg.data, cfg.task_names)
    setup_process(cfg)
    if not cfg.trainer.num_threads:
        warm_workers.apply_thread_count()
    rank = ray.train.get_context().get_world_rank()
    world_size = ray.train.get_context().get_world_size()
    batch_size = cfg.data.batch_size
    if cfg.data.cache == "ray_data":
        train = shard_batches(
            ray.train.get_dataset_shard("train"), info, batch_size, train=True, augment=cfg.data.augment
        )
        # val / test are not split (each rank evaluates all of them; metrics need no sync): plain in-memory loaders
        # avoid a Ray Data execution per epoch
        held_out = load_splits(info, ("val", "test"), cache="memory")
    else:
        cache = "node" if loop_config.get(NODE_CACHE_KEY) else "memory"
        held_out = load_splits(info, ("train", "val", "test"), cache=cache)
        train = make_loader(
            held_out["train"], info, cfg.data, train=True, seed=cfg.trainer.seed, rank=rank, world_size=world_size
        )
    startup["data_ready_at"] = time.time()
    val = make_loader(held_out["val"], info, cfg.data, train=False)
    test = make_loader(held_out["test"], info, cfg.data, train=False) if rank == 0 else None
    module = MultiTaskModule(cfg, info)
    ckpt_path, aim_hash = restore_checkpoint(ray.train.get_checkpoint())
    logger = make_aim_logger(
        cfg, run_name=trial_name, study=loop_config[STUDY_KEY], trial=trial_name, run_hash=aim_hash
    )
    startup["model_ready_at"] = time.time()
    reporter = TrialReporter(
        loop_config[TRIAL_DIR_KEY],
        lambda metrics, checkpoint: ray.train.report(metrics, checkpoint=checkpoint),
        monitor=cfg.trainer.monitor,
        mode=cfg.trainer.mode,
        test_batches=test,
        aim_hash=lambda: _aim_hash(logger),
        checkpoint_factory=ray.train.Checkpoint.from_directory,
        extra={TRIAL_NAME_KEY: trial_name, STUDY_KEY: loop_config[STUDY_KEY], "path": "ray_train"},
        fault=loop_config.get(FAULT_KEY),
        startup=startup,
        targets=loop_config.get(TARGETS_KEY),
    )
    kwargs = trainer_kwargs(cfg, manual=module.manual)
    kwargs.update(
        callbacks=[reporter, RngState(loader_generators(train)), *_early_stopping(cfg)],
        logger=logger if logger is not None else False,
        enable_progress_bar=False,
        enable_checkpointing=True,
        default_root_dir=loop_config[TRIAL_DIR_KEY],
        accelerator="gpu" if use_gpu else "cpu",
        use_distributed_sampler=False,
    )
    if world_size > 1:
        kwargs.update(
            devices="auto",
            # no buffer broadcast before every forward (it cost ~10% of a small CNN's step): each rank keeps its
            # own batch-norm statistics and rank 0's are checkpointed and evaluated
            strategy=RayDDPStrategy(
                process_group_backend="nccl" if use_gpu else "gloo",
                broadcast_buffers=False,
                gradient_as_bucket_view=True,
            ),
            plugins=[RayLightningEnvironment()],
        )
        trainer = prepare_trainer(pl.Trainer(**kwargs))
    else:  # one worker: no DDP wrapper, gradient all-reduce or buffer broadcast to pay for
        trainer = pl.Trainer(devices=1, **kwargs)
    fit_then_clean_up(trainer, module, train, val, ckpt_path, logger)
