"""``mmtune bench concurrent``: memory of N concurrent trials on one node against N x one trial alone.

Each "trial" is a separate process doing what a trial's data side does: resolve the run's data, ``load_splits``
(``data.cache`` = ``node`` or ``memory``), build the training loader, run one epoch of batches. When every trial
has finished its epoch (a barrier, so all are alive at once) each reads its own memory from
``/proc/<pid>/smaps_rollup``: ``pss`` (proportional set size: a page shared by k processes counts 1/k in each, so
the sum over processes is the node's real footprint), ``rss`` (shared pages counted in every process) and ``uss``
(private pages only). The same is measured for one trial alone.

``rss_ratio`` = sum of the N trials' PSS / (N x PSS of one trial alone), for the node cache: 1.0 means N copies,
about (data + N x rest) / (N x (data + rest)) means the data counted once. ``memory_path`` gives the same for
private in-memory copies, for comparison. Needs Linux (PSS).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path
from typing import Any

TASKS = ["covid", "morbidity"]
GOAL_RSS_RATIO = 0.5


def _trial(path: str, cache: str, cache_dir: str, batch_size: int, barrier: Any, queue: Any) -> None:
    """One trial's data side in its own process; reports its memory while all trials are alive."""
    os.environ["MMTUNE_CACHE_DIR"] = cache_dir
    import psutil
    import torch

    from mmtune.config.run import DataConfig
    from mmtune.data.loading import load_splits, make_loader, resolve_data

    torch.set_num_threads(1)
    cfg = DataConfig(path=path, batch_size=batch_size, cache=cache)  # type: ignore[arg-type]
    info = resolve_data(cfg, TASKS)
    arrays = load_splits(info, ("train",), cache=cache)["train"]
    loader = make_loader(arrays, info, cfg, train=True)
    n = sum(int(batch["image"].shape[0]) for batch in loader)
    barrier.wait()
    memory = psutil.Process().memory_full_info()
    queue.put({"pss": memory.pss, "rss": memory.rss, "uss": memory.uss, "patients": n})
    barrier.wait()


def measure(prepared: Path, cache: str, trials: int, cache_dir: Path, batch_size: int) -> list[dict[str, int]]:
    """Run ``trials`` concurrent trial processes; their memory figures."""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(trials), context.Queue()
    procs = [
        context.Process(target=_trial, args=(str(prepared), cache, str(cache_dir), batch_size, barrier, queue))
        for _ in range(trials)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a benchmark trial process failed (exit {proc.exitcode})")
    return results


def _ratios(alone: list[dict[str, int]], together: list[dict[str, int]], trials: int) -> dict[str, Any]:
    one = alone[0]
    return {
        "one_trial_pss_mb": round(one["pss"] / 2**20, 1),
        "one_trial_rss_mb": round(one["rss"] / 2**20, 1),
        "one_trial_uss_mb": round(one["uss"] / 2**20, 1),
        "n_trials_pss_mb": round(sum(r["pss"] for r in together) / 2**20, 1),
        "n_trials_rss_sum_mb": round(sum(r["rss"] for r in together) / 2**20, 1),
        "rss_ratio": round(sum(r["pss"] for r in together) / (trials * one["pss"]), 3),
    }


def run(
    *,
    trials: int = 4,
    patients: int = 120,
    size: int = 128,
    slices: int = 16,
    replicate: int = 16,
    batch_size: int = 32,
    data: Path | None = None,
) -> dict[str, Any]:
    from mmtune.bench.ray_local import bench_ray
    from mmtune.bench.synthetic import bench_prepared
    from mmtune.config.run import DataConfig
    from mmtune.data.format import read_manifest
    from mmtune.data.loading import build_node_cache, resolve_data
    from mmtune.data.node_cache import CACHE_ENV

    with tempfile.TemporaryDirectory(prefix="mmtune-bench-concurrent-") as tmp:
        root = Path(tmp)
        if data is None:
            with bench_ray():
                prepared = bench_prepared(root, patients=patients, size=size, slices=slices, replicate=replicate)
        else:
            prepared = data
        manifest = read_manifest(prepared)
        cache_dir = root / "node-cache"
        previous = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = str(cache_dir)
        try:  # built once by the driver before the trials start, as run_ray_train does
            build_node_cache(resolve_data(DataConfig(path=str(prepared)), TASKS), ("train",))
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = previous
        load_before = os.getloadavg()[0]
        node = _ratios(
            measure(prepared, "node", 1, cache_dir, batch_size),
            measure(prepared, "node", trials, cache_dir, batch_size),
            trials,
        )
        memory = _ratios(
            measure(prepared, "memory", 1, cache_dir, batch_size),
            measure(prepared, "memory", trials, cache_dir, batch_size),
            trials,
        )
        train_bytes = sum(p.stat().st_size for p in cache_dir.rglob("image.npy"))
    return {
        "benchmark": "concurrent",
        "trials": trials,
        "patients": manifest.n_patients,
        "image": manifest.image.shape,
        "train_images_mb": round(train_bytes / 2**20, 1),
        "rss_ratio": node["rss_ratio"],
        "node_cache": node,
        "memory_path": memory,
        "goal_rss_ratio": GOAL_RSS_RATIO,
        "meets_goal": node["rss_ratio"] <= GOAL_RSS_RATIO,
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
