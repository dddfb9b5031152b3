"""``mmtune ablate``: an ablation study's cells x folds x seeds as Ray Tune trials, through the tuning driver.

Order, as in ``mmtune tune``: everything that needs no cluster is checked first (the study file, override key
paths and conflicts, every cell's config against pydantic), then Ray is joined or started, the data prepared if
needed, data-dependent checks run (k against the smallest class, the group column, every cell against the
registries with the data's manifest), ``study.yaml`` and ``cells.parquet`` are written, and only then are trials
submitted: a grid over the trials' full run configs (``{"run": tune.grid_search([...]), ...}``), FIFO scheduler
(an ablation never stops a trial early), resumable with ``--resume``. The results directory has the structure of
``mmtune tune`` results (``trials.parquet`` with ``key`` / ``cell`` / ``factor.<f>`` / ``fold`` / ``seed`` columns
added, ``trials/<trial>/predictions.parquet``) plus ``study.yaml`` and ``cells.parquet`` (the planned trials).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmtune.atomic import atomic_write_bytes, atomic_write_text
from mmtune.config.loading import get_dotted, validate
from mmtune.config.run import RunConfig
from mmtune.config.search import SchedulerConfig, SearchAlgConfig, SearchSpaceConfig, SpaceEntry
from mmtune.config.study import StudyConfig, load_study_file
from mmtune.console import err_console
from mmtune.errors import ConfigError, DataError, UserError
from mmtune.results_files import CELLS_FILE, STUDY_FILE
from mmtune.tuning.cells import (
    Design,
    Replicate,
    design_frame,
    expand,
    expand_cells,
    split_sizes,
    trial_config,
)
from mmtune.tuning.space import absolute_path, absolute_paths, merge_data

RUNS_FILE = "runs.jsonl"


@dataclass
class Study:
    """A loaded study: the validated file, the resolved base run config and a search-space view for the driver."""

    path: Path
    config: StudyConfig
    raw: dict[str, Any]
    name: str
    base: dict[str, Any]
    space: Any  # mmtune.tuning.space.SearchSpace: what the tuning driver's helpers expect
    design: Design | None = None
    manifest: Any = None

    @property
    def where(self) -> str:
        return str(self.path)


# ---------------------------------------------------------------------------------------------------- loading


def load_study(path: str | Path, overrides: list[str] | Mapping[str, Any] | None = None) -> Study:
    """Load and validate a study file (no data, no Ray): shape, base config, override keys and conflicts."""
    from mmtune.tuning.space import SearchSpace

    path = Path(path)
    items = list(overrides) if isinstance(overrides, list) else dict(overrides or {})
    config, raw = load_study_file(path, items)
    _absolute_level_paths(config)
    base = merge_data(copy.deepcopy(config.base), config)
    _find_card(base, path)
    run = validate(RunConfig, base, f"{path}: base")
    base = absolute_paths(run.model_dump(mode="json"))
    name = config.name or path.stem
    space_config = SearchSpaceConfig(
        name=name,
        base=base,
        space={"trainer.seed": SpaceEntry(grid=list(config.repeats.seeds))},
        scheduler=SchedulerConfig(name="fifo"),
        search=SearchAlgConfig(name="grid"),
        num_samples=1,
        resources=config.resources,
        data=config.data,
        max_failures=config.max_failures,
        keep_checkpoints=1,
    )
    space = SearchSpace(
        path=path,
        config=space_config,
        base=base,
        name=name,
        metric=run.trainer.monitor,
        mode=run.trainer.mode,
        max_t=run.trainer.max_epochs,
        order=["trainer.seed"],
    )
    study = Study(path, config, raw, name, base, space)
    _check_cells_pydantic(study)
    return study


def _find_card(base: dict[str, Any], study_path: Path) -> None:
    """A relative ``data.card`` is looked up from the CWD, then beside the study file and one level up (so the
    shipped studies run from any directory: ``search_spaces/x.yaml`` names ``datasets/synthetic.yaml``)."""
    data = base.get("data")
    card = data.get("card") if isinstance(data, dict) else None
    if not isinstance(card, str) or not card or Path(card).is_absolute() or Path(card).is_file():
        return
    for folder in (study_path.parent, study_path.parent.parent):
        if (folder / card).is_file():
            data["card"] = str((folder / card).resolve())
            return


def _absolute_level_paths(config: StudyConfig) -> None:
    """Factor levels that switch the data (``data.path``: one dir or a list of sources, as multi-dataset cells do)
    name paths relative to the CWD; trials run in other directories, so they become absolute like the base's."""
    for levels in config.factors.values():
        candidates = [levels] if config.design == "leave_one_out" else list(levels.values())
        for overrides in candidates:
            if not isinstance(overrides, dict) or "data.path" not in overrides:
                continue
            value = overrides["data.path"]
            if isinstance(value, list):
                overrides["data.path"] = [
                    {**s, "path": absolute_path(s.get("path"))} if isinstance(s, dict) else absolute_path(s)
                    for s in value
                ]
            else:
                overrides["data.path"] = absolute_path(value)


