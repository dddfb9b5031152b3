"""Tests of mmtune.analysis.stats against R pROC, published examples, reference implementations and simulations.

Reference values: ``tests/fixtures/stats/proc_reference.json`` (R pROC, written by ``make_proc_reference.R``; see
``tests/fixtures/stats/README.md``); Demšar (2006) for Friedman / Nemenyi; hand calculations written out below.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from mmtune.analysis.cd_diagram import cd_diagram
from mmtune.analysis.stats import (
    StatsInputError,
    auc_ci,
    auroc_multiclass,
    average_ranks,
    benjamini_hochberg,
    bootstrap_ci,
    corrected_resampled_ttest,
    critical_difference,
    delong_test,
    delong_variance,
    friedman_test,
    holm,
    nemenyi_posthoc,
    nonsignificant_cliques,
    paired_bootstrap_diff,
    paired_effect_size,
    roc_auc,
    wilcoxon_signed_rank,
)
from mmtune.errors import UserError
from scipy import stats as sps
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

FIXTURES = Path(__file__).parent / "fixtures" / "stats"
PROC = json.loads((FIXTURES / "proc_reference.json").read_text())
DATASETS = json.loads((FIXTURES / "datasets.json").read_text())
DATASETS["aSAH_s100b_vs_wfns"] = PROC["asah_data"]["s100b_vs_wfns"]
DATASETS["aSAH_ndka_vs_s100b"] = PROC["asah_data"]["ndka_vs_s100b"]
TOL = 1e-6

# Demšar (2006), JMLR 7, Table 6: AUC of C4.5, C4.5+m, C4.5+cf, C4.5+m+cf on 14 UCI data sets. The voting entry
# of C4.5+cf is 0.9751 (as in scipy's own Friedman test) so that the ranks reproduce the paper's average ranks.
DEMSAR_NAMES = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR = np.array(
    [
        [0.763, 0.599, 0.954, 0.628, 0.882, 0.936, 0.661, 0.583, 0.775, 1.000, 0.940, 0.619, 0.972, 0.957],
        [0.768, 0.591, 0.971, 0.661, 0.888, 0.931, 0.668, 0.583, 0.838, 1.000, 0.962, 0.666, 0.981, 0.978],
        [0.771, 0.590, 0.968, 0.654, 0.886, 0.916, 0.609, 0.563, 0.866, 1.000, 0.965, 0.614, 0.9751, 0.946],
        [0.798, 0.569, 0.967, 0.657, 0.898, 0.931, 0.685, 0.625, 0.875, 1.000, 0.962, 0.669, 0.975, 0.970],
    ]
).T


# --------------------------------------------------------------------------------------------- ROC / DeLong


@pytest.mark.parametrize("name", sorted(PROC["reference"]))
def test_delong_and_ci_match_proc(name: str) -> None:
    ref = PROC["reference"][name]
    data = DATASETS[name]
    y, a, b = data["y"], data["a"], data["b"]
    res = delong_test(y, a, b)
    assert (res.n_pos, res.n_neg) == (ref["n_pos"], ref["n_neg"])
    for got, want in [
        (res.auc_a, ref["auc_a"]),
        (res.auc_b, ref["auc_b"]),
        (res.z, ref["z"]),
        (res.p_value, ref["p_two_sided"]),
        (delong_test(y, a, b, alternative="greater").p_value, ref["p_greater"]),
        (delong_test(y, a, b, alternative="less").p_value, ref["p_less"]),
        (res.diff_lo, ref["diff_ci95"][0]),
        (res.diff_hi, ref["diff_ci95"][1]),
        (res.var_a, ref["var_a"]),
        (res.var_b, ref["var_b"]),
        (res.cov_ab, ref["cov_ab"]),
        (delong_variance(y, a), ref["var_a"]),
    ]:
        assert got == pytest.approx(want, abs=TOL)
    for score, level, key in [(a, 0.95, "ci_a95"), (b, 0.95, "ci_b95"), (a, 0.90, "ci_a90")]:
        auc, lo, hi = auc_ci(y, score, level=level, method="delong")
        assert auc == pytest.approx(ref["auc_a" if score is a else "auc_b"], abs=TOL)
        assert (lo, hi) == pytest.approx(tuple(ref[key]), abs=TOL)


def test_proc_fixture_records_its_provenance() -> None:
    assert PROC["proc_version"] and PROC["r_version"].startswith("R version")
    assert PROC["roc_arguments"] == 'roc(y, score, levels = c(0, 1), direction = "<")'
    assert set(PROC["reference"]) == set(DATASETS)  # every data set has a pROC result


def test_published_proc_example_asah() -> None:
    """pROC's documented example (Robin et al. 2011): s100b vs wfns on aSAH, printed to 4 significant digits."""
    data = DATASETS["aSAH_s100b_vs_wfns"]
    res = delong_test(data["y"], data["a"], data["b"])
    assert round(res.auc_a, 4) == 0.7314 and round(res.auc_b, 4) == 0.8237
    assert round(res.z, 3) == -2.209 and round(res.p_value, 5) == 0.02718
    _, lo, hi = auc_ci(data["y"], data["a"])
    assert (round(lo, 4), round(hi, 4)) == (0.6301, 0.8326)


