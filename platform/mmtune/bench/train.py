"""``mmtune bench train``: the per-epoch cost of a trial against a plain PyTorch loop on the same model and data.

Three runs in one process tree, on the same prepared data, model and batch size, one CPU thread each:

* ``plain``: a hand-written loop (shuffle, ``numpy_to_batch``, forward, masked losses, backward, AdamW step, then a
  no-grad validation pass) timed in this process;
* ``inline``: a real Ray Tune trial of ``run_trial`` running Lightning inside the trial (metrics, predictions of the
  best epoch, a checkpoint and a report every epoch, Aim tracking);
* ``ray_train``: the same trial as a one-worker Ray Train ``TorchTrainer`` over Ray Data.

A trial epoch is measured from one report to the next (``time_this_iter_s``, and the trial process's CPU seconds
``epoch_cpu_s``), so it includes validation, checkpointing and reporting; the first epoch (warm-up) is left out
and the median of the rest is compared. CPU-second ratios stay meaningful when other jobs share the machine.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL_RATIO = 1.10  # inline epoch / plain epoch (issue 14)
GOAL_RATIO_RAY_TRAIN = 1.15  # a one-worker Ray Train epoch / plain epoch
GOAL_RATIO_GPU = 1.05
REPORT_POLL_S = 0.2


def bench_run_config(
    prepared: Path, *, epochs: int, batch_size: int, aim_repo: str | None, width: int = 8, accelerator: str = "cpu"
) -> dict[str, Any]:
    """The run config every side of the benchmark trains: small CNN + concat on covid + morbidity."""
    return {
        "name": "bench_train",
        "data": {"path": str(prepared), "batch_size": batch_size},
        "tasks": ["covid", "morbidity"],
        "model": {
            "backbone": {"name": "small_cnn", "params": {"width": width, "stages": 3}},
            "clinical_encoder": {"hidden": 32},
            "fusion": {"name": "concat", "dim": 64},
        },
        "optim": {"lr": 3e-3},
        "trainer": {
            "max_epochs": epochs,
            "progress": False,
            "num_threads": 1 if accelerator == "cpu" else None,
            "monitor": "val/mean_auroc",
            "accelerator": accelerator,
        },
        "tracking": {"aim_repo": aim_repo, "experiment": "bench_train"},
    }


def plain_loop(run: dict[str, Any], epochs: int, device: str = "cpu") -> list[tuple[float, float]]:
    """(wall s, CPU s) of each epoch of a plain PyTorch loop on the trial's model and batches."""
    import numpy as np
    import torch

    from mmtune.config.run import RunConfig
    from mmtune.data.loading import iterate_batches, load_splits, numpy_to_batch
    from mmtune.data.multisource import resolve_data
    from mmtune.losses import task_loss
    from mmtune.models import build_model

    cfg = RunConfig.model_validate(run)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    info = resolve_data(cfg.data, cfg.task_names)
    splits = load_splits(info, ("train", "val"))
    model = build_model(cfg.model, info.image, info.n_clinical, info.tasks).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    options = {t.name: t for t in cfg.tasks}
    train, val = splits["train"], splits["val"]
    bs = cfg.data.batch_size
    rng = np.random.default_rng(0)
    out = []
    for _ in range(epochs):
        wall, cpu = time.perf_counter(), time.process_time()
        model.train()
        order = rng.permutation(len(train))
        for start in range(0, len(order) - bs + 1, bs):
            batch = _to(numpy_to_batch(train.take(order[start : start + bs]), info), device)
            outputs = model(batch)
            loss = sum(task_loss(t, outputs[t.name], batch, options[t.name]) for t in info.tasks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for batch in iterate_batches(val, info, bs):
                model(_to(batch, device))
        if device != "cpu":
            torch.cuda.synchronize()
        out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def _to(batch: dict[str, Any], device: str) -> dict[str, Any]:
    if device == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if hasattr(v, "to") else v for k, v in batch.items()}


