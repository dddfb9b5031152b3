"""The generating model of the synthetic data: per-patient latents and their exact Bayes posteriors.

Every patient gets a morbidity class ``c`` and, given ``c``, two *conditionally independent* latents:

* an **image** latent: ``z = logit(lesion fraction) ~ N(mu_c, sd_c)`` plus three findings
  (ground glass, consolidation, effusion) ``~ Bernoulli(p_c)``; the rendered CT shows all of them;
* a **clinical** latent: ``s ~ N(m_c, 1)`` for the covid classes; a control patient's ``s`` is drawn from the
  *same mixture* the covid patients follow, so the labs (noisy functions of ``s``) say nothing about covid vs
  control, only about Type I vs Type II.

Mortality depends on ``c``, ``z`` and ``s``. Because the densities are known, the posterior of each task given the
image latents, the clinical latent, or both is computed exactly (Gauss-Hermite quadrature for mortality), and the
AUROC of those posteriors is the Bayes-optimal AUROC a model could reach from the *latents*; a model sees a noisy
rendering of them, so these are upper bounds.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit, logsumexp
from scipy.stats import norm

CLASSES = ("control", "type1", "type2")
FINDINGS = ("ggo", "consolidation", "effusion")
MODALITIES = ("image", "clinical", "both")
POSTERIOR_DECIMALS = 6
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(48)


@dataclass(frozen=True)
class LatentParams:
    """All numbers of the generating model (written to truth.json).

    Tuples are indexed by class (control, type1, type2). The defaults give Bayes AUROCs (large N) of covid
    1.00 / 0.50 / 1.00 (image / clinical / both), morbidity 0.87 / 0.71 / 0.98, mortality 0.80 / 0.82 / 0.91.
    Covid lesions are large (median ~35-40 % of the lung) so a tiny CNN sees covid at 32x32 x 4 slices.
    """

    prior: tuple[float, float, float] = (0.35, 0.40, 0.25)
    lesion_logit_mean: tuple[float, float, float] = (-4.2, -0.6, -0.4)
    lesion_logit_sd: tuple[float, float, float] = (0.7, 0.7, 0.7)
    p_ggo: tuple[float, float, float] = (0.10, 0.85, 0.85)
    p_consolidation: tuple[float, float, float] = (0.05, 0.35, 0.42)
    p_effusion: tuple[float, float, float] = (0.03, 0.07, 0.12)
    # clinical latent s | class (sd 1); control: mixture of the type1/type2 components weighted by their priors.
    severity_mean: tuple[float, float] = (0.0, 2.0)
    # logit P(Deceased) = intercept_c + beta_lesion * (z - mu_type1) + beta_severity * s
    mortality_intercept: tuple[float, float, float] = (-6.0, -4.5, -3.4)
    mortality_beta_lesion: float = 1.0
    mortality_beta_severity: float = 0.8

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @property
    def control_mixture(self) -> tuple[float, float]:
        """Weights of the type1/type2 components in a control patient's clinical latent."""
        w1, w2 = self.prior[1], self.prior[2]
        return w1 / (w1 + w2), w2 / (w1 + w2)


@dataclass
class Latents:
    """Per-patient latents, one array entry per patient."""

    cls: np.ndarray  # int64, index into CLASSES
    z: np.ndarray  # logit lesion fraction
    findings: np.ndarray  # int8 [n, 3] in FINDINGS order
    s: np.ndarray  # clinical severity latent
    deceased: np.ndarray  # int8
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def lesion_fraction(self) -> np.ndarray:
        return expit(self.z)

    def __len__(self) -> int:
        return len(self.cls)


def sample_latents(n: int, params: LatentParams, rng: np.random.Generator) -> Latents:
    """Draw ``n`` patients' latents (vectorised; tiny arrays, so all patients at once is fine)."""
    prior = np.asarray(params.prior, dtype=float)
    cls = rng.choice(len(CLASSES), size=n, p=prior / prior.sum())
    mu = np.asarray(params.lesion_logit_mean)[cls]
    sd = np.asarray(params.lesion_logit_sd)[cls]
    z = mu + sd * rng.standard_normal(n)
    probs = np.stack([np.asarray(getattr(params, f"p_{name}"))[cls] for name in FINDINGS], axis=1)
    findings = (rng.random((n, len(FINDINGS))) < probs).astype(np.int8)
    # A control patient's clinical latent follows the covid patients' mixture: no covid information in labs.
    w1, _ = params.control_mixture
    component = np.where(cls == 0, np.where(rng.random(n) < w1, 1, 2), cls)
    s = np.asarray((0.0, *params.severity_mean))[component] + rng.standard_normal(n)
    p_dead = expit(_mortality_logit(params, cls, z, s))
    deceased = (rng.random(n) < p_dead).astype(np.int8)
    return Latents(cls=cls.astype(np.int64), z=z, findings=findings, s=s, deceased=deceased)