def _delong_quadratic(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong, DeLong & Clarke-Pearson (1988) directly: psi kernel over all positive-negative pairs, O(n^2)."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    aucs = psi.mean(axis=(1, 2))
    v10 = psi.mean(axis=2)  # per positive
    v01 = psi.mean(axis=1)  # per negative
    s10 = np.cov(v10, ddof=1)
    s01 = np.cov(v01, ddof=1)
    return aucs, s10 / pos.shape[1] + s01 / neg.shape[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_equals_quadratic_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 300))
    y = (rng.random(n) < rng.uniform(0.1, 0.6)).astype(int)
    y[:2], y[2:4] = 1, 0
    # Rounding creates ties within and across classes.
    a = np.round(y * 0.7 + rng.normal(size=n), 1)
    b = np.round(0.5 * a + y * 0.3 + rng.normal(size=n), 1)
    aucs, cov = _delong_quadratic(y, np.vstack([a, b]))
    res = delong_test(y, a, b)
    assert (res.auc_a, res.auc_b) == pytest.approx(tuple(aucs), abs=1e-12)
    assert (res.var_a, res.var_b, res.cov_ab) == pytest.approx((cov[0, 0], cov[1, 1], cov[0, 1]), abs=1e-12)
    z = (aucs[0] - aucs[1]) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert res.z == pytest.approx(z, abs=1e-9)


def test_roc_auc_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.normal(size=200) + y, 1)
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_delong_p_values_are_calibrated_under_the_null() -> None:
    """Two independent scores with the same signal: the rejection rate at 0.05 must be close to 5 %."""
    rng = np.random.default_rng(11)
    y = np.r_[np.ones(50, dtype=int), np.zeros(50, dtype=int)]
    start = time.perf_counter()
    p = np.array(
        [delong_test(y, y * 0.8 + rng.normal(size=100), y * 0.8 + rng.normal(size=100)).p_value for _ in range(400)]
    )
    assert time.perf_counter() - start < 5.0
    assert 0.02 <= np.mean(p < 0.05) <= 0.09
    assert sps.kstest(p, "uniform").pvalue > 0.01  # roughly uniform, not only at 0.05


def test_delong_detects_a_real_difference() -> None:
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(150, dtype=int), np.zeros(150, dtype=int)]
    latent = rng.normal(size=300)
    res = delong_test(y, y * 1.5 + latent, y * 0.5 + latent + rng.normal(size=300))
    assert res.auc_a > res.auc_b and res.p_value < 1e-4 and res.diff_lo > 0


def test_identical_scores_give_p_one() -> None:
    data = DATASETS["small_n20"]
    res = delong_test(data["y"], data["a"], data["a"])
    assert (res.z, res.p_value, res.diff) == (0.0, 1.0, 0.0)


