"""``mmtune confirm results/<study>``: re-train a search's top configurations as an ablation, then score them once
on the held-out test split.

A search picks its winner on the validation patients, so the winner's validation score is optimistic. This module
turns the top K complete trials of a finished search (ranked by their validation metric, never by test), plus an
optional baseline (a trial of the study, or ``k=v`` overrides of the search's base config), into an ablation study
with one factor ``config`` whose levels are those configurations, and runs it through the ablation engine
(``mmtune.tuning.ablation``): repeated stratified k-fold CV of the non-test patients, the same folds and seeds for
every configuration, each trial at the search's full budget (``max_t``). ``mmtune.analysis.confirm`` then compares
them (paired corrected t-tests, Holm) and scores each on the held-out test split with its fold-model ensemble.

Every check that can fail on the user's input runs before anything is written or Ray starts: the study directory
(a finished ``mmtune tune`` study), ``--top`` against the complete trials, the baseline, a test split in the data,
the generated study (registries, k against class counts), and an existing ``results/<study>_confirm``.

``results/<study>_confirm/`` is an ablation results directory (``study.yaml``, ``cells.parquet``,
``trials.parquet``, ``trials/``) plus ``confirm_study.yaml`` (the generated study: ``mmtune ablate`` reruns it),
``confirm.json`` (what was confirmed), ``test_predictions.parquet`` and ``confirm/`` (the report).
"""

from __future__ import annotations

import copy
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mmtune.atomic import atomic_write_text
from mmtune.config.loading import get_dotted, parse_overrides, set_dotted, validate
from mmtune.config.run import RunConfig
from mmtune.errors import ConfigError, DataError, UserError
from mmtune.results_files import (
    CELLS_FILE,
    CONFIRM_FILE,
    CONFIRM_STUDY_FILE,
    METRICS_FILE,
    SPACE_FILE,
    TRIAL_COLUMNS,
    TRIALS_FILE,
)

FINISHED = ("TERMINATED", "ERROR")
SUFFIX = "_confirm"
FACTOR = "config"
BASELINE_LEVEL = "baseline"
DEFAULT_TOP, DEFAULT_FOLDS, DEFAULT_SEEDS = 3, 5, 2
_KV_SPLIT = re.compile(r",(?=\s*[A-Za-z_][\w.]*\s*=)")  # commas that start the next k=v (values may hold commas)


class ConfirmError(UserError):
    """A study that cannot be confirmed, or options that do not fit it."""


@dataclass
class SearchStudy:
    """A finished search read back from ``results/<study>/``: trials, their run configs, what ranks them."""

    root: Path
    name: str
    frame: pd.DataFrame  # trials.parquet + ``complete`` + ``value`` (the validation metric of the best epoch)
    configs: dict[str, dict[str, Any]]  # trial -> run config (trials/<trial>/config.yaml)
    metric: str
    mode: str
    searched: list[str]
    base: dict[str, Any] | None  # the search's base run config (space.yaml), when the study recorded it
    resources: dict[str, Any]

    def ranked(self) -> list[str]:
        """Complete trials with a finite validation metric, best first (ties: trial id)."""
        usable = self.frame[self.frame["complete"] & self.frame["value"].map(_finite)]
        ascending = self.mode == "min"
        usable = usable.sort_values(["value", "trial"], ascending=[ascending, True], kind="mergesort")
        return [str(t) for t in usable["trial"]]


@dataclass
class Level:
    """One configuration to confirm: its level name, role, searched values, validation rank and run config."""

    name: str
    role: str  # "top" | "baseline" | "top+baseline"
    config: dict[str, Any]
    trial: str | None = None
    search_rank: int | None = None
    search_value: float | None = None
    searched: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)  # k=v baseline: what the user set


@dataclass
class ConfirmPlan:
    """Everything needed to run the confirmation; built without writing anything or starting Ray."""

    source: SearchStudy
    name: str
    out: Path  # results/<study>_confirm
    levels: list[Level]
    baseline: str | None  # level name of the baseline
    folds: int
    seeds: int
    doc: dict[str, Any]  # the generated ablation study file
    meta: dict[str, Any]  # confirm.json
    n_trials: int = 0


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------------- the search