def _mortality_logit(params: LatentParams, cls: np.ndarray, z: np.ndarray, s: np.ndarray) -> np.ndarray:
    intercept = np.asarray(params.mortality_intercept)[cls]
    return (
        intercept
        + params.mortality_beta_lesion * (z - params.lesion_logit_mean[1])
        + params.mortality_beta_severity * s
    )


def image_loglik(params: LatentParams, z: np.ndarray, findings: np.ndarray) -> np.ndarray:
    """``log p(z, findings | c)`` as ``[n, 3]``."""
    out = np.empty((len(z), len(CLASSES)))
    for c in range(len(CLASSES)):
        ll = norm.logpdf(z, params.lesion_logit_mean[c], params.lesion_logit_sd[c])
        for j, name in enumerate(FINDINGS):
            p = getattr(params, f"p_{name}")[c]
            ll = ll + np.where(findings[:, j] == 1, np.log(p), np.log1p(-p))
        out[:, c] = ll
    return out


def clinical_loglik(params: LatentParams, s: np.ndarray) -> np.ndarray:
    """``log p(s | c)`` as ``[n, 3]``; the control column is the type1/type2 mixture."""
    l1 = norm.logpdf(s, params.severity_mean[0], 1.0)
    l2 = norm.logpdf(s, params.severity_mean[1], 1.0)
    w1, w2 = params.control_mixture
    l0 = np.logaddexp(np.log(w1) + l1, np.log(w2) + l2)
    return np.stack([l0, l1, l2], axis=1)


def _normalise(log_joint: np.ndarray) -> np.ndarray:
    return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


def _log_prior(params: LatentParams) -> np.ndarray:
    prior = np.asarray(params.prior, dtype=float)
    with np.errstate(divide="ignore"):
        return np.log(prior / prior.sum())


def class_posteriors(params: LatentParams, lat: Latents) -> dict[str, np.ndarray]:
    """``p(c | image latents)``, ``p(c | s)`` and ``p(c | both)``, each ``[n, 3]``."""
    log_prior = _log_prior(params)
    li = image_loglik(params, lat.z, lat.findings)
    lc = clinical_loglik(params, lat.s)
    return {
        "image": _normalise(log_prior + li),
        "clinical": _normalise(log_prior + lc),
        "both": _normalise(log_prior + li + lc),
    }


def _expect_over_s(params: LatentParams, base: np.ndarray, c: int) -> np.ndarray:
    """``E[sigmoid(base + beta_s * s) | c]`` by Gauss-Hermite quadrature (mixture for the control class)."""
    beta = params.mortality_beta_severity
    comps = [(1.0, params.severity_mean[c - 1])] if c > 0 else list(zip(params.control_mixture, params.severity_mean))
    total = np.zeros_like(base)
    for weight, mean in comps:
        nodes = mean + np.sqrt(2.0) * _GH_NODES
        total += weight * (expit(base[:, None] + beta * nodes[None, :]) @ _GH_WEIGHTS) / np.sqrt(np.pi)
    return total


def _expect_over_z(params: LatentParams, base: np.ndarray, c: int) -> np.ndarray:
    """``E[sigmoid(base + beta_z * (z - mu_1)) | c]`` by Gauss-Hermite quadrature."""
    nodes = params.lesion_logit_mean[c] + params.lesion_logit_sd[c] * np.sqrt(2.0) * _GH_NODES
    shifted = params.mortality_beta_lesion * (nodes - params.lesion_logit_mean[1])
    return (expit(base[:, None] + shifted[None, :]) @ _GH_WEIGHTS) / np.sqrt(np.pi)


