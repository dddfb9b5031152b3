"""Aim tracking: one Aim run per training run / trial, with the flattened config as params, tags for grouping and
metric contexts so ``aim up`` can compare runs by fusion / weighting / backbone per task.

Metric keys map to Aim names and contexts: ``val/covid/auroc`` -> ``auroc`` with ``{"subset": "val", "task":
"covid"}``; ``train/loss`` -> ``loss`` with ``{"subset": "train"}``; ``val/mean_auroc`` -> ``mean_auroc`` with
``{"subset": "val"}``; multi-dataset ``val/<dataset>/<task>/auroc`` adds ``"dataset"`` to the context;
diagnostics ``diag/covid/grad_norm`` -> ``grad_norm`` with ``{"subset": "diag", "task": "covid"}`` (a task pair
``covid~morbidity`` for ``grad_cosine``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

SUBSETS = ("train", "val", "test", "diag")  # diag: per-epoch MTL diagnostics (mmtune.training.diagnostics)
TAG_KEYS = ("study", "trial", "fold", "seed", "fusion", "weighting", "backbone")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"model.fusion.name": "concat", ...}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def metric_name_and_context(key: str) -> tuple[str, dict[str, str]]:
    """Split a metric key into an Aim metric name and context (see the module docstring)."""
    parts = key.split("/")
    if len(parts) < 2 or parts[0] not in SUBSETS:
        return key.replace("/", "_"), {}
    context = {"subset": parts[0]}
    if len(parts) == 2:
        return parts[1], context
    if len(parts) == 3:
        context["task"] = parts[1]
        return parts[2], context
    context["dataset"] = parts[1]
    context["task"] = parts[2]
    return "_".join(parts[3:]), context


def run_tags(cfg: Any, *, study: str | None = None, trial: str | None = None) -> dict[str, str]:
    """Tags that group and compare runs: study, trial, fold, seed, fusion, weighting, backbone (+ config tags)."""
    tags = {
        "study": study or cfg.tracking.experiment,
        "trial": trial or cfg.name,
        "fold": "none" if cfg.data.fold is None else str(cfg.data.fold),
        "seed": str(cfg.trainer.seed),
        "fusion": cfg.model.fusion.name,
        "weighting": cfg.weighting.name,
        "backbone": cfg.model.backbone.name,
    }
    tags.update({str(k): str(v) for k, v in cfg.tracking.tags.items()})
    return tags


class MMTuneAimLogger(Logger):
    """A Lightning logger writing one Aim run (rank zero only) with mmtune's params, tags and metric contexts."""

    def __init__(
        self,
        repo: str | Path,
        experiment: str,
        *,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        run_hash: str | None = None,
    ) -> None:
        super().__init__()
        self._repo = repo_location(repo)
        self._experiment_name = experiment
        self._run_name = run_name
        self._params = dict(params or {})
        self._tags = dict(tags or {})
        self._run_hash = run_hash
        self._run: Any = None

    @property
    def name(self) -> str:
        return self._experiment_name

    @property
    def version(self) -> str:
        return self.run_hash or ""

    @property
    def save_dir(self) -> str:
        return self._repo

    @property
    def run_hash(self) -> str | None:
        if self._run is not None:
            return self._run.hash
        return self._run_hash

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._run is None:
            self._run = open_run(
                self._repo,
                self._experiment_name,
                run_name=self._run_name,
                params=self._params,
                tags=self._tags,
                run_hash=self._run_hash,
            )
            self._run_hash = self._run.hash
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Params are set when the run opens (the flattened run config); Lightning's own hparams add nothing."""
        _ = self.experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        run = self.experiment
        for key, value in metrics.items():
            value = float(value)
            if math.isnan(value):
                continue  # undefined metrics (one class only) are not points on a curve
            name, context = metric_name_and_context(key)
            run.track(value, name=name, step=step, epoch=None if epoch is None else int(epoch), context=context)

    @rank_zero_only
    def finalize(self, status: str = "") -> None:
        """Lightning calls this when ``fit`` ends; the run stays open so test metrics can follow (see ``close``)."""

    def close(self) -> None:
        """Close the run so its RocksDB lock is released (another process may then open the repo)."""
        if self._run is not None:
            self._run_hash = self._run.hash
            self._run.close()
            self._run = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_run"] = None
        return state


