"""Warm Ray Train worker processes: started ahead of a trial, with torch, Lightning and mmtune's training modules
already imported, so a trial's worker skips the ~8 s of imports a fresh process spent on 2 cores.

Why it works this way (Ray 2.60, measured): Ray starts every actor in a fresh process unless a prestarted,
never-used process with the *same runtime environment* waits in the raylet's pool (processes that ran tasks are
never given to actors, so warming a process with a task does not help). The raylet's ``PrestartWorkers`` call
starts such processes and keeps them alive for ``keep_alive_s``; a process-start hook (the env var Ray reads at
worker start, ``worker_process_setup_hook``) imports the heavy modules while the process waits. Ray Train's worker
actors carry the same hook in their runtime environment (``RunConfig(worker_runtime_env=...)``), and the prestart
request names the identical runtime environment, serialised as the core worker serialises a merged one (compact,
sorted JSON), because the raylet pools processes by that string.

The driver prestarts one batch at study start; every warm worker then starts one replacement on its own node as
soon as its loop starts, so back-to-back trials find warm processes (when a trial lasts longer than the preload). A worker that was not warm (its environment did not
match, e.g. a job ``runtime_env`` with a working_dir) starts no replacement, so a mismatch costs one batch, never
a growing pool. ``resources.warm_workers: false`` turns it off.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from typing import Any

PRELOAD_HOOK = "mmtune.training.warm_workers.preload"
KEEP_ALIVE_S = 300
# what the worker stamps in its start-up phases: 1 when it found its process warm
WARM_STAMP = "worker_prewarmed"
# what ``train_loop_per_worker`` imports (the slow part of a cold worker's start)
PRELOAD_MODULES = (
    "pytorch_lightning",
    "ray.train.lightning",
    "ray.train.torch",
    "mmtune.data.loading",
    "mmtune.data.multisource",
    "mmtune.models",
    "mmtune.training.callbacks",
    "mmtune.training.fit",
    "mmtune.training.module",
    "mmtune.training.rng_state",
    "mmtune.tracking.aim",
    "aim",
    "aim.storage.context",
    "monai",  # small_cnn and the MONAI backbones
    "timm",  # the timm backbones
)
PRELOADED_AT: float | None = None  # when ``preload`` finished in this process (None: it did not run)


def _hook_env_var() -> str:
    from ray._private import ray_constants

    return ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR


def worker_runtime_env() -> dict[str, Any]:
    """``RunConfig(worker_runtime_env=...)`` for trial workers: the preload hook runs when a process starts."""
    return {"env_vars": {_hook_env_var(): PRELOAD_HOOK}}


def preload() -> None:
    """Runs once in a fresh worker process: import what ``train_loop_per_worker`` imports.

    Never raises: Ray ends a worker whose start hook fails, and the trial imports what it needs itself anyway.
    """
    global PRELOADED_AT
    try:
        for name in PRELOAD_MODULES:
            importlib.import_module(name)
    except Exception:  # a failed preload only means a cold start
        return
    PRELOADED_AT = time.time()


def controller_processes() -> int:
    """Processes a Ray Train run starts in its controller's environment (Ray 2.60): the controller, its
    synchronisation actor and, unless turned off, its preemption watcher."""
    from ray.train.v2._internal.constants import ENABLE_PREEMPTION_WATCHER_ENV_VAR

    return 2 + (os.environ.get(ENABLE_PREEMPTION_WATCHER_ENV_VAR, "1").lower() not in ("0", "false"))


def _compact(env_vars: dict[str, str]) -> str:
    return json.dumps({"env_vars": env_vars}, separators=(",", ":"), sort_keys=True)


def _controller_env(worker_env_vars: dict[str, str]) -> str:
    """The Train controller's environment (and its sync actor's and watcher's): a worker's without the hook."""
    return _compact({key: value for key, value in worker_env_vars.items() if key != _hook_env_var()})


def serialized_worker_env(trainable_env_vars: dict[str, str] | None = None) -> str:
    """The runtime environment Ray gives a trial's worker actors, as the raylet sees it.

    The Train controller is created with the propagated Ray Train env vars (plus a default for
    ``RAY_WARN_BLOCKING_GET_INSIDE_ASYNC``) merged over the trial process's own; its worker actors merge
    ``worker_runtime_env()`` over the controller's. The core worker serialises that merge as compact, sorted JSON.
    """
    from ray.train.v2._internal.constants import (
        DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE,
        RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR,
        get_env_vars_to_propagate,
    )

    propagated = get_env_vars_to_propagate()
    controller = {**(trainable_env_vars or {}), **propagated}
    controller.setdefault(RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_ENV_VAR, DEFAULT_RAY_WARN_BLOCKING_GET_INSIDE_ASYNC_VALUE)
    return _compact({**controller, **propagated, **worker_runtime_env()["env_vars"]})


def own_env_vars() -> dict[str, str] | None:
    """This process's runtime-environment env vars; None when its environment has more than env vars (a working
    dir, packages), whose merged serialisation this module does not reproduce."""
    import ray

    env = dict(ray.get_runtime_context().runtime_env or {})
    env.pop("config", None)
    if set(env) - {"env_vars"}:
        return None
    return dict(env.get("env_vars") or {})


def prestart(count: int, serialized_env: str, keep_alive_s: int = KEEP_ALIVE_S) -> bool:
    """Ask this node's raylet to start ``count`` worker processes with ``serialized_env``; False if it refused."""
    if count < 1:
        return False
    import ray
    from ray._private.grpc_utils import init_grpc_channel
    from ray._private.utils import get_runtime_env_info
    from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc
    from ray.runtime_env import RuntimeEnv

    try:  # an optimisation: anything refused here means cold starts, never a failed trial
        context = ray.get_runtime_context()
        node = next(n for n in ray.nodes() if n["NodeID"] == context.get_node_id())
        env = RuntimeEnv(**json.loads(serialized_env))
        info = get_runtime_env_info(env, is_job_runtime_env=False, serialize=False)
        info.serialized_runtime_env = serialized_env
        request = node_manager_pb2.PrestartWorkersRequest(
            language=common_pb2.PYTHON,
            job_id=bytes.fromhex(context.get_job_id()),
            runtime_env_info=info,
            keep_alive_duration_secs=keep_alive_s,
            num_workers=count,
        )
        channel = init_grpc_channel(f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}")
        try:
            node_manager_pb2_grpc.NodeManagerServiceStub(channel).PrestartWorkers(request, timeout=10)
        finally:
            channel.close()
    except Exception:
        return False
    return True