def test_bootstrap_auc_ci_contains_truth_shrinks_and_is_deterministic() -> None:
    rng = np.random.default_rng(7)
    shift = 1.0
    true_auc = sps.norm.cdf(shift / np.sqrt(2))  # binormal, equal variances: 0.7602
    widths = []
    for n in (200, 2000):
        y = np.r_[np.ones(n // 2, dtype=int), np.zeros(n // 2, dtype=int)]
        score = y * shift + rng.normal(size=n)
        auc, lo, hi = auc_ci(y, score, method="bootstrap", n_boot=500, seed=1)
        assert lo < true_auc < hi and lo < auc < hi
        widths.append(hi - lo)
        d_auc, d_lo, d_hi = auc_ci(y, score, method="delong")
        assert d_auc == pytest.approx(auc, abs=1e-12)
        assert (lo, hi) == pytest.approx((d_lo, d_hi), abs=0.025)  # bootstrap and DeLong agree for large n
    assert widths[1] < 0.5 * widths[0]  # ~ 1/sqrt(10) expected
    assert auc_ci(y, score, method="bootstrap", n_boot=500, seed=1) == (auc, lo, hi)
    assert auc_ci(y, score, method="bootstrap", n_boot=500, seed=2) != (auc, lo, hi)


# --------------------------------------------------------------------------------------------- multi-class AUROC


def test_auroc_multiclass_matches_sklearn_and_handles_absent_class() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 120)
    logits = rng.normal(size=(120, 3)) + np.eye(3)[y] * 1.2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    macro, per_class = auroc_multiclass(y, proba, class_names=["mild", "moderate", "severe"])
    assert macro == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"), abs=1e-12)
    assert per_class["severe"] == pytest.approx(roc_auc_score(y == 2, proba[:, 2]), abs=1e-12)

    keep = y != 1  # class 1 absent from this fold
    macro, per_class = auroc_multiclass(y[keep], proba[keep])
    assert np.isnan(per_class["1"])
    expected = [roc_auc_score(y[keep] == c, proba[keep][:, c]) for c in (0, 2)]
    assert (per_class["0"], per_class["2"]) == pytest.approx(tuple(expected))
    assert macro == pytest.approx(np.mean(expected))
    with pytest.raises(StatsInputError, match="at least 2 classes"):
        auroc_multiclass(np.zeros(5, dtype=int), proba[:5])
    with pytest.raises(StatsInputError, match=r"class indices 0\.\.2"):
        auroc_multiclass(np.r_[y[:4], 3], proba[:5])


# --------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_percentile_and_bca_agree_with_scipy_for_the_mean() -> None:
    rng = np.random.default_rng(4)
    x = rng.gamma(2.0, size=60)
    ours = bootstrap_ci(np.mean, x, n_boot=4000, seed=0)
    ours_bca = bootstrap_ci(np.mean, x, n_boot=4000, seed=0, method="bca")
    for method, res in (("percentile", ours), ("BCa", ours_bca)):
        ref = sps.bootstrap((x,), np.mean, n_resamples=4000, method=method, rng=np.random.default_rng(1))
        se = ref.standard_error
        assert res.estimate == pytest.approx(x.mean())
        assert res.lo == pytest.approx(ref.confidence_interval.low, abs=0.15 * se)
        assert res.hi == pytest.approx(ref.confidence_interval.high, abs=0.15 * se)
    # Skewed data: BCa shifts the interval to the right of the percentile one.
    assert ours_bca.hi > ours.hi and ours_bca.lo > ours.lo
    assert bootstrap_ci(np.mean, x, n_boot=4000, seed=0) == ours  # deterministic


def test_bootstrap_skips_and_counts_undefined_resamples() -> None:
    rng = np.random.default_rng(8)
    y = np.r_[np.ones(3, dtype=int), np.zeros(37, dtype=int)]
    score = y + rng.normal(size=40)
    plain = bootstrap_ci(roc_auc, y, score, n_boot=400, seed=0)
    assert 0 < plain.n_skipped < 40  # resamples without a positive: (37/40)^40 ~ 4 %
    assert plain.lo <= plain.estimate <= plain.hi
    stratified = bootstrap_ci(roc_auc, y, score, n_boot=400, seed=0, stratify=y)
    assert stratified.n_skipped == 0
    assert bootstrap_ci(roc_auc_score, y, score, n_boot=100, seed=0, stratify=y).estimate == plain.estimate

    def distinct_mean(x: np.ndarray) -> float:  # undefined whenever a resample repeats a value: almost always
        return float(x.mean()) if np.unique(x).size == x.size else float("nan")

    with pytest.raises(StatsInputError, match=r"undefined on .* of 400 resamples"):
        bootstrap_ci(distinct_mean, score, n_boot=400)
    with pytest.raises(StatsInputError, match=r"fails on the full data: .*both classes"):
        bootstrap_ci(roc_auc, np.zeros(40, dtype=int), score, n_boot=400)


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one() -> None:
    rng = np.random.default_rng(9)
    y = np.r_[np.ones(100, dtype=int), np.zeros(100, dtype=int)]
    latent = rng.normal(size=200)
    strong, weak = y * 1.5 + latent, y * 0.5 + latent + rng.normal(size=200)
    real = paired_bootstrap_diff(roc_auc, y, strong, weak, n_boot=1000, seed=0)
    assert real.diff == pytest.approx(roc_auc(y, strong) - roc_auc(y, weak))
    assert real.lo > 0 and real.p_value < 0.01
    null = paired_bootstrap_diff(roc_auc, y, y + rng.normal(size=200), y + rng.normal(size=200), n_boot=1000, seed=0)
    assert null.lo < 0 < null.hi and null.p_value > 0.05
    same = paired_bootstrap_diff(roc_auc, y, strong, strong, n_boot=200, seed=0)
    assert (same.diff, same.lo, same.hi, same.p_value) == (0.0, 0.0, 0.0, 1.0)


# --------------------------------------------------------------------------------------------- across splits


# Hand example: 5 folds, 80 training and 20 test patients per fold.
FOLDS_A = [0.80, 0.82, 0.78, 0.85, 0.81]
FOLDS_B = [0.78, 0.80, 0.79, 0.81, 0.78]


def test_corrected_resampled_ttest_matches_hand_calculation() -> None:
    # d = [0.02, 0.02, -0.01, 0.04, 0.03]; mean 0.02; s^2 = (0 + 0 + 0.0009 + 0.0004 + 0.0001) / 4 = 0.00035.
    # corrected: var = (1/5 + 20/80) * 0.00035 = 0.0001575, t = 0.02 / sqrt(0.0001575) = 1.593638
    # naive:     var = 0.00035 / 5 = 0.00007,              t = 0.02 / sqrt(0.00007)   = 2.390457; df = 4.
    res = corrected_resampled_ttest(FOLDS_A, FOLDS_B, n_train=80, n_test=20)
    assert res.mean_diff == pytest.approx(0.02)
    assert res.se == pytest.approx(np.sqrt(0.0001575))
    assert res.t == pytest.approx(1.593638, abs=1e-6) and res.df == 4
    assert res.p_value == pytest.approx(2 * sps.t.sf(1.593638, 4), abs=1e-6)
    assert res.naive_t == pytest.approx(2.390457, abs=1e-6)
    naive = sps.ttest_rel(FOLDS_A, FOLDS_B)
    assert (res.naive_t, res.naive_p) == pytest.approx((naive.statistic, naive.pvalue))
    assert res.p_value > res.naive_p  # the naive test is anti-conservative
    assert res.naive_p < 0.08 and res.p_value > 0.18
    assert res.lo < 0 < res.hi
    assert res.hi - res.mean_diff == pytest.approx(sps.t.ppf(0.975, 4) * np.sqrt(0.0001575))
    one_sided = corrected_resampled_ttest(FOLDS_A, FOLDS_B, n_train=80, n_test=20, alternative="greater")
    assert one_sided.p_value == pytest.approx(res.p_value / 2)


def test_wilcoxon_and_effect_sizes() -> None:
    res = wilcoxon_signed_rank(FOLDS_A, FOLDS_B)
    ref = sps.wilcoxon(FOLDS_A, FOLDS_B)
    assert (res.statistic, res.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    # |d| ranks: 0.01 -> 1, 0.02, 0.02 -> 2.5, 2.5, 0.03 -> 4, 0.04 -> 5; R- = 1, R+ = 14; r = 13 / 15.
    assert res.rank_biserial == pytest.approx(13 / 15)
    assert res.median_diff == pytest.approx(0.02)
    assert wilcoxon_signed_rank([0.9] * 5, [0.8] * 5).p_value == pytest.approx(0.0625)  # 5 folds: never < 0.05
    zero = wilcoxon_signed_rank(FOLDS_A, FOLDS_A)
    assert (zero.p_value, zero.rank_biserial, zero.n_nonzero) == (1.0, 0.0, 0)

    effect = paired_effect_size(FOLDS_A, FOLDS_B, n_train=80, n_test=20)
    assert effect.cohens_dz == pytest.approx(0.02 / np.sqrt(0.00035))
    assert effect.rank_biserial == pytest.approx(13 / 15)
    corrected = corrected_resampled_ttest(FOLDS_A, FOLDS_B, n_train=80, n_test=20)
    assert (effect.lo, effect.hi) == pytest.approx((corrected.lo, corrected.hi))
    naive = paired_effect_size(FOLDS_A, FOLDS_B)
    assert naive.hi - naive.lo < effect.hi - effect.lo and not naive.corrected


# --------------------------------------------------------------------------------------------- Friedman / Nemenyi


def test_friedman_and_nemenyi_reproduce_demsar_2006() -> None:
    ranks = average_ranks(DEMSAR, DEMSAR_NAMES)
    assert [round(ranks[n], 3) for n in DEMSAR_NAMES] == [3.143, 2.000, 2.893, 1.964]
    textbook = friedman_test(DEMSAR, DEMSAR_NAMES, tie_correction=False)
    assert round(textbook.statistic, 2) == 9.28 and round(textbook.iman_davenport, 2) == 3.69
    assert (textbook.df1, textbook.df2) == (3, 39)
    assert textbook.iman_davenport_p < 0.05 < sps.f.sf(2.85, 3, 39) + 0.01  # F(3, 39) critical value 2.85
    corrected = friedman_test(DEMSAR, DEMSAR_NAMES)
    assert (corrected.statistic, corrected.p_value) == pytest.approx((10.2283464566929, 0.0167215803284414))

    nemenyi = nemenyi_posthoc(DEMSAR, DEMSAR_NAMES, alpha=0.05)
    assert round(nemenyi.q_alpha, 3) == 2.569 and round(nemenyi.cd, 2) == 1.25
    assert not any(nemenyi.significant(a, b) for a in DEMSAR_NAMES for b in DEMSAR_NAMES)
    at_10 = nemenyi_posthoc(DEMSAR, DEMSAR_NAMES, alpha=0.10)
    assert round(at_10.q_alpha, 3) == 2.291 and round(at_10.cd, 2) == 1.12
    # 3.143 - 1.964 = 1.179 and 3.143 - 2.000 = 1.143 exceed 1.12: C4.5 is worse than C4.5+m+cf and C4.5+m.
    assert at_10.significant("C4.5", "C4.5+m+cf") and at_10.significant("C4.5", "C4.5+m")
    assert not at_10.significant("C4.5", "C4.5+cf")
    i, j = DEMSAR_NAMES.index("C4.5"), DEMSAR_NAMES.index("C4.5+m+cf")
    assert 0.05 < nemenyi.p_values[i, j] < 0.10 and nemenyi.p_values[i, j] == nemenyi.p_values[j, i]
    assert at_10.cliques() == [("C4.5+m+cf", "C4.5+m", "C4.5+cf"), ("C4.5+cf", "C4.5")]


def test_nemenyi_q_alpha_table_and_p_value_at_cd() -> None:
    # Demšar (2006) Table 5(a): q_0.05 and q_0.10 for k = 2..10.
    q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    q10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]
    for k, (a, b) in enumerate(zip(q05, q10), start=2):
        scale = np.sqrt(k * (k + 1) / 60.0)
        assert critical_difference(k, 10, 0.05) / scale == pytest.approx(a, abs=1e-3)
        assert critical_difference(k, 10, 0.10) / scale == pytest.approx(b, abs=1e-3)
    # A pair whose rank difference equals the CD has Nemenyi p = alpha.
    k, n = 5, 12
    cd = critical_difference(k, n, 0.05)
    q = cd / np.sqrt(k * (k + 1) / (6 * n)) * np.sqrt(2)
    assert sps.studentized_range.sf(q, k, np.inf) == pytest.approx(0.05, abs=1e-6)


def test_ranks_ties_direction_and_cliques() -> None:
    m = np.array([[0.9, 0.8, 0.8], [0.7, 0.9, 0.6]])
    assert average_ranks(m, ["a", "b", "c"]) == {"a": 1.5, "b": 1.75, "c": 2.75}
    assert average_ranks(m, ["a", "b", "c"], higher_is_better=False) == {"a": 2.5, "b": 2.25, "c": 1.25}
    assert nonsignificant_cliques({"a": 1.0, "b": 1.5, "c": 3.0, "d": 3.2}, cd=1.0) == [("a", "b"), ("c", "d")]
    assert nonsignificant_cliques({"a": 1.0, "b": 2.5, "c": 4.0}, cd=1.0) == []
    ties = friedman_test(np.ones((4, 3)))
    assert (ties.statistic, ties.p_value) == (0.0, 1.0)


# --------------------------------------------------------------------------------------------- corrections


def test_holm_and_bh_hand_example_and_statsmodels() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, max(0.04, 0.06) = 0.06.
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 -> 0.02, 0.02, 0.04, 0.04.
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    rng = np.random.default_rng(0)
    many = rng.uniform(0, 0.2, size=30)
    assert holm(many) == pytest.approx(multipletests(many, method="holm")[1])
    assert benjamini_hochberg(many) == pytest.approx(multipletests(many, method="fdr_bh")[1])
    with_nan = holm([0.01, np.nan, 0.04])
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.04])
    grid = benjamini_hochberg(many.reshape(5, 6))
    assert grid.shape == (5, 6) and grid.ravel() == pytest.approx(benjamini_hochberg(many))
    assert holm([]).shape == (0,)
    with pytest.raises(StatsInputError, match=r"lie in \[0, 1\]"):
        holm([0.5, 1.2])