def mortality_posteriors(params: LatentParams, lat: Latents, cls_post: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``P(Deceased | ...)`` per modality, marginalising the unseen latent given each class."""
    n = len(lat)
    image = np.zeros(n)
    clinical = np.zeros(n)
    both = np.zeros(n)
    for c in range(len(CLASSES)):
        cvec = np.full(n, c)
        zero = np.zeros(n)
        base_image = _mortality_logit(params, cvec, lat.z, zero)  # s integrated out
        image += cls_post["image"][:, c] * _expect_over_s(params, base_image, c)
        base_clin = params.mortality_intercept[c] + params.mortality_beta_severity * lat.s
        clinical += cls_post["clinical"][:, c] * _expect_over_z(params, base_clin, c)
        both += cls_post["both"][:, c] * expit(_mortality_logit(params, cvec, lat.z, lat.s))
    return {"image": image, "clinical": clinical, "both": both}


def posterior_table(params: LatentParams, lat: Latents) -> dict[str, np.ndarray]:
    """Named posterior columns (rounded so that analytically constant posteriors are exactly constant).

    ``p_covid_<m>``, ``p_morbidity_<class>_<m>``, ``p_mortality_<m>`` for m in image / clinical / both.
    """
    cls_post = class_posteriors(params, lat)
    mort = mortality_posteriors(params, lat, cls_post)
    cols: dict[str, np.ndarray] = {}
    for m in MODALITIES:
        cols[f"p_covid_{m}"] = 1.0 - cls_post[m][:, 0]
    for m in MODALITIES:
        for c, name in enumerate(CLASSES):
            cols[f"p_morbidity_{name}_{m}"] = cls_post[m][:, c]
    for m in MODALITIES:
        cols[f"p_mortality_{m}"] = mort[m]
    return {key: np.round(value, POSTERIOR_DECIMALS) for key, value in cols.items()}


def binary_posteriors(params: LatentParams, lat: Latents, positive: int) -> dict[str, np.ndarray]:
    """``P(c == positive | ...)`` per modality (used by variants with a binary class task)."""
    cls_post = class_posteriors(params, lat)
    return {m: np.round(cls_post[m][:, positive], POSTERIOR_DECIMALS) for m in MODALITIES}


def bayes_aurocs(
    posteriors: dict[str, np.ndarray], cls: np.ndarray, deceased: np.ndarray, mortality_known: np.ndarray
) -> dict[str, dict[str, float]]:
    """AUROC of the Bayes posteriors per task x modality (macro one-vs-rest for morbidity)."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, dict[str, float]] = {"covid": {}, "morbidity": {}, "mortality": {}}
    covid = (cls > 0).astype(int)
    for m in MODALITIES:
        out["covid"][m] = _auroc(roc_auc_score, covid, posteriors[f"p_covid_{m}"])
        probs = np.stack([posteriors[f"p_morbidity_{name}_{m}"] for name in CLASSES], axis=1)
        if len(np.unique(cls)) == len(CLASSES):
            probs = probs / probs.sum(axis=1, keepdims=True)
            out["morbidity"][m] = round(float(roc_auc_score(cls, probs, multi_class="ovr", average="macro")), 4)
        else:
            out["morbidity"][m] = float("nan")
        known = mortality_known.astype(bool)
        out["mortality"][m] = _auroc(roc_auc_score, deceased[known], posteriors[f"p_mortality_{m}"][known])
    return out


def _auroc(score_fn: Any, y: np.ndarray, p: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    return round(float(score_fn(y, p)), 4)


POPULATION_SIZE = 20000


@functools.lru_cache(maxsize=8)
def population_aurocs(params: LatentParams) -> dict[str, dict[str, float]]:
    """Bayes AUROCs of the model itself (20,000 patients from a fixed stream), free of the data set's sampling noise."""
    lat = sample_latents(POPULATION_SIZE, params, np.random.default_rng(0))
    return bayes_aurocs(posterior_table(params, lat), lat.cls, lat.deceased, np.ones(len(lat), dtype=bool))


@functools.lru_cache(maxsize=8)
def population_binary_auroc(params: LatentParams, positive: int) -> dict[str, float]:
    """Like ``population_aurocs`` for a binary class task (``P(c == positive)``)."""
    from sklearn.metrics import roc_auc_score

    lat = sample_latents(POPULATION_SIZE, params, np.random.default_rng(0))
    post = binary_posteriors(params, lat, positive)
    return {m: round(float(roc_auc_score(lat.cls == positive, p)), 4) for m, p in post.items()}