def load_search(root: str | Path) -> SearchStudy:
    """Read a finished ``mmtune tune`` results directory; one-line errors for anything else."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ConfirmError(f"{root}: study directory not found")
    if (root / CELLS_FILE).is_file():
        raise ConfirmError(f"{root}: an ablation study; confirm takes a search (`mmtune tune`) results directory")
    if not (root / TRIALS_FILE).is_file():
        raise ConfirmError(f"{root}: not a search results directory (no {TRIALS_FILE}); run `mmtune tune` into it")
    try:
        frame = pd.read_parquet(root / TRIALS_FILE)
    except (OSError, ValueError) as exc:
        raise ConfirmError(f"{root / TRIALS_FILE}: unreadable ({str(exc).splitlines()[0]})") from None
    if frame.empty:
        raise ConfirmError(f"{root}: the study has no trials")
    unfinished = frame[~frame["status"].isin(FINISHED)]
    if len(unfinished):
        raise ConfirmError(
            f"{root}: the study is not finished ({len(unfinished)} of {len(frame)} trials are "
            f"{', '.join(sorted(set(unfinished['status'].astype(str))))}); finish it with `mmtune tune SPACE --resume`"
        )
    configs: dict[str, dict[str, Any]] = {}
    for trial in frame["trial"].astype(str):
        path = root / "trials" / trial / "config.yaml"
        if path.is_file():
            configs[trial] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    space = _read_space(root)
    first = next(iter(configs.values()), {})
    metric = str(space.get("metric") or get_dotted(first, "trainer.monitor", "val/mean_auroc"))
    mode = str(space.get("mode") or get_dotted(first, "trainer.mode", "max"))
    column = f"best/{metric}"
    frame = frame.copy()
    frame["trial"] = frame["trial"].astype(str)
    frame["value"] = pd.to_numeric(frame[column], errors="coerce") if column in frame else float("nan")
    frame["complete"] = [
        status == "TERMINATED" and trial in configs and _is_complete(root, trial, row_dir)
        for trial, status, row_dir in zip(frame["trial"], frame["status"], frame.get("trial_dir", [None] * len(frame)))
    ]
    searched = list(space.get("space") or {}) or [
        c
        for c in frame.columns
        if c not in TRIAL_COLUMNS and not c.startswith(("best/", "final/")) and c not in ("value", "complete")
    ]
    return SearchStudy(
        root=root,
        name=root.name,
        frame=frame,
        configs=configs,
        metric=metric,
        mode=mode,
        searched=searched,
        base=space.get("base"),
        resources=_resources(root, frame, space),
    )


def _read_space(root: Path) -> dict[str, Any]:
    from mmtune.analysis.search_data import read_space

    try:
        return read_space(root)
    except ValueError as exc:
        raise ConfirmError(str(exc)) from None


def _is_complete(root: Path, trial: str, trial_dir: Any) -> bool:
    """The trial's ``metrics.json`` says ``complete: true`` (its best weights were scored on val and test)."""
    candidates = [root / "tune" / trial / METRICS_FILE]
    if isinstance(trial_dir, str) and trial_dir:
        candidates.append(Path(trial_dir) / METRICS_FILE)
    for path in candidates:
        if path.is_file():
            try:
                return bool(json.loads(path.read_text(encoding="utf-8")).get("complete"))
            except ValueError:
                return False
    return False


def _resources(root: Path, frame: pd.DataFrame, space: dict[str, Any]) -> dict[str, Any]:
    """The search's per-trial resources: ``space.yaml``, else a trial's Tune params, else one CPU worker."""
    from mmtune.trial_config import CPUS_PER_WORKER, GPUS_PER_WORKER, RESOURCES_KEY, WORKERS

    if isinstance(space.get("resources"), dict):
        return dict(space["resources"])
    for trial in frame["trial"]:
        path = root / "tune" / str(trial) / "params.json"
        if path.is_file():
            try:
                res = json.loads(path.read_text(encoding="utf-8")).get(RESOURCES_KEY) or {}
            except ValueError:
                continue
            keys = {WORKERS: "workers", CPUS_PER_WORKER: "cpus_per_worker", GPUS_PER_WORKER: "gpus_per_worker"}
            return {name: res[key] for key, name in keys.items() if key in res}
    return {"workers": 1, "cpus_per_worker": 1}


