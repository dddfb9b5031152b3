"""``mmtune ablate``: an ablation study's cells x folds x seeds as Ray Tune trials. ``Study`` is a
``mmtune.tuning.plan.StudyPlan``: ``mmtune.tuning.driver.run_study`` runs it, as it runs a search space.

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
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mmtune.atomic import atomic_write_bytes, atomic_write_text
from mmtune.config.loading import get_dotted, validate
from mmtune.config.run import RunConfig
from mmtune.config.study import StudyConfig, load_study_file
from mmtune.errors import ConfigError, DataError, UserError
from mmtune.results_files import CELLS_FILE, STUDY_FILE
from mmtune.trial_config import RUN_KEY, TRIAL_META_KEY
from mmtune.tuning.cells import (
    Design,
    Replicate,
    design_frame,
    expand,
    expand_cells,
    split_sizes,
    trial_config,
)
from mmtune.tuning.plan import TuneSpec
from mmtune.tuning.space import absolute_path, absolute_paths, merge_data

if TYPE_CHECKING:
    from mmtune.tuning.resources import TrialResources
    from mmtune.tuning.results import StudyPaths, StudyResults

RUNS_FILE = "runs.jsonl"
# Run-config keys that tell an ablation's trials apart (the live table's columns, ``mmtune.searched`` in trials).
SEARCHED = ["tracking.tags.cell", "tracking.tags.split"]
# trials.parquet's searched-value column: the seed (the cell and split get their own columns, ``trial_identity``).
RESULT_COLUMNS = ["trainer.seed"]


@dataclass
class Study:
    """A loaded study: the validated file and the resolved base run config; a ``StudyPlan`` for the driver
    (a Tune grid over every trial's full run config, FIFO: an ablation never stops a trial early)."""

    path: Path
    config: StudyConfig
    raw: dict[str, Any]
    name: str
    base: dict[str, Any]
    metric: str
    mode: str
    max_t: int
    design: Design | None = None
    manifest: Any = None
    new_keys: set[str] | None = None  # on --resume of a grown study: the trials not planned before

    restart_hint = "pass --resume to continue it"

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def searched(self) -> list[str]:
        return list(SEARCHED)

    def check_with_data(self, manifest: Any) -> list[str]:
        """k against the classes / the groups, the final design, every cell against the registries."""
        check_data(self, manifest)
        check_registries(self, expand_with_data(self, manifest), manifest)
        return []

    def check_resume(self, paths: StudyPaths) -> None:
        """Base config (data included), folds and the evaluated split must be as run: they define the finished
        trials. Seeds, cells and factor levels may be added (``before_fit`` plans only the new trials)."""
        from mmtune.tuning.growth import refuse_changes

        record_path = paths.root / STUDY_FILE
        if not record_path.is_file():
            return
        record = yaml.safe_load(record_path.read_text(encoding="utf-8")) or {}
        refuse_changes(_fixed_part(record), _fixed_part({**self.raw, "base": self.base}), str(self.path))

    def before_fit(self, paths: StudyPaths, manifest: Any, resume: bool) -> None:
        """``study.yaml`` and ``cells.parquet``; on ``--resume`` the planned trials must be the same, or the design
        grew (seeds, cells, levels added): then the files describe the grown study and only the new trials run."""
        design = self._design()
        if resume:
            self.new_keys = _new_trials(paths.root, design) or None
            if not self.new_keys:
                return
        sizes = split_sizes(design, self.base["data"]["path"], manifest, stratify_task(self, manifest))
        write_study_files(self, paths.root, design, sizes)

    def grow_experiment(self, paths: StudyPaths) -> str | None:
        from mmtune.tuning.growth import next_experiment

        return next_experiment(paths.root) if self.new_keys else None

    def tune_spec(self, paths: StudyPaths, fields: dict[str, Any], max_concurrent: int) -> TuneSpec:
        """A grid over the trials' full run configs; FIFO; one checkpoint kept per trial."""
        from ray import tune
        from ray.tune.schedulers import FIFOScheduler

        design = self._design()
        trials = [t for t in design.trials if self.new_keys is None or t.key in self.new_keys]
        meta = fields[TRIAL_META_KEY]
        given = meta.get("ablation")  # a --trial-option ablation.x=... wins, as any trial option does
        if given is None or isinstance(given, dict):
            meta["ablation"] = {"study": self.name, "trials": len(design.trials), **(given or {})}
        return TuneSpec(
            param_space={RUN_KEY: tune.grid_search([t.config for t in trials]), **fields},
            scheduler=FIFOScheduler(),
            search_alg=None,
            num_samples=1,
            max_concurrent_trials=max_concurrent,
            keep_checkpoints=1,
        )

    def start_line(self, resources: TrialResources, paths: StudyPaths) -> str:
        design = self._design()
        grown = f", {len(self.new_keys)} of them new (the others are kept)" if self.new_keys else ""
        return (
            f"ablation {self.name}: {len(design.cells)} cells x {len(design.replicates)} splits = "
            f"{len(design.trials)} trials{grown}, up to {resources.max_concurrent} at once; "
            f"Tune state in {paths.tune_dir}"
        )

    def write_results(self, paths: StudyPaths, *, resume: bool, started_at: float) -> StudyResults:
        """The search's results + the ablation's columns; the run's wall time appended to ``runs.jsonl``."""
        results = write_ablation_results(self, paths)
        wall_s = round(time.time() - started_at, 1)
        _log_run(paths.root, {"resume": resume, "wall_s": wall_s, "trials": len(results.frame)})
        return results

    def _design(self) -> Design:
        assert self.design is not None, "check_with_data expands the design"
        return self.design


# ---------------------------------------------------------------------------------------------------- loading


def load_study(path: str | Path, overrides: list[str] | Mapping[str, Any] | None = None) -> Study:
    """Load and validate a study file (no data, no Ray): shape, base config, override keys and conflicts."""
    path = Path(path)
    items = list(overrides) if isinstance(overrides, list) else dict(overrides or {})
    config, raw = load_study_file(path, items)
    _absolute_level_paths(config)
    base = merge_data(copy.deepcopy(config.base), config)
    _find_card(base, path)
    run = validate(RunConfig, base, f"{path}: base")
    base = absolute_paths(run.model_dump(mode="json"))
    name = config.name or path.stem
    trainer = run.trainer
    study = Study(path, config, raw, name, base, trainer.monitor, trainer.mode, trainer.max_epochs)
    _check_cells_pydantic(study)
    from mmtune.tuning.metric_check import check_study_metric

    check_study_metric(str(path), base, study.metric, study.mode, metric_key="base.trainer.monitor")
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
        "metric": study.metric,
        "mode": study.mode,
    }
    header = f"# Ablation study {study.name} as run (file {study.path}, --set applied). Report: mmtune report {root}\n"
    atomic_write_text(root / STUDY_FILE, header + yaml.safe_dump(record, sort_keys=False))
    buffer = io.BytesIO()
    design_frame(design, sizes).to_parquet(buffer, index=False)
    atomic_write_bytes(root / CELLS_FILE, buffer.getvalue())