def _check_cells_pydantic(study: Study) -> None:
    """Override keys, conflicts and every cell's run config (pydantic) before anything else runs; errors name the
    cell."""
    from pydantic import ValidationError

    from mmtune.config.loading import format_validation_error

    cells, _, _ = expand_cells(study.config, study.where)
    rep = study.config.repeats
    probe = Replicate(rep.seeds[0], fold=0, partition_seed=0) if rep.scheme == "kfold" else Replicate(0, group="?")
    for cell in cells:
        config = trial_config(study.base, cell, probe, study.config, study.name, None)
        try:
            RunConfig.model_validate(config)
        except ValidationError as exc:
            message = format_validation_error(exc, "run config").removeprefix("run config: ")
            raise ConfigError(f"{study.where}: cell {cell.name!r}: {message}") from None


# ---------------------------------------------------------------------------------------------------- data checks


def check_data(study: Study, manifest: Any) -> None:
    """Data-dependent checks: k-fold against class counts, the group column for leave-one-group-out."""
    from mmtune.data.cv import check_k

    rep = study.config.repeats
    if study.base["data"].get("path") and isinstance(study.base["data"]["path"], list):
        raise DataError(f"{study.where}: data.path: an ablation runs on one prepared data set (got a list)")
    if rep.scheme == "kfold":
        check_k(manifest, rep.k, rep.stratify_by, f"{study.where}: repeats.folds")
        return
    groups = sorted(manifest.groups)
    column = manifest.split.group_column or "group"
    if len(groups) < 2:
        shown = groups[0] if groups else "none"
        raise DataError(
            f"{study.where}: repeats.scheme: logo needs at least 2 groups in the card's group column ({column!r}); "
            f"the data have one: {shown!r}"
        )
    for group in rep.groups or []:
        if group not in manifest.groups:
            raise DataError(
                f"{study.where}: repeats.groups: {group!r} is not a group of the data; groups: {', '.join(groups)}"
            )


def stratify_task(study: Study, manifest: Any) -> str | None:
    from mmtune.data.cv import default_stratify_by

    return study.config.repeats.stratify_by or (default_stratify_by(manifest) if manifest is not None else None)


def expand_with_data(study: Study, manifest: Any | None) -> Design:
    """The final design: groups and the stratification task come from the manifest when there is one."""
    groups = study.config.repeats.groups or (sorted(manifest.groups) if manifest is not None else None)
    stratify = stratify_task(study, manifest)
    design = expand(study.config, study.base, study.name, groups=groups, stratify_by=stratify, where=study.where)
    for trial in design.trials:
        trial.config["tracking"]["tags"]["split"] = trial.replicate.split_id
    study.design = design
    study.manifest = manifest
    return design


def check_registries(study: Study, design: Design, manifest: Any | None) -> None:
    """Every cell's config against the registries (and the data's tasks when the manifest is known)."""
    from mmtune.tuning.candidates import component_checker

    seen: set[str] = set()
    for trial in design.trials:
        if trial.cell.name in seen:
            continue
        seen.add(trial.cell.name)
        run = RunConfig.model_validate(trial.config)
        try:
            manifests = _cell_manifests(run, manifest, study.base["data"].get("path"))  # a cell's own data sets
            component_checker(manifests)(run)
        except UserError as exc:
            raise ConfigError(f"{study.where}: cell {trial.cell.name!r}: {exc}") from None
        if manifest is not None:
            known = {t.name for m in (manifests if isinstance(manifests, list) else [manifests]) for t in m.tasks}
            for task in run.task_names:
                if task not in known:
                    raise ConfigError(
                        f"{study.where}: cell {trial.cell.name!r}: task {task!r} is not in the data; "
                        f"it has: {', '.join(sorted(known))}"
                    )