def lightning_trial_loop(run: dict[str, Any], epochs: int, trial_dir: Path, accelerator: str = "cpu") -> list[dict]:
    """The inline trial's Lightning loop and per-epoch work (``TrialReporter``: metrics, best-epoch artefacts, a
    checkpoint each epoch) without Ray: reports go to a list. For machines without Ray (a GPU box, say)."""
    import pytorch_lightning as pl

    from mmtune.config.run import RunConfig
    from mmtune.data.loading import load_splits, make_loader
    from mmtune.training.callbacks import TrialReporter
    from mmtune.training.fit import check_before_training, setup_process, trainer_kwargs
    from mmtune.training.module import MultiTaskModule

    cfg = RunConfig.model_validate(run)
    info = check_before_training(cfg)
    setup_process(cfg)
    splits = load_splits(info)
    loaders = {s: make_loader(splits[s], info, cfg.data, train=s == "train", seed=cfg.trainer.seed) for s in splits}
    module = MultiTaskModule(cfg, info)
    reports: list[dict] = []
    reporter = TrialReporter(
        trial_dir,
        lambda metrics, checkpoint: reports.append(metrics),
        monitor=cfg.trainer.monitor,
        mode=cfg.trainer.mode,
        test_batches=loaders["test"],
    )
    kwargs = trainer_kwargs(cfg, manual=module.manual)
    kwargs.update(
        callbacks=[reporter],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=True,
        devices=1,
        accelerator=accelerator,
        default_root_dir=str(trial_dir),
    )
    pl.Trainer(**kwargs).fit(module, train_dataloaders=loaders["train"], val_dataloaders=loaders["val"])
    return reports


