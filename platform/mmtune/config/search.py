"""The search-space YAML: a base run config, the dotted keys to search, and how Tune should search them.

Example::

    name: quickstart
    base: configs/concat.yaml          # or an inline run config mapping
    data: {card: datasets/synthetic.yaml, path: data/synthetic}
    space:
      model.fusion.name: {choice: [concat, late, gated, film]}
      weighting.name: {choice: [equal, uncertainty, gradnorm]}
      weighting.params.alpha: {uniform: [0.5, 2.0], when: {weighting.name: gradnorm}}
      optim.lr: {loguniform: [1.0e-4, 3.0e-3]}
    scheduler: {name: asha, max_t: 4, grace_period: 1, reduction_factor: 2}
    search: random
    metric: val/mean_auroc
    mode: max
    num_samples: 8
    resources: {workers: 1, cpus_per_worker: 1}
    clinical: {threshold: youden, subgroups: {sex: {column: Gender}}}   # the report's best-configuration section

This module only checks the *shape* of the file (pydantic, one-line errors with key paths). That every space
key exists in the run config, that every sampled name is registered and that some combination is valid is
checked by ``mmtune.tuning`` (``space``, ``keypaths``, ``candidates``) before anything is submitted to Ray.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mmtune.config.clinical import ClinicalConfig
from mmtune.config.loading import StrictModel, yaml_number

SAMPLERS = ("choice", "grid", "uniform", "loguniform", "randint")
DISCRETE = ("choice", "grid")


class SpaceEntry(StrictModel):
    """One searched key: exactly one sampler, optionally active only ``when`` other keys have given values.

    ``when: {weighting.name: gradnorm}`` (or a list of values) samples this key only for matching configs; the
    others keep the base value. ``randint: [lo, hi]`` includes both ends.
    """

    choice: list[Any] | None = Field(None, min_length=1)
    grid: list[Any] | None = Field(None, min_length=1)
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None
    when: dict[str, Any] | None = Field(None, description="dotted key -> value (or list of values) that activates")

    @field_validator("choice", "grid", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [yaml_number(v) for v in value]
        return value

    @field_validator("when", mode="before")
    @classmethod
    def _non_empty_when(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value:
            raise ValueError("`when` needs at least one `key: value` condition")
        return value

    @model_validator(mode="after")
    def _one_sampler(self) -> SpaceEntry:
        given = [name for name in SAMPLERS if getattr(self, name) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ValueError(f"give exactly one of {', '.join(SAMPLERS)} (found: {found})")
        kind = given[0]
        if kind in ("uniform", "loguniform", "randint"):
            lo, hi = getattr(self, kind)
            if not lo < hi:
                raise ValueError(f"{kind}: expected [low, high] with low < high (got [{lo}, {hi}])")
            if kind == "loguniform" and lo <= 0:
                raise ValueError(f"loguniform: bounds must be > 0 (got [{lo}, {hi}])")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in SAMPLERS if getattr(self, name) is not None)

    @property
    def is_discrete(self) -> bool:
        return self.kind in DISCRETE

    @property
    def values(self) -> list[Any]:
        """Discrete values (choice/grid), or the two bounds of a range (what validation tries)."""
        if self.kind in DISCRETE:
            return list(getattr(self, self.kind))
        lo, hi = getattr(self, self.kind)
        return [lo, hi]

    def conditions(self) -> dict[str, list[Any]]:
        """``when`` with every condition as a list of accepted values."""
        return {k: list(v) if isinstance(v, list) else [v] for k, v in (self.when or {}).items()}


class SchedulerConfig(StrictModel):
    """How trials are stopped early. ``max_t`` defaults to the base config's ``trainer.max_epochs``.

    ``asha``: asynchronous successive halving; ``hyperband``: asynchronous HyperBand (ASHA over >= 3 brackets);
    ``fifo``: every trial runs its full budget.
    """

    name: Literal["asha", "hyperband", "fifo"] = "asha"
    max_t: int | None = Field(None, ge=1, description="most epochs a trial may run")
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1)
    brackets: int = Field(1, ge=1, description="ASHA brackets (hyperband uses at least 3)")

    @model_validator(mode="after")
    def _grace_within_budget(self) -> SchedulerConfig:
        if self.max_t is not None and self.grace_period > self.max_t:
            raise ValueError(f"grace_period ({self.grace_period}) must be <= max_t ({self.max_t})")
        return self


class SearchAlgConfig(StrictModel):
    """How configs are proposed: random sampling, a full factorial over choices, or Optuna's TPE."""

    name: Literal["random", "grid", "optuna"] = "random"
    seed: int | None = 0


class ResourcesConfig(StrictModel):
    """What one trial needs. One worker trains inline in the trial; more start a Ray Train ``TorchTrainer``."""

    workers: int = Field(1, ge=1, description="Ray Train workers per trial (DDP)")
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    max_concurrent: int | None = Field(None, ge=1, description="default: what the cluster's CPUs/GPUs allow")
    inline: bool | None = Field(None, description="train inside the trial (default: when workers == 1)")
    reuse_actors: bool = Field(True, description="reuse trial processes (saves the process start per trial)")
    warm_workers: bool = Field(
        True, description="Ray Train trials: start worker processes ahead, with torch and Lightning imported"
    )
    autoscale: bool = Field(
        False, description="the cluster grows on demand: do not refuse resources it lacks right now"
    )

    @model_validator(mode="after")
    def _inline_is_one_worker(self) -> ResourcesConfig:
        if self.inline and self.workers > 1:
            raise ValueError(f"inline: true trains in the trial process, so it needs workers: 1 (got {self.workers})")
        return self

    @property
    def runs_inline(self) -> bool:
        return self.workers == 1 if self.inline is None else self.inline

    @property
    def cpus_per_trial(self) -> float:
        return self.workers * self.cpus_per_worker

    @property
    def gpus_per_trial(self) -> float:
        return self.workers * self.gpus_per_worker


class SynthSpec(StrictModel):
    """Write the built-in synthetic raw data into the card's source when it is absent (image size from the card)."""

    patients: int = Field(200, ge=10)
    seed: int = 0


class SearchDataConfig(StrictModel):
    """The data every trial uses; merged into ``base.data``. A card is prepared into ``path`` if it is absent."""

    path: str | None = Field(None, description="prepared data set directory")
    card: str | None = Field(None, description="dataset card to prepare into `path` when `path` does not exist")
    source: str | None = Field(None, description="raw data dir overriding the card's source")
    synth: SynthSpec | None = Field(None, description="generate synthetic raw data when the source is absent")


class SearchSpaceConfig(StrictModel):
    """The whole search-space file (``base`` already loaded into a mapping)."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="study name")
    base: dict[str, Any]
    space: dict[str, SpaceEntry] = Field(min_length=1)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    search: SearchAlgConfig = Field(default_factory=SearchAlgConfig)
    metric: str | None = Field(None, description="default: base trainer.monitor")
    mode: Literal["max", "min"] | None = Field(None, description="default: base trainer.mode")
    num_samples: int = Field(1, ge=1, description="samples per grid point")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    data: SearchDataConfig | None = None
    max_failures: int = Field(2, ge=0, description="restarts of a failed trial, from its last checkpoint")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept per trial")
    clinical: ClinicalConfig | None = Field(
        None, description="report settings for the best configuration: targets, threshold rule, subgroups"
    )

    @field_validator("scheduler", "search", mode="before")
    @classmethod
    def _name_shorthand(cls, value: Any) -> Any:
        # ``scheduler: fifo`` is shorthand for ``scheduler: {name: fifo}``.
        return {"name": value} if isinstance(value, str) else value