def _log_run(root: Path, entry: dict[str, Any]) -> None:
    with open(root / RUNS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------- resume


def _fixed_part(record: Mapping[str, Any]) -> dict[str, Any]:
    """What defines a finished trial: the resolved base, the folds (every ``repeats`` option but the seeds), the
    evaluated split."""
    repeats = dict(record.get("repeats") or {})
    repeats.pop("seeds", None)
    return {"base": record.get("base"), "repeats": repeats, "eval_split": record.get("eval_split")}


def _new_trials(root: Path, design: Design) -> set[str]:
    """The design's trials not planned before (a grown study); refused when planned trials went missing."""
    import pandas as pd

    cells = root / CELLS_FILE
    if not cells.is_file():
        return set()
    planned = set(pd.read_parquet(cells, columns=["key"])["key"])
    now = {t.key for t in design.trials}
    if not planned <= now:
        raise ConfigError(
            f"{root}: --resume with {len(planned - now)} planned trial(s) removed from the design (e.g. "
            f"{sorted(planned - now)[0]}); a study may only grow (seeds, cells, levels); resume with the same "
            "study file and --set options, or start a new study (name:)"
        )
    return now - planned


# ---------------------------------------------------------------------------------------------------- results


def write_ablation_results(study: Study, paths: StudyPaths) -> StudyResults:
    """The driver's results (``trials.parquet``, ``trials/``, ``best_config.yaml``) + the ablation's columns."""
    import io

    import pandas as pd

    from mmtune.tuning.results import write_results

    results = write_results(study, paths, RESULT_COLUMNS)
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