# --------------------------------------------------------------------------------------------- CD diagram


def test_cd_diagram_writes_a_png(tmp_path: Path) -> None:
    nemenyi = nemenyi_posthoc(DEMSAR, DEMSAR_NAMES, alpha=0.10)
    out = cd_diagram(nemenyi.avg_ranks, nemenyi.cd, tmp_path / "plots" / "cd.png", title="Demšar 2006")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["cd.png"]  # no temp file left behind
    with pytest.raises(StatsInputError, match="must lie in"):
        cd_diagram({"a": 0.5, "b": 2.0}, 1.0, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# --------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: delong_test([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3]), "same length"),
        (lambda: delong_test([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]), "both classes"),
        (lambda: delong_test([0, 1, -1, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]), "only 0 and 1"),
        (lambda: delong_test([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]), "non-finite"),
        (lambda: delong_test([0, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]), "at least 2 positives"),
        (lambda: auc_ci([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], method="exact"), "method must be"),
        (lambda: auc_ci([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], level=95), "level must be"),
        (lambda: bootstrap_ci(np.mean, [1.0, 2.0], [1.0], n_boot=200), "same length"),
        (lambda: bootstrap_ci(np.mean, [1.0, 2.0], n_boot=10), "n_boot"),
        (lambda: corrected_resampled_ttest([0.1, 0.2], [0.1, 0.3], n_train=0, n_test=5), "n_train"),
        (lambda: corrected_resampled_ttest([0.1], [0.2], n_train=8, n_test=2), "at least 2 paired"),
        (lambda: friedman_test(np.ones((5, 2))), "at least 3 configurations"),
        (lambda: friedman_test(np.ones((1, 3))), "at least 2 blocks"),
        (lambda: friedman_test([[0.1, 0.2, np.nan], [0.1, 0.2, 0.3]]), "block 0, configuration 2"),
        (lambda: nemenyi_posthoc(np.ones((3, 3)), ["a", "b"]), "2 names for 3"),
    ],
)
def test_bad_input_raises_one_line_value_error(call, message: str) -> None:
    with pytest.raises(StatsInputError, match=message) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    assert "\n" not in str(info.value)
