"""The arguments of one synthetic data set, validated once, plus the per-patient random streams."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from mmtune.errors import UserError

Variant = Literal["ictcf", "prognosis"]
VARIANTS: tuple[str, ...] = ("ictcf", "prognosis")
MIN_PATIENTS, MIN_SIZE, MIN_SLICES = 12, 16, 1
MAX_HOSPITALS = 26
_VARIANT_CODE = {"ictcf": 1, "prognosis": 2}


class SynthArgumentError(UserError):
    """An argument of ``mmtune data synth`` is out of range."""


@dataclass(frozen=True)
class SynthConfig:
    patients: int
    size: int
    slices: int
    seed: int
    variant: str
    hospitals: int
    dicom_fraction: float
    quirks: bool

    def __post_init__(self) -> None:
        checks = [
            (self.variant in VARIANTS, f"--variant: expected one of {', '.join(VARIANTS)}, got {self.variant!r}"),
            (
                _is_int(self.patients) and self.patients >= MIN_PATIENTS,
                f"--patients: expected an integer >= {MIN_PATIENTS}, got {self.patients!r}",
            ),
            (
                _is_int(self.size) and self.size >= MIN_SIZE,
                f"--size: expected an integer >= {MIN_SIZE}, got {self.size!r}",
            ),
            (
                _is_int(self.slices) and self.slices >= MIN_SLICES,
                f"--slices: expected an integer >= {MIN_SLICES}, got {self.slices!r}",
            ),
            (_is_int(self.seed) and self.seed >= 0, f"--seed: expected an integer >= 0, got {self.seed!r}"),
            (
                _is_int(self.hospitals) and 1 <= self.hospitals <= MAX_HOSPITALS,
                f"--hospitals: expected an integer in 1..{MAX_HOSPITALS}, got {self.hospitals!r}",
            ),
            (
                isinstance(self.dicom_fraction, int | float) and 0.0 <= self.dicom_fraction <= 1.0,
                f"dicom_fraction: expected a number in [0, 1], got {self.dicom_fraction!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise SynthArgumentError(message)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def rng(self, *stream: int) -> np.random.Generator:
        """An independent stream per (variant, purpose, patient): one patient's values never shift another's."""
        return np.random.default_rng([self.seed, _VARIANT_CODE[self.variant], *stream])


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