# ---------------------------------------------------------------------------------------------------- configurations


def normalise(config: dict[str, Any], where: str) -> dict[str, Any]:
    """A run config as every trial of the confirmation starts from it: validated and dumped in full (so configs
    differ only where they really differ), without the keys the ablation sets per trial (name, tags, folds, seed)."""
    run = validate(RunConfig, copy.deepcopy(config), where).model_dump(mode="json")
    run.pop("name", None)
    run["tracking"]["tags"] = {}
    for key in ("cv", "fold", "test_group"):
        run["data"][key] = None
    run["trainer"]["seed"] = 0
    return run


def diff_overrides(base: Any, target: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted overrides that turn ``base`` into ``target``: recurse where both are mappings with the same keys,
    else replace the whole value (a free-form ``params`` mapping with other keys is replaced as a whole)."""
    if base == target:
        return {}
    if isinstance(base, dict) and isinstance(target, dict) and set(base) == set(target):
        out: dict[str, Any] = {}
        for key in target:
            out.update(diff_overrides(base[key], target[key], f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): copy.deepcopy(target)}


def searched_values(study: SearchStudy, config: dict[str, Any]) -> dict[str, Any]:
    return {key: get_dotted(config, key) for key in study.searched if get_dotted(config, key) is not None}


def resolve_baseline(study: SearchStudy, spec: str) -> Level:
    """``--baseline``: a trial id of the study, or comma-separated ``k=v`` overrides of the search's base config."""
    spec = spec.strip()
    if spec in study.configs:
        config = normalise(study.configs[spec], f"--baseline {spec}")
        return Level(BASELINE_LEVEL, "baseline", config, trial=spec, searched=searched_values(study, config))
    if "=" not in spec:
        known = ", ".join(sorted(study.configs)[:5]) + (" ..." if len(study.configs) > 5 else "")
        raise ConfirmError(
            f"--baseline {spec}: not a trial of study {study.name} ({known}) and not k=v overrides of its base config"
        )
    if study.base is None:
        raise ConfirmError(
            f"--baseline {spec}: k=v overrides need the search's base config, and {study.root} has no {SPACE_FILE} "
            "(a study from an older mmtune); name a trial id instead"
        )
    from mmtune.tuning.keypaths import check_key_path

    try:
        overrides = parse_overrides([part.strip() for part in _KV_SPLIT.split(spec) if part.strip()])
    except ConfigError as exc:
        raise ConfirmError(f"--baseline {spec}: {exc}".replace("--set ", "")) from None
    config = copy.deepcopy(study.base)
    for key, value in overrides.items():
        check_key_path(key, f"--baseline {key}")
        set_dotted(config, key, value)
    from pydantic import ValidationError

    from mmtune.config.loading import format_validation_error

    try:
        RunConfig.model_validate(config)
    except ValidationError as exc:
        message = format_validation_error(exc, "run config").removeprefix("run config: ")
        raise ConfirmError(f"--baseline {spec}: not a valid config: {message}") from None
    config = normalise(config, f"--baseline {spec}")
    return Level(BASELINE_LEVEL, "baseline", config, searched=searched_values(study, config), overrides=overrides)


def _test_patients(config: dict[str, Any]) -> int:
    """Patients in the prepared data's test split (the manifest's counts; no data read)."""
    from mmtune.data.format import read_manifest

    path = get_dotted(config, "data.path")
    if not path or isinstance(path, list):
        return -1  # a list of sources: the ablation engine refuses it with its own message
    manifest = read_manifest(Path(path))
    by_task = (manifest.counts or {}).get("test") or {}
    first = next(iter(by_task.values()), {})
    return int(sum(int(v) for v in first.values()))


# ---------------------------------------------------------------------------------------------------- the plan


def plan_confirm(
    root: str | Path,
    *,
    top: int = DEFAULT_TOP,
    baseline: str | None = None,
    folds: int = DEFAULT_FOLDS,
    seeds: int = DEFAULT_SEEDS,
    results: str | Path | None = None,
    resume: bool = False,
) -> ConfirmPlan:
    """Check everything and build the confirmation study in memory (nothing is written, Ray is not started)."""
    if top < 1:
        raise ConfirmError(f"--top {top}: must be at least 1")
    if folds < 2:
        raise ConfirmError(f"--folds {folds}: k-fold needs at least 2 folds")
    if seeds < 1:
        raise ConfirmError(f"--seeds {seeds}: must be at least 1")
    study = load_search(root)
    ranked = study.ranked()
    values = dict(zip(study.frame["trial"], study.frame["value"], strict=True))
    levels: list[Level] = []
    for rank, trial in enumerate(ranked, start=1):
        config = normalise(study.configs[trial], f"{study.root}/trials/{trial}/config.yaml")
        if any(level.config == config for level in levels):
            continue  # the same configuration sampled twice: one level, its best-ranked trial
        levels.append(Level(trial, "top", config, trial, rank, float(values[trial]), searched_values(study, config)))
    if top > len(levels):
        raise ConfirmError(
            f"--top {top}: study {study.name} has only {len(levels)} distinct complete configuration(s) with a finite "
            f"{study.metric} (of {len(study.frame)} trials); use --top {max(len(levels), 1)} or grow the study"
        )
    levels = levels[:top]
    if top == 1 and baseline is None:
        raise ConfirmError("--top 1: nothing to compare with; use --top 2 or more, or give a --baseline")
    baseline_name: str | None = None
    if baseline is not None:
        base_level = resolve_baseline(study, baseline)
        same = next((lv for lv in levels if lv.trial == base_level.trial or lv.config == base_level.config), None)
        if same is not None:  # the baseline is one of the top K: compare with it, do not train it twice
            same.role = "top+baseline"
            baseline_name = same.name
        else:
            if base_level.trial is not None:
                base_level.search_value = float(values[base_level.trial]) if _finite(values[base_level.trial]) else None
                base_level.search_rank = ranked.index(base_level.trial) + 1 if base_level.trial in ranked else None
            levels.append(base_level)
            baseline_name = base_level.name
    if _test_patients(levels[0].config) == 0:
        raise ConfirmError(
            f"{study.root}: the study's data ({get_dotted(levels[0].config, 'data.path')}) have no test split; "
            "confirm scores the configurations once on held-out test patients"
        )
    name = f"{study.name}{SUFFIX}"
    out = Path(results).expanduser().resolve() / name if results is not None else study.root.parent / name
    from mmtune.tuning.results import StudyPaths

    exists = StudyPaths(out).has_experiment()
    if exists and not resume:
        raise ConfirmError(f"{out}: a confirmation of {study.name} exists; pass --resume to continue it")
    if resume and not exists:
        raise ConfirmError(f"{out}: no confirmation to resume; run without --resume to start it")
    doc = study_document(study, levels, baseline_name, name, folds, seeds)
    meta = {
        "source": str(study.root),
        "study": study.name,
        "metric": study.metric,
        "mode": study.mode,
        "primary": primary_metric(study.metric),
        "baseline": baseline_name,
        "folds": folds,
        "seeds": seeds,
        "test_scoring": "fold-model ensemble",
        "levels": [
            {
                "name": lv.name,
                "role": lv.role,
                "trial": lv.trial,
                "search_rank": lv.search_rank,
                "search_value": lv.search_value,
                "searched": lv.searched,
                "overrides": lv.overrides,
            }
            for lv in levels
        ],
    }
    plan = ConfirmPlan(study, name, out, levels, baseline_name, folds, seeds, doc, meta)
    plan.n_trials = _check_study(plan)
    return plan


def primary_metric(metric: str) -> str:
    """The search's metric as an ablation metric: ``val/<task>/<m>`` -> ``<task>/<m>``; ``val/mean_auroc`` stays
    ``mean_auroc`` (the mean over the classification tasks' AUROCs of each split)."""
    name = metric.split("/", 1)[1] if metric.startswith(("val/", "test/")) else metric
    return name


def study_document(
    study: SearchStudy, levels: list[Level], baseline: str | None, name: str, folds: int, seeds: int
) -> dict[str, Any]:
    """The ablation study file: base = the search's base (or the first configuration), one factor ``config``."""
    base = normalise(study.base, f"{study.root}/{SPACE_FILE}: base") if study.base is not None else levels[0].config
    factor = {lv.name: diff_overrides(base, lv.config) for lv in levels}
    doc: dict[str, Any] = {
        "kind": "ablation",
        "name": name,
        "base": base,
        "factors": {FACTOR: factor},
        "design": "factorial",
        "baseline": {FACTOR: baseline or levels[0].name},
        "repeats": {"seeds": list(range(seeds)), "folds": folds, "scheme": "kfold", "partition": "repeated"},
        "resources": study.resources,
    }
    return doc


def _dump(doc: dict[str, Any], header: str) -> str:
    return header + yaml.safe_dump(doc, sort_keys=False)


def _check_study(plan: ConfirmPlan) -> int:
    """Load the generated study through the ablation engine and run its checks before Ray: pydantic, override
    keys, registries, k against the smallest class. Returns the number of trials."""
    from mmtune.tuning.ablation import check_data, check_registries, expand_with_data, load_study
    from mmtune.tuning.data import plan_data

    with tempfile.TemporaryDirectory(prefix="mmtune-confirm-") as tmp:
        path = Path(tmp) / CONFIRM_STUDY_FILE
        path.write_text(_dump(plan.doc, ""), encoding="utf-8")
        try:
            study = load_study(path)
            data = plan_data(study)
            if data.manifest is None:
                raise DataError(f"{get_dotted(study.base, 'data.path')}: the study's prepared data are missing")
            check_data(study, data.manifest)
            design = expand_with_data(study, data.manifest)
            check_registries(study, design, data.manifest)
        except UserError as exc:
            message = str(exc).replace(str(path), f"confirmation of {plan.source.name}")
            raise ConfirmError(message) from None
    return len(design.trials)


# ---------------------------------------------------------------------------------------------------- running


def write_plan_files(plan: ConfirmPlan) -> Path:
    """``confirm_study.yaml`` and ``confirm.json`` in ``results/<study>_confirm/`` (after every check passed)."""
    plan.out.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Confirmation of the top configurations of search {plan.source.name} ({plan.source.root}), generated "
        f"by `mmtune confirm`.\n# Rerun or grow it with: mmtune ablate {plan.out / CONFIRM_STUDY_FILE} "
        f"--results {plan.out.parent} --resume\n"
    )
    path = atomic_write_text(plan.out / CONFIRM_STUDY_FILE, _dump(plan.doc, header))
    atomic_write_text(plan.out / CONFIRM_FILE, json.dumps(plan.meta, indent=2, sort_keys=True, default=str) + "\n")
    return path


def run_confirm(
    plan: ConfirmPlan,
    *,
    address: str | None = "local",
    resume: bool = False,
    trial_fn: Any = None,
    meta: dict[str, Any] | None = None,
    verbose: bool = False,
    live: bool = True,
    num_cpus: int | None = None,
) -> tuple[Any, Any]:
    """Write the plan, run the ablation (or resume it), then the confirmation analysis and report; returns the
    ablation's ``StudyResults`` and the ``ConfirmReport``."""
    from mmtune.tuning.ablation import load_study
    from mmtune.tuning.driver import run_study

    path = write_plan_files(plan)
    study = load_study(path)
    outcome = run_study(
        study,
        results_dir=plan.out.parent,
        address=address,
        resume=resume,
        trial_fn=trial_fn,
        meta=meta,
        verbose=verbose,
        live=live,
        num_cpus=num_cpus,
    )
    from mmtune.analysis.confirm_report import write_confirm_report

    report = write_confirm_report(plan.out) if outcome.complete or len(outcome.frame) else None
    return outcome, report
