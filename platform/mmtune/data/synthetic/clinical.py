"""Clinical values from the latents, formatted with the quirks of the public iCTCF table.

Every lab is ``log(value) = log(median) + effect * s + noise_sd * N(0, 1)`` (``ALB`` is linear), where ``s`` is
the clinical severity latent: informative labs have ``effect != 0``, noise labs ``effect == 0``. Raw cells may
carry abnormal flags (``&#8593;`` / ``&#8595;`` or the arrows ``↑`` / ``↓``) when outside the reference range,
censoring (``<0.05``, ``>1000``) at assay limits, and are empty when missing (MCAR, plus missing more often for
less severe patients for the labs marked ``informative_missing``: sicker patients get more tests).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import expit


@dataclass(frozen=True)
class LabSpec:
    """One lab: generating model, reference range and how the raw value is printed."""

    name: str
    median: float
    effect: float  # per unit of the severity latent s (on the log scale unless linear)
    noise_sd: float
    low: float  # reference range for the abnormal flags
    high: float
    decimals: int
    linear: bool = False
    detect_low: float | None = None  # printed as "<detect_low" below this
    detect_high: float | None = None  # printed as ">detect_high" above this
    informative_missing: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


LABS: tuple[LabSpec, ...] = (
    LabSpec("LY", 1.3, -0.30, 0.30, 1.1, 3.2, 2),
    LabSpec("CRP", 6.0, 0.90, 0.80, 0.0, 10.0, 1, detect_low=0.5, detect_high=200.0),
    LabSpec("D-Dimer", 0.6, 0.90, 0.80, 0.0, 0.5, 2, detect_low=0.22, detect_high=10.0),
    LabSpec("IL-6", 6.0, 1.00, 0.90, 0.0, 7.0, 2, detect_low=1.5, detect_high=1000.0, informative_missing=True),
    LabSpec("ALB", 40.0, -2.5, 3.0, 40.0, 55.0, 1, linear=True),
    LabSpec("PLT", 200.0, 0.0, 0.30, 125.0, 350.0, 0),
    LabSpec("WBC", 6.0, 0.0, 0.35, 3.5, 9.5, 2),
    LabSpec("NE", 4.0, 0.0, 0.40, 1.8, 6.3, 2),
    LabSpec("LDH", 220.0, 0.25, 0.25, 120.0, 250.0, 0),
    LabSpec("PCT", 0.06, 0.0, 0.80, 0.0, 0.05, 2, detect_low=0.05, informative_missing=True),
)
LAB_NAMES = tuple(lab.name for lab in LABS)
INFORMATIVE_LABS = tuple(lab.name for lab in LABS if lab.effect != 0.0)
NOISE_LABS = tuple(lab.name for lab in LABS if lab.effect == 0.0)


@dataclass(frozen=True)
class ClinicalParams:
    """Missingness, flag and demographic constants (written to truth.json)."""

    mcar_missing: float = 0.08
    informative_missing_intercept: float = 0.0  # P(missing) = expit(intercept - slope * (s - 0.8))
    informative_missing_slope: float = 1.0
    flag_probability: float = 0.8  # an out-of-range value carries a flag this often
    html_entity_share: float = 0.5  # flags written as &#8593; rather than ↑
    age_mean: float = 45.0
    age_per_severity: float = 6.0
    age_sd: float = 13.0
    temperature_mean: float = 36.7
    temperature_per_severity: float = 0.35
    temperature_sd: float = 0.4
    temperature_unit_share: float = 0.7  # "36.6°C" rather than "36.6"
    temperature_missing: float = 0.05

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


ARROWS = {"up": ("&#8593;", "↑"), "down": ("&#8595;", "↓")}
DISEASES = ("Hypertension", "Diabetes", "Coronary heart disease", "COPD", "Chronic kidney disease", "Hepatitis B")


def lab_value(lab: LabSpec, s: float | np.ndarray, rng: np.random.Generator) -> float | np.ndarray:
    """One value per severity latent (``s`` may be an array: one draw each)."""
    noise = lab.noise_sd * rng.standard_normal(None if np.isscalar(s) else np.shape(s))
    if lab.linear:
        return lab.median + lab.effect * s + noise
    return np.exp(np.log(lab.median) + lab.effect * s + noise)


def lab_missing(lab: LabSpec, s: float, rng: np.random.Generator, params: ClinicalParams) -> bool:
    p = params.mcar_missing
    if lab.informative_missing:
        p = 1.0 - (1.0 - p) * (
            1.0 - expit(params.informative_missing_intercept - params.informative_missing_slope * (s - 0.8))
        )
    return bool(rng.random() < p)


def format_lab(lab: LabSpec, value: float, rng: np.random.Generator, params: ClinicalParams) -> str:
    """The raw cell: censored, flagged or plain (two uniforms are always drawn so the stream stays aligned)."""
    u_flag, u_style = rng.random(), rng.random()
    if lab.detect_low is not None and value < lab.detect_low:
        return f"<{lab.detect_low:g}"
    if lab.detect_high is not None and value > lab.detect_high:
        return f">{lab.detect_high:g}"
    text = f"{value:.{lab.decimals}f}"
    direction = "up" if value > lab.high else ("down" if value < lab.low else None)
    if direction is not None and u_flag < params.flag_probability:
        entity, arrow = ARROWS[direction]
        text += entity if u_style < params.html_entity_share else arrow
    return text


def lab_cells(
    s: float, rng: np.random.Generator, params: ClinicalParams, labs: tuple[LabSpec, ...] = LABS
) -> dict[str, str]:
    """Raw lab cells for one patient (empty string = missing)."""
    cells = {}
    for lab in labs:
        value = lab_value(lab, s, rng)
        missing = lab_missing(lab, s, rng, params)
        formatted = format_lab(lab, value, rng, params)
        cells[lab.name] = "" if missing else formatted
    return cells


def age_years(s: float, rng: np.random.Generator, params: ClinicalParams) -> int:
    """Age weakly related to the severity latent."""
    return int(
        np.clip(round(params.age_mean + params.age_per_severity * s + params.age_sd * rng.standard_normal()), 18, 92)
    )


def temperature_cell(s: float, rng: np.random.Generator, params: ClinicalParams) -> str:
    t = params.temperature_mean + params.temperature_per_severity * s + params.temperature_sd * rng.standard_normal()
    t = float(np.clip(t, 35.5, 40.8))
    u_missing, u_unit = rng.random(), rng.random()
    if u_missing < params.temperature_missing:
        return ""
    return f"{t:.1f}°C" if u_unit < params.temperature_unit_share else f"{t:.1f}"


def underlying_diseases(age: int, rng: np.random.Generator) -> str:
    """Free text, empty for most younger patients."""
    u_any, u_two = rng.random(), rng.random()
    picks = rng.permutation(len(DISEASES))[:2]
    if u_any > expit(-1.2 + 0.05 * (age - 50)):
        return ""
    names = [DISEASES[picks[0]]] + ([DISEASES[picks[1]]] if u_two < 0.3 else [])
    return ", ".join(names)
