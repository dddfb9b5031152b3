"""Render one patient's chest CT (Hounsfield units) and lesion mask from the image latents.

A body ellipse of soft tissue with a fat rim and a vertebra, two lung ellipses whose size varies along the K
slices, and lesions placed where a smooth random field (biased to the lung periphery and the dependent, posterior
part) is highest: exactly ``round(lesion_fraction * lung voxels)`` voxels, so the rendered lesion fraction is the
latent one up to rounding. Ground glass is faint, consolidation dense (the core of the lesions when both are
present), effusion a fluid crescent at the bottom of a lung. Each hospital then rescales, shifts and adds noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

FIELD_OF_VIEW_MM = 350.0
SLICE_THICKNESS_MM = 5.0
COARSE_SIGMA = 4.0  # pixels: wider lesion fields are drawn coarse and upsampled (smooth_field)
HU_MIN, HU_MAX = -1200, 3071  # below -1024 so a scanner with a low calibration still differs in air


@dataclass(frozen=True)
class RenderParams:
    """Intensities (HU) and shape constants of the renderer (written to truth.json)."""

    hu_air: float = -1000.0
    hu_lung: float = -860.0
    hu_soft_tissue: float = 40.0
    hu_fat: float = -100.0
    hu_bone: float = 700.0
    hu_ggo: float = -400.0
    hu_consolidation: float = 30.0
    hu_nonspecific: float = -300.0
    hu_effusion: float = 15.0
    lung_texture_sd: float = 25.0
    lesion_texture_sd: float = 40.0
    lesion_smoothing: float = 0.06  # in-plane sigma of the lesion field, as a fraction of the image size
    periphery_bias: float = 0.8
    posterior_bias: float = 0.4
    consolidation_core: float = 0.4  # share of lesion voxels that are consolidation when both findings are present
    effusion_depth: float = 0.35  # crescent thickness as a fraction of the lung's vertical radius
    partial_volume_sigma: float = 0.5  # pixels

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class HospitalEffect:
    """Scanner differences: ``HU_seen = scale * HU + shift + N(0, noise_sd)``; DICOM rescale intercept."""

    name: str
    shift: float
    scale: float
    noise_sd: float
    dicom_intercept: int

    def to_dict(self) -> dict[str, float | str | int]:
        return asdict(self)


_SHIFTS = (0.0, 20.0, -15.0, 10.0, -8.0, 15.0, -20.0, 5.0)
_SCALES = (1.00, 0.98, 1.02, 0.99, 1.01, 0.985, 1.015, 1.005)
_NOISE = (15.0, 30.0, 22.0, 18.0, 26.0, 12.0, 34.0, 20.0)
_INTERCEPTS = (-1024, -1024, -1000, -1024, -1000, -1024, -1024, -1000)


def hospital_effects(n: int, prefix: str = "Hospital") -> list[HospitalEffect]:
    """``n`` fixed scanner profiles, named ``<prefix> A``, ``B``, ... (cycled beyond eight)."""
    effects = []
    for i in range(n):
        j = i % len(_SHIFTS)
        label = chr(ord("A") + i) if i < 26 else f"{chr(ord('A') + i // 26 - 1)}{chr(ord('A') + i % 26)}"
        effects.append(HospitalEffect(f"{prefix} {label}", _SHIFTS[j], _SCALES[j], _NOISE[j], _INTERCEPTS[j]))
    return effects


@dataclass
class Rendered:
    """One patient's volume: HU as seen by the hospital's scanner, lesion and lung masks, measured values."""

    hu: np.ndarray  # float32 [K, S, S]
    lesion: np.ndarray  # uint8 [K, S, S]
    lung: np.ndarray  # bool [K, S, S] (lung without effusion)
    lesion_fraction: float
    zone_fractions: np.ndarray  # [6] lesion fraction per zone (left/right lung x upper/middle/lower third)


def pixel_spacing(size: int) -> float:
    return round(FIELD_OF_VIEW_MM / size, 4)


def _ellipse(u: np.ndarray, v: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2


def render_patient(
    rng: np.random.Generator,
    size: int,
    slices: int,
    lesion_fraction: float,
    findings: tuple[int, int, int],
    hospital: HospitalEffect,
    params: RenderParams | None = None,
) -> Rendered:
    """Draw the anatomy, place the lesions and apply the hospital's scanner effect."""
    p = params or RenderParams()
    ggo, consolidation, effusion = (bool(f) for f in findings)
    coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    v, u = np.meshgrid(coords, coords, indexing="ij")  # v: rows (down = posterior), u: columns

    jitter = 1.0 + 0.02 * rng.standard_normal(4)
    body = _ellipse(u, v, 0.0, 0.05, 0.97 * jitter[0], 0.76 * jitter[1])
    spine = _ellipse(u, v, 0.0, 0.66, 0.08, 0.08)
    lung_centres = ((-0.44, 0.0), (0.44, 0.0))
    effusion_sides = (True, True) if rng.random() < 0.5 else ((True, False) if rng.random() < 0.5 else (False, True))

    hu = np.empty((slices, size, size), dtype=np.float64)
    lung = np.zeros((slices, size, size), dtype=bool)
    fluid = np.zeros((slices, size, size), dtype=bool)
    rho = np.zeros((slices, size, size))
    side = np.zeros((size, size), dtype=np.int8)
    side[:, size // 2 :] = 1
    for k in range(slices):
        scale = 0.8 + 0.2 * np.sin(np.pi * (k + 0.5) / slices)
        img = np.full((size, size), p.hu_air)
        img[body <= 1.0] = p.hu_fat
        img[body <= 0.88] = p.hu_soft_tissue
        img[spine <= 1.0] = p.hu_bone
        for li, (cx, cy) in enumerate(lung_centres):
            rx, ry = 0.38 * scale * jitter[2], 0.58 * scale * jitter[3]
            inside = _ellipse(u, v, cx, cy, rx, ry)
            mask = inside <= 1.0
            img[mask] = p.hu_lung
            rho[k][mask] = np.sqrt(inside[mask])
            if effusion and effusion_sides[li]:
                crescent = mask & (_ellipse(u, v, cx, cy - p.effusion_depth * ry, rx, ry) > 1.0)
                fluid[k] |= crescent
            lung[k] |= mask
        hu[k] = img
    lung &= ~fluid
    hu[lung] += p.lung_texture_sd * rng.standard_normal(int(lung.sum()))
    hu[fluid] = p.hu_effusion

    lesion = _place_lesions(rng, lung, rho, v, lesion_fraction, size, p)
    if lesion.any():
        _paint_lesions(rng, hu, lesion, ggo, consolidation, p)
        lesion = lesion > 0
    hu = gaussian_filter(hu, sigma=(0.0, p.partial_volume_sigma, p.partial_volume_sigma))
    seen = hospital.scale * hu + hospital.shift + hospital.noise_sd * rng.standard_normal(hu.shape)
    n_lung = int(lung.sum())
    measured = float(lesion.sum() / n_lung) if n_lung else 0.0
    return Rendered(
        hu=np.clip(seen, HU_MIN, HU_MAX).astype(np.float32),
        lesion=lesion.astype(np.uint8),
        lung=lung,
        lesion_fraction=measured,
        zone_fractions=_zone_fractions(lesion, lung, side),
    )


def _place_lesions(
    rng: np.random.Generator,
    lung: np.ndarray,
    rho: np.ndarray,
    v: np.ndarray,
    fraction: float,
    size: int,
    p: RenderParams,
) -> np.ndarray:
    """Score each lung voxel by a smooth random field + periphery/posterior bias; the top ones are lesions.

    Returns a float array: 0 outside lesions, the score rank in (0, 1] inside (1 = lesion core).
    """
    n_lung = int(lung.sum())
    out = np.zeros(lung.shape)
    if n_lung == 0:
        return out
    n_lesion = int(np.clip(round(fraction * n_lung), 1, n_lung))
    sigma = max(size * p.lesion_smoothing, 0.8)
    field = smooth_field(rng, lung.shape, sigma)
    values = field[lung]
    values = (values - values.mean()) / (values.std() + 1e-12)
    score = values + p.periphery_bias * rho[lung] + p.posterior_bias * np.broadcast_to(v, lung.shape)[lung]
    order = _top(score, n_lesion)
    ranks = np.zeros(n_lung)
    ranks[order] = np.linspace(1.0, 1.0 / n_lesion, n_lesion)
    out[lung] = ranks
    return out


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """White noise smoothed in-plane by ``sigma`` pixels (0.6 across slices): where lesions grow.

    A wide in-plane kernel (512 px slices: sigma 31, 247 taps) cost most of a patient's render time, so above
    ``COARSE_SIGMA`` the field is drawn on a grid ``f`` times coarser, smoothed by ``sigma / f`` and linearly
    upsampled: the same correlation length (checked in tests) at ~1/6 of the time. Small slices (<= 64 px: sigma
    <= 3.84) keep the exact full-resolution field, so their bytes are those of earlier versions.
    """
    k, rows, cols = shape
    factor = max(1, int(sigma // COARSE_SIGMA))
    if factor == 1:
        return gaussian_filter(rng.standard_normal(shape), sigma=(0.6, sigma, sigma))
    coarse = (k, -(-rows // factor), -(-cols // factor))
    field = gaussian_filter(rng.standard_normal(coarse), sigma=(0.6, sigma / factor, sigma / factor))
    # linear upsampling is separable: one small matrix per axis, applied with BLAS (8x faster than ndimage.zoom)
    up_rows = zoom(np.eye(coarse[1]), (rows / coarse[1], 1.0), order=1, grid_mode=True, mode="nearest")
    up_cols = zoom(np.eye(coarse[2]), (cols / coarse[2], 1.0), order=1, grid_mode=True, mode="nearest")
    return np.einsum("ij,kjl,ml->kim", up_rows, field, up_cols, optimize=True)


def _top(score: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest scores, highest first (ties by index): a full stable sort, only of the top."""
    if n >= score.size:
        return np.argsort(-score, kind="stable")
    head = np.argpartition(-score, n - 1)[:n]
    head.sort()
    return head[np.argsort(-score[head], kind="stable")]


def _paint_lesions(
    rng: np.random.Generator, hu: np.ndarray, lesion: np.ndarray, ggo: bool, consolidation: bool, p: RenderParams
) -> None:
    """Ground glass, consolidation (dense core when both are present) or a nonspecific opacity."""
    inside = lesion > 0
    if ggo and consolidation:
        core = lesion > (1.0 - p.consolidation_core)
        hu[inside & ~core] = p.hu_ggo
        hu[core] = p.hu_consolidation
    elif consolidation:
        hu[inside] = p.hu_consolidation
    elif ggo:
        hu[inside] = p.hu_ggo
    else:
        hu[inside] = p.hu_nonspecific
    hu[inside] += p.lesion_texture_sd * rng.standard_normal(int(inside.sum()))


def _zone_fractions(lesion: np.ndarray, lung: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Lesion fraction in 6 zones: each lung (left/right image half) split in thirds of its rows (upper..lower)."""
    out = np.zeros(6)
    rows = np.arange(lung.shape[1])
    for s in (0, 1):
        lung_side = lung & (side == s)[None]
        occupied = rows[lung_side.any(axis=(0, 2))]
        if occupied.size == 0:
            continue
        edges = np.linspace(occupied.min(), occupied.max() + 1, 4)
        for t in range(3):
            band = (rows >= edges[t]) & (rows < edges[t + 1])
            zone = lung_side & band[None, :, None]
            n = int(zone.sum())
            out[3 * s + t] = float((lesion.astype(bool) & zone).sum() / n) if n else 0.0
    return out


def brixia_like_score(zone_fractions: np.ndarray, thresholds: tuple[float, float, float] = (0.1, 0.3, 0.6)) -> int:
    """0-18: each of the 6 zones scores 0-3 by its lesion fraction (BRIXIA-like)."""
    return int(sum(int(np.searchsorted(thresholds, f, side="right")) for f in zone_fractions))


def to_window_uint8(hu: np.ndarray, low: float = -1350.0, high: float = 150.0) -> np.ndarray:
    """Lung window ``[low, high]`` HU mapped linearly to 0..255 (how the iCTCF JPG slices were exported)."""
    scaled = (hu.astype(np.float64) - low) / (high - low) * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)