def _cell_manifests(run: RunConfig, manifest: Any | None, base_path: Any = None) -> Any:
    """The study's manifest, or the cell's own when a factor level switches the data: one per data source for a
    multi-dataset cell, or another preparation (e.g. with CLAHE). A missing directory fails here, before Ray."""
    from mmtune.data.format import read_manifest

    if manifest is None:
        return manifest
    if isinstance(run.data.path, list):
        return [read_manifest(Path(source.path)) for source in run.data.path]
    if run.data.path and base_path and Path(run.data.path) != Path(base_path):
        return read_manifest(Path(run.data.path))
    return manifest


# ---------------------------------------------------------------------------------------------------- files


def write_study_files(study: Study, root: Path, design: Design, sizes: Mapping[str, Mapping[str, int]] | None) -> None:
    """``study.yaml`` (the study as run: file + ``--set``, resolved base) and ``cells.parquet`` (planned trials)."""
    import io

    root.mkdir(parents=True, exist_ok=True)
    record = copy.deepcopy(study.raw)
    record["name"] = study.name
    record["base"] = study.base
    record["resolved"] = {
        "factors": design.factors,
        "baselines": design.baselines,
        "cells": [{"name": c.name, "levels": c.levels, "overrides": c.overrides} for c in design.cells],
        "eval_split": study.config.eval_split,
        "scheme": study.config.repeats.scheme,
        "trials": len(design.trials),
        "metric": study.space.metric,
        "mode": study.space.mode,
    }
    header = f"# Ablation study {study.name} as run (file {study.path}, --set applied). Report: mmtune report {root}\n"
    atomic_write_text(root / STUDY_FILE, header + yaml.safe_dump(record, sort_keys=False))
    buffer = io.BytesIO()
    design_frame(design, sizes).to_parquet(buffer, index=False)
    atomic_write_bytes(root / CELLS_FILE, buffer.getvalue())


