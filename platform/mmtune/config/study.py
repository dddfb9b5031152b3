"""The ablation study YAML (``kind: ablation``): a base run config, factors with named levels, a design, repeats.

Example::

    kind: ablation
    name: ictcf_ablation
    base: {...}                       # a run config mapping, or a path to one
    data: {card: datasets/synthetic.yaml, path: data/synthetic_prepared, synth: {patients: 200}}
    factors:
      modality:
        image: {model.fusion.name: image_only}
        image+clinical: {model.fusion.name: concat}
      tasks:
        covid: {tasks: [covid]}
        covid+morbidity: {tasks: [covid, morbidity]}
    design: factorial                 # factorial | one_at_a_time | leave_one_out
    baseline: {modality: image, tasks: covid}     # default: the first level of every factor
    repeats: {seeds: [0, 1, 2], folds: 5, scheme: kfold, partition: repeated}
    metrics: [covid/auroc, morbidity/auroc]       # default: AUROC per classification task, MAE + Spearman per regression
    resources: {workers: 1, cpus_per_worker: 1}

``leave_one_out`` takes ``factors:`` as *what to drop* -> the overrides that drop it from the full (base) config::

    design: leave_one_out
    factors:
      clinical: {model.fusion.name: image_only}
      morbidity: {tasks: [covid]}

This module checks the shape of the file (pydantic, one-line errors with key paths). Key paths, conflicting
overrides, registries and data-dependent checks (k vs class counts, groups) are done by
``mmtune.tuning.cells`` / ``mmtune.tuning.ablation`` before anything runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mmtune.config.loading import StrictModel, load_base, load_yaml, parse_overrides, set_dotted, validate
from mmtune.config.search import ResourcesConfig, SearchDataConfig
from mmtune.errors import ConfigError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
METRIC_NAMES = ("auroc", "ap", "accuracy", "mae", "rmse", "spearman", "dice")
LOWER_IS_BETTER = frozenset({"mae", "rmse"})
_NAME = re.compile(NAME_PATTERN)

Design = Literal["factorial", "one_at_a_time", "leave_one_out"]


class RepeatsConfig(StrictModel):
    """How every cell is replicated: seeds x stratified patient-level k-fold, or leave-one-group-out x seeds.

    ``partition: repeated`` (default) draws a fresh stratified k-fold partition per seed (repeated k-fold: the
    split noise is sampled too); ``fixed`` uses one partition for all seeds (only initialisation varies). Either
    way every cell sees the same partitions, so comparisons between cells are paired.
    """

    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    folds: int | None = Field(None, ge=2, description="k of the k-fold (kfold only; default 5)")
    scheme: Literal["kfold", "logo"] = "kfold"
    partition: Literal["repeated", "fixed"] = "repeated"
    partition_seed: int = Field(0, description="offset of the partition seeds (fold seed = partition_seed + seed)")
    stratify_by: str | None = Field(None, description="task whose label stratifies the folds (default: the card's)")
    groups: list[str] | None = Field(None, min_length=2, description="logo: the groups to hold out (default: all)")

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        dupes = sorted({s for s in value if value.count(s) > 1})
        if dupes:
            raise ValueError(f"seed listed twice: {dupes[0]}")
        return value

    @model_validator(mode="after")
    def _scheme_options(self) -> RepeatsConfig:
        if self.scheme == "logo" and self.folds is not None:
            raise ValueError("folds applies to scheme: kfold; leave-one-group-out has one split per group")
        if self.scheme == "kfold" and self.groups is not None:
            raise ValueError("groups applies to scheme: logo")
        return self

    @property
    def k(self) -> int:
        return self.folds or 5


class StudyConfig(StrictModel):
    """The whole study file (``base`` already loaded into a mapping)."""

    kind: Literal["ablation"]
    name: str | None = Field(None, pattern=NAME_PATTERN, description="study name (default: the file name)")
    base: dict[str, Any]
    data: SearchDataConfig | None = None
    factors: dict[str, dict[str, Any]] = Field(min_length=1)
    design: Design = "factorial"
    baseline: dict[str, str] | None = Field(None, description="factor -> baseline level (default: each first level)")
    repeats: RepeatsConfig = Field(default_factory=RepeatsConfig)
    metrics: list[str] | None = Field(None, min_length=1, description="`<task>/<metric>` to analyse")
    evaluate: Literal["val", "test"] | None = Field(
        None, description="split the per-split metrics come from (default: val for kfold, test for logo)"
    )
    tune: Any = Field(None, description="an inner search per cell (not supported yet)")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    max_failures: int = Field(1, ge=0, description="restarts of a failed trial, from its last checkpoint")

    @field_validator("design", mode="before")
    @classmethod
    def _design_shorthand(cls, value: Any) -> Any:
        # ``design: {name: one_at_a_time}`` is accepted as well as the plain name.
        if isinstance(value, dict) and set(value) == {"name"}:
            return value["name"]
        return value

    @field_validator("factors")
    @classmethod
    def _factor_names(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"factor name {name!r}: use letters, digits and _ . + -")
        return value

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            task, _, metric = item.partition("/")
            if not task or metric not in METRIC_NAMES:
                raise ValueError(
                    f"metric {item!r}: expected `<task>/<metric>` with metric one of {', '.join(METRIC_NAMES)}"
                )
        return value

    @field_validator("tune")
    @classmethod
    def _no_inner_search(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError(
                "an inner search per cell is not supported yet; remove `tune:` and fix the searched values in the "
                "factors (or run `mmtune tune` on the cell's config first)"
            )
        return value

    def baseline_level(self, factor: str) -> str:
        """The level every other level of ``factor`` is compared with."""
        if self.baseline and factor in self.baseline:
            return self.baseline[factor]
        return next(iter(self.factors[factor]))

    @property
    def eval_split(self) -> str:
        """Which split's predictions give the per-split metrics (out-of-fold val, or the held-out group)."""
        if self.evaluate is not None:
            return self.evaluate
        return "test" if self.repeats.scheme == "logo" else "val"