def trainable_env_vars(job_env_vars: dict[str, str]) -> dict[str, str]:
    """The env vars of the Tune trial process that will create the Train controller: Tune gives its trainable
    actors a few defaults and the driver's values of the Tune/Train variables it propagates."""
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS, ENV_VARS_TO_PROPAGATE

    own = {key: os.environ[key] for key in ENV_VARS_TO_PROPAGATE if key in os.environ}
    return {**job_env_vars, **DEFAULT_ENV_VARS, **own}


def prestart_for_study(workers_per_trial: int, concurrent_trials: int) -> bool:
    """Driver, at study start: one warm batch for the first trials."""
    env_vars = own_env_vars()
    if env_vars is None:
        return False
    worker_env = serialized_worker_env(trainable_env_vars(env_vars))
    prestart(controller_processes() * concurrent_trials, _controller_env(json.loads(worker_env)["env_vars"]))
    return prestart(workers_per_trial * concurrent_trials, worker_env)


def apply_thread_count() -> None:
    """After a preload: torch was imported before Ray set ``OMP_NUM_THREADS`` for this actor, so it chose its
    thread count from the machine (a 1-CPU worker ran 2 threads on 2 cores); apply Ray's value now."""
    if PRELOADED_AT is None or not os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def was_prestarted(trainer_fit_at: float | None) -> bool:
    """In a trial worker: True when this process existed before its trial asked for workers (it was warm)."""
    import psutil

    return trainer_fit_at is not None and psutil.Process(os.getpid()).create_time() < trainer_fit_at


def replace_self(rank: int) -> bool:
    """In a warm trial worker: start one warm process on this node for the next trial; rank 0 also starts the
    processes of the next trial's Train controller (their environment is the worker's without the preload hook)."""
    env = own_env_vars()
    if env is None:
        return False
    started = prestart(1, _compact(env))
    if rank == 0:
        prestart(controller_processes(), _controller_env(env))
    return started