def _log_run(root: Path, entry: dict[str, Any]) -> None:
    with open(root / RUNS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------- running


def run_ablation(
    study: Study,
    *,
    results_dir: str | Path = "results",
    address: str | None = "local",
    resume: bool = False,
    trial_fn: Any = None,
    meta: Mapping[str, Any] | None = None,
    verbose: bool = False,
    live: bool = True,
    num_cpus: int | None = None,
) -> Any:
    """Run (or resume) the study's trials on Ray Tune and write ``results/<study>/``; returns ``StudyResults``."""
    from mmtune.tuning.data import ensure_data, plan_data
    from mmtune.tuning.driver import StudyExistsError, connect, default_trial_fn, init_aim_repo, study_paths

    started_at = time.time()
    paths = study_paths(study.space, results_dir)
    if resume and not paths.has_experiment():
        raise StudyExistsError(f"{paths.root}: no study to resume; run without --resume to start it")
    if not resume and paths.has_experiment():
        raise StudyExistsError(f"{paths.root}: study {study.name!r} exists; pass --resume to continue it")
    plan = plan_data(study.space)  # may fill in base.data.path for a bare card
    study.base = study.space.base
    if plan.manifest is not None:
        _checks_before_ray(study, plan.manifest)
    trial_fn = trial_fn or default_trial_fn()
    started = connect(address, verbose=verbose, num_cpus=num_cpus)
    live_table = None
    try:
        manifest = ensure_data(plan, address=None if address in (None, "local") else address)
        design = _checks_before_ray(study, manifest)
        from mmtune.tuning.resources import cluster_snapshot, plan_resources

        cluster, nodes = cluster_snapshot()
        resources = plan_resources(study.config.resources, cluster, nodes, where=f"{study.where}: resources")
        if resume:
            _check_same_design(paths.root, design)
        else:
            sizes = split_sizes(design, study.base["data"]["path"], manifest, stratify_task(study, manifest))
            write_study_files(study, paths.root, design, sizes)
        init_aim_repo(study.base["tracking"].get("aim_repo"))
        tuner, live_table = _build_tuner(study, design, paths, resources, trial_fn, meta, resume, live)
        err_console.print(
            f"ablation {study.name}: {len(design.cells)} cells x {len(design.replicates)} splits = "
            f"{len(design.trials)} trials, up to {resources.max_concurrent} at once; Tune state in {paths.tune_dir}",
            highlight=False,
        )
        tuner.fit()
    finally:
        if live_table is not None:
            live_table.close()
        if started:
            import ray

            ray.shutdown()
    results = write_ablation_results(study, paths)
    _log_run(paths.root, {"resume": resume, "wall_s": round(time.time() - started_at, 1), "trials": len(results.frame)})
    return results


def _checks_before_ray(study: Study, manifest: Any) -> Design:
    check_data(study, manifest)
    design = expand_with_data(study, manifest)
    check_registries(study, design, manifest)
    return design


def _check_same_design(root: Path, design: Design) -> None:
    import pandas as pd

    cells = root / CELLS_FILE
    if not cells.is_file():
        return
    planned = set(pd.read_parquet(cells, columns=["key"])["key"])
    now = {t.key for t in design.trials}
    if planned != now:
        raise ConfigError(
            f"{root}: --resume with a different design ({len(now - planned)} new / {len(planned - now)} missing "
            "trials); resume with the same study file and --set options, or start a new study (name:)"
        )


def _build_tuner(
    study: Study,
    design: Design,
    paths: Any,
    resources: Any,
    trial_fn: Any,
    meta: Mapping[str, Any] | None,
    resume: bool,
    live: bool,
) -> tuple[Any, Any]:
    """A Tune grid over the trials' full run configs, FIFO (no early stopping), like the driver's tuner otherwise."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import FIFOScheduler

    from mmtune.trial_config import RUN_KEY
    from mmtune.tuning.driver import trial_fields
    from mmtune.tuning.live import LiveTrialTable
    from mmtune.tuning.trial_entry import make_trainable

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    trainable = tune.with_resources(make_trainable(trial_fn), resources.trial)
    searched = ["tracking.tags.cell", "tracking.tags.split"]
    space = study.space
    live_table = LiveTrialTable(study.name, space.metric, space.mode, searched, space.max_t) if live else None
    callbacks: list[Any] = [JsonLoggerCallback(), CSVLoggerCallback()]
    if live_table is not None:
        callbacks.insert(0, live_table)
    if resume:
        tuner = tune.Tuner.restore(str(paths.tune_dir), trainable, resume_unfinished=True, resume_errored=True)
        internal = tuner._local_tuner  # the restored run config keeps pickled callbacks; show a fresh live table
        if internal is not None:
            internal.get_run_config().callbacks = callbacks
        return tuner, live_table
    extra = {"ablation": {"study": study.name, "trials": len(design.trials)}, **dict(meta or {})}
    fields = trial_fields(space, paths, extra)
    fields["mmtune"]["searched"] = searched
    param_space = {RUN_KEY: tune.grid_search([t.config for t in design.trials]), **fields}
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=space.metric,
            mode=space.mode,
            scheduler=FIFOScheduler(),
            num_samples=1,
            max_concurrent_trials=resources.max_concurrent,
            reuse_actors=study.config.resources.reuse_actors,
            trial_name_creator=lambda trial: str(trial.trial_id),
            trial_dirname_creator=lambda trial: str(trial.trial_id),
        ),
        run_config=tune.RunConfig(
            name=paths.tune_dir.name,
            storage_path=str(paths.root),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=study.config.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=space.metric, checkpoint_score_order=space.mode
            ),
            callbacks=callbacks,
        ),
    )
    return tuner, live_table


# ---------------------------------------------------------------------------------------------------- results


def write_ablation_results(study: Study, paths: Any) -> Any:
    """The driver's results (``trials.parquet``, ``trials/``, ``best_config.yaml``) + the ablation's columns."""
    import io

    import pandas as pd

    from mmtune.tuning.results import write_results

    results = write_results(study.space, paths)
    frame = results.frame.copy()
    extra = [trial_identity(paths.trials_dir / str(t) / "config.yaml") for t in frame.get("trial", [])]
    if len(frame):
        frame = pd.concat([frame.reset_index(drop=True), pd.DataFrame(extra)], axis=1)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write_bytes(paths.trials_parquet, buffer.getvalue())
    results.frame = frame
    return results


def trial_identity(config_path: Path) -> dict[str, Any]:
    """key / cell / split / seed / factor levels of a trial, read back from its run config's Aim tags."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    tags = get_dotted(config or {}, "tracking.tags", {}) or {}
    cell, split = tags.get("cell"), tags.get("split")
    return {"key": f"{cell} @ {split}" if cell and split else None, "cell": cell, "split_id": split}
