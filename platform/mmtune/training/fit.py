"""``fit``: one training run with plain Lightning (no Tune), writing a complete run directory or nothing.

The run directory is built in a temporary sibling and renamed into place only when training, evaluation and all
artefacts succeeded: ``config.yaml`` (resolved), ``checkpoints/best.ckpt``, ``metrics.json`` (best-checkpoint
val + test metrics, epochs, Aim hash) and ``predictions.parquet`` (every val and test patient).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmtune.atomic import atomic_directory
from mmtune.config.run import RunConfig, default_prepared_path
from mmtune.data.multisource import DataInfo
from mmtune.errors import ConfigError, DataError
from mmtune.results_files import METRICS_FILE, PREDICTIONS_FILE

CONFIG_NAME = "config.yaml"
BEST_CHECKPOINT = Path("checkpoints") / "best.ckpt"


@dataclass
class FitResult:
    """What one run produced; ``metrics`` holds ``val/...`` and ``test/...`` of the best checkpoint."""

    run_dir: Path
    metrics: dict[str, float]
    epochs: int
    best_epoch: int | None
    aim_hash: str | None
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def checkpoint(self) -> Path:
        return self.paths["checkpoint"]

    @property
    def predictions(self) -> Path:
        return self.paths["predictions"]


def prepare_if_needed(cfg: RunConfig) -> RunConfig:
    """A config whose ``data.path`` is missing but names a ``data.card`` is prepared first (then points at it)."""
    data = cfg.data
    if data.card is None:
        return cfg
    if isinstance(data.path, list):
        return cfg
    out = Path(data.path) if data.path else default_prepared_path(data.card)
    if not (out / "manifest.json").is_file():
        from mmtune.data.prepare import prepare

        if out.is_dir() and any(out.iterdir()):  # never overwrite what is there: say how to rebuild it
            raise DataError(
                f"{out}: not a prepared data set (no manifest.json) and not empty; rebuild it with "
                f"`mmtune data prepare {data.card} {out} --overwrite`, or point data.path elsewhere"
            )

        prepare(data.card, out, source=data.source)
    return cfg.model_copy(update={"data": data.model_copy(update={"path": str(out.resolve())})})


def resolved_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with absolute data paths and Aim repo, so the saved config runs from any directory."""
    data = cfg.data
    if isinstance(data.path, str):
        data = data.model_copy(update={"path": str(Path(data.path).expanduser().resolve())})
    elif isinstance(data.path, list):
        data = data.model_copy(
            update={
                "path": [s.model_copy(update={"path": str(Path(s.path).expanduser().resolve())}) for s in data.path]
            }
        )
    tracking = cfg.tracking
    if tracking.aim_repo:
        tracking = tracking.model_copy(update={"aim_repo": str(Path(tracking.aim_repo).expanduser().resolve())})
    return cfg.model_copy(update={"data": data, "tracking": tracking})


def check_before_training(cfg: RunConfig) -> DataInfo:
    """Every check that can fail on the user's input, before any training: config, data, monitor key."""
    from mmtune.data.multisource import resolve_data
    from mmtune.training.metrics import metric_keys
    from mmtune.validation import check_run_config

    info = resolve_data(cfg.data, cfg.task_names)
    check_run_config(cfg, [s.manifest for s in info.sources])
    names = info.source_names if info.multi_source else None
    keys = metric_keys(info.tasks, "val", names)
    if cfg.trainer.monitor not in keys:
        shown = ", ".join(k for k in keys if k.count("/") <= 2)
        raise ConfigError(f"trainer.monitor: {cfg.trainer.monitor!r} is not a metric of this run; use one of: {shown}")
    return info


def seed_everything(seed: int) -> None:
    import pytorch_lightning as pl

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS when a GPU is used
    pl.seed_everything(seed, workers=True, verbose=False)