def open_run(
    repo: str | Path,
    experiment: str,
    *,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    run_hash: str | None = None,
) -> Any:
    """Create (or resume by hash) an Aim run with params under ``hparams`` and tags as ``key=value`` Aim tags."""
    from aim import Run

    repo = repo_location(repo)
    if not is_remote(repo):
        Path(repo).mkdir(parents=True, exist_ok=True)
        init_repo(repo)
    common = {"repo": repo, "system_tracking_interval": None, "capture_terminal_logs": False}
    if run_hash:
        run = Run(run_hash, force_resume=True, log_system_params=False, **common)
    else:
        run = Run(experiment=experiment, log_system_params=False, **common)
        run["hparams"] = _aim_safe(dict(params or {}))
        run["mmtune"] = dict(tags or {})
        for key, value in (tags or {}).items():
            run.add_tag(f"{key}={value}")
    if run_name:
        run.name = run_name
    return run


def is_remote(repo: str | Path) -> bool:
    """``aim://host:port`` names a remote ``aim server`` (clusters), anything else a local directory."""
    return "://" in str(repo)


def repo_location(repo: str | Path) -> str:
    """A local repo as an absolute path (workers run in other directories); a remote address unchanged."""
    if is_remote(repo):
        return str(repo)
    return str(Path(repo).expanduser().resolve())


def init_repo(repo: str | Path) -> None:
    """Initialise an Aim repo directory if it is not one yet (``aim init`` without a subprocess)."""
    from aim import Repo

    path = str(Path(repo).resolve())
    if not Repo.exists(path):
        Repo.from_path(path, init=True)


def _aim_safe(params: Mapping[str, Any]) -> dict[str, Any]:
    """Aim stores str/int/float/bool/None and lists of them; anything else is stored as its string."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[key] = list(value)
        else:
            out[key] = str(value)
    return out


def reindex(repo: str | Path) -> None:
    """Make runs written by other processes visible to ``aim.Repo(repo).iter_runs()``."""
    aim = Path(sys.executable).with_name("aim")
    cmd = [str(aim) if aim.exists() else "aim", "storage", "--repo", str(repo), "reindex", "--yes"]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "AIM_LOG_LEVEL": "error"}, timeout=120)


def list_runs(repo: str | Path, *, refresh: bool = True) -> list[dict[str, Any]]:
    """Runs of an Aim repo as dicts: hash, experiment, name, tags, hparams, mmtune tags, tracked metric names."""
    from aim import Repo

    repo = str(Path(repo).resolve())
    if refresh:
        reindex(repo)
    out = []
    aim_repo = Repo.from_path(repo)
    try:
        for run in aim_repo.iter_runs():
            metrics = [(m.name, dict(m.context.to_dict())) for m in run.metrics()]
            out.append(
                {
                    "hash": run.hash,
                    "experiment": run.experiment,
                    "name": run.name,
                    "tags": sorted(getattr(t, "name", t) for t in run.props.tags),
                    "hparams": dict(run.get("hparams") or {}),
                    "mmtune": dict(run.get("mmtune") or {}),
                    "metrics": metrics,
                }
            )
    finally:
        aim_repo.close()
    return out


def metric_values(repo: str | Path, run_hash: str, name: str, context: Mapping[str, str]) -> list[float]:
    """Tracked values of one metric (name + context) of one run, in step order."""
    from aim import Repo

    aim_repo = Repo.from_path(str(Path(repo).resolve()))
    try:
        run = aim_repo.get_run(run_hash)
        if run is None:
            return []
        from aim.storage.context import Context

        seq = run.get_metric(name, Context(dict(context)))
        if seq is None:
            return []
        return [float(v) for v in seq.values.values_numpy()]
    finally:
        aim_repo.close()
