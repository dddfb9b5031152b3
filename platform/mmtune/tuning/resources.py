"""Can the cluster ever run one trial, and how many at once?

Ray waits forever for resources it does not have; a search that asks for a GPU on a CPU-only cluster would hang
without a word. ``plan_resources`` compares a trial's needs with ``ray.cluster_resources()`` (and each node's
resources, since one worker's bundle must fit on one node) and raises a one-line error instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmtune.config.search import ResourcesConfig
from mmtune.console import warn
from mmtune.errors import ConfigError


@dataclass(frozen=True)
class TrialResources:
    """What Tune reserves for the trial function itself, and the concurrency cap."""

    trial: dict[str, float]
    max_concurrent: int
    cpus_per_trial: float
    gpus_per_trial: float


def trial_resources(res: ResourcesConfig) -> dict[str, float]:
    """Resources of the Tune trial process.

    Inline trials train in that process, so it holds the worker's CPUs/GPUs. A trial that starts a
    ``TorchTrainer`` holds nothing (its workers reserve their own bundles); Ray rejects an empty bundle, so it
    asks for one byte of memory (DESIGN.md: otherwise worker groups starve on small machines).
    """
    if res.runs_inline:
        out = {"cpu": res.cpus_per_worker}
        if res.gpus_per_worker:
            out["gpu"] = res.gpus_per_worker
        return out
    return {"cpu": 0, "memory": 1}


def plan_resources(
    res: ResourcesConfig,
    cluster: Mapping[str, float],
    nodes: Sequence[Mapping[str, float]],
    where: str = "resources",
) -> TrialResources:
    """Check ``res`` against the cluster; return the trial's resources and the concurrency cap.

    ``cluster`` is ``ray.cluster_resources()``, ``nodes`` each alive node's resources. With ``autoscale: true``
    a shortfall is only a warning (the autoscaler adds nodes on demand).
    """
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    problems: list[str] = []
    if res.gpus_per_worker and not any(float(n.get("GPU", 0)) >= res.gpus_per_worker for n in nodes):
        problems.append(
            f"{where}.gpus_per_worker: a worker needs {res.gpus_per_worker:g} GPU on one node but the largest node "
            f"has {max((float(n.get('GPU', 0)) for n in nodes), default=0):g} (cluster total {gpus:g} GPUs)"
        )
    if not any(float(n.get("CPU", 0)) >= res.cpus_per_worker for n in nodes):
        problems.append(
            f"{where}.cpus_per_worker: a worker needs {res.cpus_per_worker:g} CPUs on one node but the largest node "
            f"has {max((float(n.get('CPU', 0)) for n in nodes), default=0):g}"
        )
    if res.cpus_per_trial > cpus:
        problems.append(
            f"{where}: a trial needs {res.cpus_per_trial:g} CPUs (workers {res.workers} x cpus_per_worker "
            f"{res.cpus_per_worker:g}) but the cluster has {cpus:g}"
        )
    if res.gpus_per_trial > gpus:
        problems.append(
            f"{where}: a trial needs {res.gpus_per_trial:g} GPUs (workers {res.workers} x gpus_per_worker "
            f"{res.gpus_per_worker:g}) but the cluster has {gpus:g}"
        )
    if problems:
        message = f"{problems[0]} (ray.cluster_resources()); lower it, or set resources.autoscale: true on a cluster that grows"
        if not res.autoscale:
            raise ConfigError(message)
        warn(message + "; waiting for the autoscaler")
    allowed = _fits(cpus, res.cpus_per_trial)
    if res.gpus_per_trial:
        allowed = min(allowed, _fits(gpus, res.gpus_per_trial))
    max_concurrent = max(1, allowed)
    if res.max_concurrent is not None:
        max_concurrent = res.max_concurrent if res.autoscale else min(res.max_concurrent, max_concurrent)
    return TrialResources(
        trial=trial_resources(res),
        max_concurrent=max_concurrent,
        cpus_per_trial=res.cpus_per_trial,
        gpus_per_trial=res.gpus_per_trial,
    )


def _fits(total: float, each: float) -> int:
    return math.floor(total / each + 1e-9) if each > 0 else 1_000_000


def cluster_snapshot() -> tuple[dict[str, float], list[dict[str, float]]]:
    """``ray.cluster_resources()`` and the resources of every alive node (Ray must be initialised)."""
    import ray

    nodes: list[dict[str, Any]] = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    return dict(ray.cluster_resources()), nodes