def skip_failing_nvml_check() -> None:
    """Lightning asks torch to check CUDA through NVML (``PYTORCH_NVML_BASED_CUDA_CHECK``); where NVML cannot be
    loaded, torch retries loading it at every ``cuda.is_available()``, which every optimizer step calls (0.3-0.4 ms
    a step, 2-3 % of a small CNN's CPU epoch) and then falls back to the CUDA runtime check anyway. Without NVML the
    variable changes nothing but that cost, so it is dropped."""
    import torch

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        missing = torch.cuda._device_count_nvml() < 0
    except Exception:  # a private torch helper: keep the variable when it is not there
        return
    if missing:
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)


def setup_process(cfg: RunConfig) -> None:
    """Per-process settings of a run: CPU threads, seeds, quiet Lightning info lines."""
    import logging

    import torch

    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    skip_failing_nvml_check()
    import warnings

    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    seed_everything(cfg.trainer.seed)


def make_aim_logger(
    cfg: RunConfig, *, run_name: str, study: str | None = None, trial: str | None = None, run_hash: str | None = None
) -> Any:
    """The run's Aim logger, or ``None`` when ``tracking.aim_repo`` is null."""
    if not cfg.tracking.aim_repo:
        return None
    from mmtune.tracking.aim import MMTuneAimLogger, flatten, run_tags

    return MMTuneAimLogger(
        cfg.tracking.aim_repo,
        study or cfg.tracking.experiment,
        run_name=run_name,
        params=flatten(cfg.model_dump(mode="json")),
        tags=run_tags(cfg, study=study, trial=trial),
        run_hash=run_hash,
    )


def trainer_kwargs(cfg: RunConfig, *, manual: bool) -> dict[str, Any]:
    """Lightning ``Trainer`` arguments from ``cfg.trainer`` (shared by ``fit`` and trials)."""
    t = cfg.trainer
    kwargs: dict[str, Any] = {
        "max_epochs": t.max_epochs,
        "accelerator": t.accelerator,
        "precision": t.precision,
        "deterministic": t.deterministic,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        "enable_model_summary": False,
    }
    if t.gradient_clip and not manual:
        kwargs["gradient_clip_val"] = t.gradient_clip
    if t.limit_train_batches is not None:
        kwargs["limit_train_batches"] = t.limit_train_batches
    return kwargs