def tune_trial(
    run: dict[str, Any], storage: Path, *, mode: str, resources: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every result a real one-trial Tune run of ``run_trial`` reported (``mode``: inline or ray_train); the trial
    directory is in each result under ``trial_path``."""
    from ray import tune

    from mmtune.training.trial import run_trial, trial_resources

    resources = resources or {"workers": 1, "cpus_per_worker": 1, "mode": mode}
    results: list[dict[str, Any]] = []

    class Collect(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            results.append(dict(result))

    tuner = tune.Tuner(
        tune.with_resources(run_trial, trial_resources(resources)),
        param_space={"run": run, "resources": resources, "study": "bench_train"},
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(name=mode, storage_path=str(storage), callbacks=[Collect()], verbose=0),
    )
    grid = tuner.fit()
    if grid.errors:
        raise RuntimeError(f"{mode} trial failed: {grid.errors[0]}")
    for result in results:
        result["trial_path"] = grid[0].path
    return results


def _resources(mode: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"workers": 1, "cpus_per_worker": 1, "mode": mode, **extra}


def _device_name(gpu: bool) -> str:
    if not gpu:
        return "cpu"
    import torch

    return f"cuda: {torch.cuda.get_device_name(0)}"


def _calibrate(config: dict[str, Any], prepared: Path, seconds: float, device: str) -> int:
    """Replicate the prepared rows until one plain epoch lasts about ``seconds``; returns the factor used."""
    import math

    from mmtune.bench.synthetic import replicate_rows

    wall, _ = plain_loop(config, 1, device=device)[0]
    factor = max(1, math.ceil(seconds / max(wall, 1e-3)))
    if factor > 1:
        replicate_rows(prepared, factor)
    return factor


def _median(values: list[float]) -> float:
    steady = values[1:] if len(values) > 1 else values
    return float(statistics.median(steady))


def run(
    *,
    patients: int = 120,
    size: int = 64,
    slices: int = 8,
    replicate: int = 16,
    epochs: int = 4,
    batch_size: int = 16,
    width: int = 8,
    aim: bool = True,
    data: Path | None = None,
    gpu: bool = False,
    epoch_seconds: float = 10.0,
    scaling: bool = True,
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and return its JSON-ready summary.

    ``gpu=True`` runs all three sides on one CUDA device: the plain loop on ``cuda``, both trials with
    ``gpus_per_worker: 1`` (the Ray Train side is then a ``use_gpu`` TorchTrainer with the nccl backend).

    Fixed per-epoch costs (validation, metrics, checkpoint, report) dominate short epochs and make the ratio swing,
    so the generated data are replicated until one plain epoch lasts about ``epoch_seconds`` (0: as generated).
    ``fixed_epoch_overhead_s`` is each trial epoch minus the plain epoch, in seconds.

    ``scaling=True`` also trains a two-worker Ray Train trial (DDP, one CPU each): ``two_worker.efficiency`` is
    (one-worker epoch) / (2 x two-worker epoch), 1.0 for perfect per-sample scaling. On a 2-core machine the driver,
    the trial and both workers share the cores, which caps it.
    """
    from mmtune.bench.ray_local import bench_ray
    from mmtune.bench.synthetic import bench_prepared
    from mmtune.data.format import read_manifest

    # Ray Train's controller collects worker reports every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (2 s) and a worker's
    # report waits while the previous one is uncollected: epochs shorter than that would be stretched to it.
    # Drivers set it lower too (mmtune.training.trial.RAY_ENV); it must be set before Ray starts.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", str(REPORT_POLL_S))
    from mmtune.data.node_cache import cache_dir_env

    with (
        tempfile.TemporaryDirectory(prefix="mmtune-bench-train-") as tmp,
        cache_dir_env(Path(tmp) / "node-cache"),  # trials above 256 MiB use the node cache: keep it in tmp
        bench_ray(),
    ):
        root = Path(tmp)
        prepared = data or bench_prepared(root, patients=patients, size=size, slices=slices, replicate=replicate)
        config = bench_run_config(
            prepared, epochs=epochs, batch_size=batch_size, aim_repo=None, width=width, accelerator="cpu"
        )
        calibration = 1
        if data is None and epoch_seconds > 0:  # never rewrite a user's data set
            calibration = _calibrate(config, prepared, epoch_seconds, device="cuda" if gpu else "cpu")
        manifest = read_manifest(prepared)
        config = bench_run_config(
            prepared,
            epochs=epochs,
            batch_size=batch_size,
            aim_repo=str(root / "aim") if aim else None,
            width=width,
            accelerator="gpu" if gpu else "cpu",
        )
        gpus = {"gpus_per_worker": 1} if gpu else {}
        load_before = os.getloadavg()[0]
        plain = plain_loop(config, epochs, device="cuda" if gpu else "cpu")
        inline = tune_trial(config, root / "tune", mode="inline", resources=_resources("inline", gpus))
        ray_train = tune_trial(config, root / "tune", mode="ray_train", resources=_resources("ray_train", gpus))
        two_workers = None
        if scaling and not gpu:
            resources = {**_resources("ray_train", gpus), "workers": 2}
            two_workers = tune_trial(config, root / "tune", mode="two_workers", resources=resources)
        load_after = os.getloadavg()[0]
    plain_wall, plain_cpu = _median([w for w, _ in plain]), _median([c for _, c in plain])
    summary: dict[str, Any] = {
        "benchmark": "train",
        "device": _device_name(gpu),
        "patients": manifest.n_patients,
        "image": manifest.image.shape,
        "batch_size": batch_size,
        "small_cnn_width": width,
        "epochs": epochs,
        "aim": aim,
        "epoch_seconds_target": epoch_seconds,
        "replicated_for_epoch_length": calibration,
        "plain_epoch_s": round(plain_wall, 4),
        "plain_epoch_cpu_s": round(plain_cpu, 4),
        "goal_ratio": {
            "inline": GOAL_RATIO_GPU if gpu else GOAL_RATIO,
            "ray_train": GOAL_RATIO_GPU if gpu else GOAL_RATIO_RAY_TRAIN,
        },
        "loadavg": [round(load_before, 2), round(load_after, 2)],
        "ray_train_health_check_interval_s": float(os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", 2.0)),
    }
    for name, results in (("inline", inline), ("ray_train", ray_train)):
        wall = _median([float(r["time_this_iter_s"]) for r in results])
        cpu = _median([float(r["epoch_cpu_s"]) for r in results])
        in_process = _median([float(r["epoch_wall_s"]) for r in results])
        first = results[0]
        report_s = _median([float(r["time_this_iter_s"]) - float(r["epoch_wall_s"]) for r in results])
        summary.setdefault("fixed_epoch_overhead_s", {})[name] = round(wall - plain_wall, 3)
        summary.setdefault("checkpoint_and_report_s", {})[name] = round(report_s, 3)
        summary.update(
            {
                f"{name}_epoch_s": round(wall, 4),
                f"{name}_epoch_cpu_s": round(cpu, 4),
                # timed inside the trial process / rank-0 worker, without this epoch's checkpoint + report
                f"{name}_epoch_in_process_s": round(in_process, 4),
                f"{name}_ratio": round(wall / plain_wall, 3),
                f"{name}_ratio_cpu": round(cpu / plain_cpu, 3),
                # trial start -> first report, less that epoch's own time: the per-trial start-up cost
                f"{name}_startup_s": round(float(first["time_total_s"]) - float(first["epoch_wall_s"]), 2),
                f"{name}_meets_goal": wall / plain_wall <= summary["goal_ratio"][name],
            }
        )
    if two_workers:
        two_wall = _median([float(r["time_this_iter_s"]) for r in two_workers])
        one_wall = summary["ray_train_epoch_s"]
        summary["two_worker"] = {
            "epoch_s": round(two_wall, 4),
            "speedup": round(one_wall / two_wall, 3),
            "efficiency": round(one_wall / (2 * two_wall), 3),
            "cpus": os.cpu_count(),
        }
    return summary