def check_levels(study: StudyConfig, source: str) -> None:
    """Levels and baselines (one-line ``ConfigError`` with the key path): >= 2 levels per factor, mappings of
    dotted keys (an empty level is the base config), baselines that name a level; leave-one-out drops are non-empty."""
    loo = study.design == "leave_one_out"
    for factor, levels in study.factors.items():
        if loo:
            _check_overrides(levels, f"{source}: factors.{factor}", allow_empty=False)
            continue
        if len(levels) < 2:
            raise ConfigError(f"{source}: factors.{factor}: needs at least 2 levels, got {len(levels)}")
        for level, overrides in list(levels.items()):
            where = f"{source}: factors.{factor}.{level}"
            if not _NAME.match(str(level)):
                raise ConfigError(f"{where}: level names use letters, digits and _ . + -")
            if overrides is None:
                levels[level] = {}
                continue
            _check_overrides(overrides, where, allow_empty=True)
    if study.baseline is None:
        return
    if loo:
        raise ConfigError(f"{source}: baseline: leave_one_out compares every cell with the full (base) config")
    for factor, level in study.baseline.items():
        if factor not in study.factors:
            raise ConfigError(f"{source}: baseline.{factor}: not a factor; factors: {', '.join(study.factors)}")
        if level not in study.factors[factor]:
            known = ", ".join(study.factors[factor])
            raise ConfigError(f"{source}: baseline.{factor}: {level!r} is not a level of {factor}; levels: {known}")


def _check_overrides(overrides: Any, where: str, allow_empty: bool) -> None:
    if not isinstance(overrides, dict):
        raise ConfigError(
            f"{where}: expected a mapping of dotted config keys to values (got {type(overrides).__name__})"
        )
    if not overrides and not allow_empty:
        raise ConfigError(f"{where}: expected the overrides that drop it (dotted config keys -> values)")
    for key in overrides:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}: override keys must be dotted config keys (got {key!r})")


def load_study_file(path: str | Path, overrides: list[str] | dict[str, Any] | None = None) -> tuple[StudyConfig, dict]:
    """Load a study YAML, resolve ``base:`` (a path -> its mapping), apply ``--set`` overrides, validate the shape.

    Returns the validated model and the raw mapping after overrides (written to ``results/<study>/study.yaml``).
    ``--set base.data.card=datasets/ictcf.yaml`` retargets a study at another data set.
    """
    path = Path(path)
    raw = load_yaml(path)
    if raw.get("kind") != "ablation":
        raise ConfigError(f"{path}: kind: expected `ablation` (got {raw.get('kind')!r}); is this a search space?")
    raw["base"] = load_base(raw.get("base"), path)
    items = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    for key, value in items.items():
        _apply_override(raw, key, value)
    study = validate(StudyConfig, raw, str(path))
    check_levels(study, str(path))
    return study, raw


def _apply_override(raw: dict[str, Any], key: str, value: Any) -> None:
    """``--set`` on the study file. ``factors.<f>.<level>.<dotted key>`` addresses an override whose key has dots;
    ``factors.<f>=null`` drops a factor."""
    if key.startswith("factors."):
        rest = key[len("factors.") :]
        factor, _, tail = rest.partition(".")
        factors = raw.setdefault("factors", {})
        levels = factors.get(factor) if isinstance(factors, dict) else None
        if not isinstance(levels, dict):
            raise ConfigError(f"--set {key}: factor {factor!r} is not in the study")
        if not tail and value is None:  # --set factors.<f>=null drops the factor
            factors.pop(factor)
            if isinstance(raw.get("baseline"), dict):
                raw["baseline"].pop(factor, None)
            return
        level, _, dotted = tail.partition(".")
        if dotted and isinstance(levels.get(level), dict):
            levels[level][dotted] = value
            return
    if key.startswith("base.") and not isinstance(raw.get("base"), dict):
        raise ConfigError(f"--set {key}: the study has no base mapping")
    set_dotted(raw, key, value)
