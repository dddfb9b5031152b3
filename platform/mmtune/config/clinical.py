"""The ``clinical:`` section of a search space, an ablation study or ``mmtune evaluate``: what a clinical reader
wants beyond AUROC (calibration bins, fixed-specificity / fixed-sensitivity targets, how the operating threshold is
chosen on validation predictions, decision-curve thresholds, subgroups).

Example::

    clinical:
      ece_bins: 10
      specificity_targets: [0.9]          # sensitivity at 90 % specificity
      sensitivity_targets: [0.9]          # specificity at 90 % sensitivity
      threshold: youden                   # or {sensitivity: 0.9}: the threshold reaching 90 % sensitivity on val
      net_benefit_at: [0.1, 0.2, 0.3]
      subgroups:
        sex: {column: Gender, labels: {0: female, 1: male}}
        age: {column: Age, bins: [0, 50, 65, 120]}
      min_subgroup: 10                    # fewer patients (or no patient of a class): shown, without a CI
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import Field, field_validator, model_validator

from mmtune.config.loading import StrictModel


def _check_fraction(value: float, what: str) -> float:
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{what}: expected a number in (0, 1), got {value}")
    return float(value)


class ThresholdRule(StrictModel):
    """``{sensitivity: 0.9}`` or ``{specificity: 0.9}``: the threshold reaching that target on validation."""

    sensitivity: float | None = None
    specificity: float | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ThresholdRule:
        given = [k for k in ("sensitivity", "specificity") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of sensitivity, specificity")
        _check_fraction(getattr(self, given[0]), given[0])
        return self

    @property
    def label(self) -> str:
        key = "sensitivity" if self.sensitivity is not None else "specificity"
        return f"{key} >= {getattr(self, key):.2f} on validation"


class SubgroupSpec(StrictModel):
    """A subgroup variable from a clinical feature (raw value) or ``group``: its values, optionally ``bins``
    (right-open intervals, ``[0, 50, 65, 120]`` -> 0-50, 50-65, 65-120) and ``labels`` for coded values."""

    column: str
    bins: list[float] | None = Field(None, min_length=2)
    labels: dict[str, str] | None = None

    @field_validator("labels", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_code(k): str(v) for k, v in value.items()}
        return value

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"bins must increase, got {value}")
        return value


def _code(value: Any) -> str:
    """``1``, ``1.0`` and ``"1"`` name the same coded value."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(number)


class ClinicalConfig(StrictModel):
    """See the module docstring."""

    ece_bins: int = Field(10, ge=2, le=100, description="equal-width probability bins of the ECE")
    specificity_targets: list[float] = Field(default_factory=lambda: [0.9])
    sensitivity_targets: list[float] = Field(default_factory=lambda: [0.9])
    threshold: Any = Field("youden", description="youden, {sensitivity: t} or {specificity: t}")
    net_benefit_at: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3])
    subgroups: dict[str, SubgroupSpec] = Field(default_factory=dict)
    by_group: bool = Field(True, description="a table per hospital / centre (the card's `group`)")
    min_subgroup: int = Field(10, ge=2, description="smaller subgroups are shown without intervals")
    n_boot: int = Field(1000, ge=100, description="patient bootstrap resamples of every interval")
    level: float = Field(0.95, description="confidence level")

    @field_validator("specificity_targets", "sensitivity_targets", "net_benefit_at")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        return [_check_fraction(v, "target") for v in value]

    @field_validator("threshold", mode="before")
    @classmethod
    def _rule(cls, value: Any) -> Any:
        if value == "youden" or isinstance(value, ThresholdRule):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"expected youden, {{sensitivity: t}} or {{specificity: t}}, got {value!r}")
        unknown = sorted(set(value) - {"sensitivity", "specificity"})
        if unknown or len(value) != 1:
            raise ValueError(f"give exactly one of sensitivity, specificity (got {', '.join(map(str, value))})")
        key, target = next(iter(value.items()))
        _check_fraction(target, f"threshold.{key}")
        return ThresholdRule(**{key: float(target)})

    @field_validator("level")
    @classmethod
    def _level(cls, value: float) -> float:
        return _check_fraction(value, "level")

    @property
    def threshold_label(self) -> str:
        return "Youden's J maximal on validation" if self.threshold == "youden" else self.threshold.label