def fit(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    extra_callbacks: Iterable[Any] = (),
    trainer_overrides: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train ``cfg`` with plain Lightning and write the run directory ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir).expanduser()
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError(f"{run_dir}: run directory exists and is not empty; choose another --out")
    cfg = resolved_config(prepare_if_needed(cfg))
    info = check_before_training(cfg)
    if cfg.model.reference is not None:
        return _fit_reference(cfg, info, run_dir)

    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar

    from mmtune.console import warn
    from mmtune.data.loading import load_splits, make_loader
    from mmtune.training.artifacts import write_config_yaml, write_metrics_json
    from mmtune.training.module import MultiTaskModule, load_weights
    from mmtune.training.predictions import without_modality, write_predictions

    for message in info.warnings:
        warn(message)
    setup_process(cfg)
    splits = load_splits(info, cache=cfg.data.cache)
    for split, arrays in splits.items():
        if len(arrays) == 0:
            raise ConfigError(f"data: the {split} selection of {cfg.data.path} has no patients (fold/test_group?)")
    seed = cfg.trainer.seed
    train_loader = make_loader(splits["train"], info, cfg.data, train=True, seed=seed)
    val_loader = make_loader(splits["val"], info, cfg.data, train=False)
    test_loader = make_loader(splits["test"], info, cfg.data, train=False)
    module = MultiTaskModule(cfg, info)

    with atomic_directory(run_dir) as tmp:
        write_config_yaml(tmp / CONFIG_NAME, cfg.model_dump(mode="json"))
        logger = make_aim_logger(cfg, run_name=run_dir.name)
        checkpoint = ModelCheckpoint(
            dirpath=tmp / BEST_CHECKPOINT.parent,
            filename=BEST_CHECKPOINT.stem,
            monitor=cfg.trainer.monitor,
            mode=cfg.trainer.mode,
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        callbacks: list[Any] = [checkpoint, *extra_callbacks]
        if cfg.trainer.early_stopping_patience:
            callbacks.append(
                EarlyStopping(cfg.trainer.monitor, mode=cfg.trainer.mode, patience=cfg.trainer.early_stopping_patience)
            )
        if cfg.trainer.progress:
            callbacks.append(RichProgressBar(leave=True, console_kwargs={"stderr": True}))
        kwargs = trainer_kwargs(cfg, manual=module.manual)
        kwargs.update(
            callbacks=callbacks,
            logger=logger if logger is not None else False,
            enable_progress_bar=cfg.trainer.progress,
            default_root_dir=str(tmp),
            devices=1,
        )
        kwargs.update(dict(trainer_overrides or {}))
        trainer = pl.Trainer(**kwargs)
        try:
            trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
            best_path = checkpoint.best_model_path
            best_epoch = _best_epoch(best_path)
            if not best_path:  # the monitored metric was never defined (NaN): keep the last weights
                best_path = str(tmp / BEST_CHECKPOINT)
                trainer.save_checkpoint(best_path)
                best_epoch = trainer.current_epoch
            load_weights(module, best_path)
            val_metrics, val_frame = module.evaluate(val_loader, "val")
            test_metrics, test_frame = module.evaluate(test_loader, "test")
            robust, robust_frames = without_modality(module, {"val": val_loader, "test": test_loader})
            metrics = {**val_metrics, **test_metrics, **robust}
            aim_hash = None
            if logger is not None:
                from mmtune.training.aim_figures import track_final

                logger.log_metrics({k: v for k, v in test_metrics.items()}, step=trainer.global_step)
                track_final(logger.experiment, [val_frame, test_frame], val_loader)
                aim_hash = logger.run_hash
            epochs = trainer.current_epoch
            write_predictions(tmp / PREDICTIONS_FILE, [val_frame, test_frame, *robust_frames])
            write_metrics_json(
                tmp / METRICS_FILE,
                metrics,
                epochs=epochs,
                best_epoch=best_epoch,
                aim_hash=aim_hash,
                monitor=cfg.trainer.monitor,
                extra={"run_name": run_dir.name},
            )
        finally:
            if logger is not None:
                logger.close()
    final = run_dir
    return FitResult(
        run_dir=final,
        metrics=metrics,
        epochs=epochs,
        best_epoch=best_epoch,
        aim_hash=aim_hash,
        paths={
            "config": final / CONFIG_NAME,
            "checkpoint": final / BEST_CHECKPOINT,
            "metrics": final / METRICS_FILE,
            "predictions": final / PREDICTIONS_FILE,
        },
    )


def _fit_reference(cfg: RunConfig, info: DataInfo, run_dir: Path) -> FitResult:
    """``model.reference: gbdt``: the run directory of a clinical-only tree model (no checkpoint, one "epoch")."""
    from mmtune.training.artifacts import write_config_yaml
    from mmtune.training.gbdt import write_reference_run

    setup_process(cfg)
    with atomic_directory(run_dir) as tmp:
        write_config_yaml(tmp / CONFIG_NAME, cfg.model_dump(mode="json"))
        logger = make_aim_logger(cfg, run_name=run_dir.name)
        metrics, aim_hash = write_reference_run(cfg, info, tmp, run_name=run_dir.name, logger=logger)
    paths = {"config": run_dir / CONFIG_NAME, "metrics": run_dir / METRICS_FILE}
    paths["predictions"] = run_dir / PREDICTIONS_FILE
    return FitResult(run_dir=run_dir, metrics=metrics, epochs=1, best_epoch=1, aim_hash=aim_hash, paths=paths)


def _best_epoch(path: str) -> int | None:
    """The (1-based) epoch stored in a Lightning checkpoint."""
    if not path:
        return None
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state.get("epoch", 0)) + 1
