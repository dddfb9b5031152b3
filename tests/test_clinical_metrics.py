"""Clinical metrics (calibration, operating points, net benefit, task tables) against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mmtune.analysis.clinical import calibration as cal
from mmtune.analysis.clinical import decision, operating
from mmtune.analysis.clinical.tables import MACRO, choose_thresholds, flat_metrics, task_table
from mmtune.analysis.task_metrics import detect_tasks
from mmtune.config.clinical import ClinicalConfig


def _data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-1.5 * x))).astype(int)
    p = 1 / (1 + np.exp(-(0.4 + 2.5 * x)))  # miscalibrated on purpose: too extreme and too high
    return y, p


def test_brier_and_ece_match_sklearn():
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    y, p = _data()
    assert cal.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    counts, _ = np.histogram(p, bins=np.linspace(0, 1, 11))
    expected = float(np.sum(counts[counts > 0] * np.abs(observed - predicted)) / y.size)
    assert cal.ece(y, p, 10) == pytest.approx(expected, abs=1e-12)
    o5, p5 = calibration_curve(y, p, n_bins=4, strategy="uniform")
    c5, _ = np.histogram(p, bins=np.linspace(0, 1, 5))
    assert cal.ece(y, p, 4) == pytest.approx(float(np.sum(c5[c5 > 0] * np.abs(o5 - p5)) / y.size), abs=1e-12)
    mean_pred, frac, sizes = cal.reliability(y, p, 10)
    assert np.allclose(frac, observed) and np.allclose(mean_pred, predicted) and sizes.sum() == y.size


def test_calibration_intercept_and_slope_match_statsmodels():
    import statsmodels.api as sm

    y, p = _data()
    lp = cal.logit(p)
    fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
    a, b = cal.calibration_fit(y, p)
    assert a == pytest.approx(fit.params[0], abs=1e-6)
    assert b == pytest.approx(fit.params[1], abs=1e-6)
    assert b < 0.8  # the planted over-confidence (true slope 1.5 / 2.5 = 0.6)
    citl = sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Binomial(), offset=lp).fit()
    assert cal.calibration_intercept(y, p) == pytest.approx(citl.params[0], abs=1e-6)
    assert cal.calibration_intercept(y, p) < 0  # over-prediction
    y_cal = (np.random.default_rng(1).random(20000) < p.repeat(67)[:20000]).astype(int)
    a2, b2 = cal.calibration_fit(y_cal, p.repeat(67)[:20000])
    assert abs(a2) < 0.1 and abs(b2 - 1) < 0.1  # calibrated by construction
    assert np.isnan(cal.calibration_slope(np.ones(10), np.linspace(0.1, 0.9, 10)))


def test_roc_and_operating_points_match_sklearn():
    from mmtune.analysis.clinical.tables import _ap, _auroc
    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

    y, p = _data()
    p = np.round(p, 2)  # ties
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    mf, mt, mthr = operating._roc(y, p)
    assert np.allclose(mf, fpr) and np.allclose(mt, tpr) and np.allclose(mthr[1:], thr[1:])
    assert _auroc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert _ap(y, p) == pytest.approx(average_precision_score(y, p))
    for target in (0.8, 0.9, 0.95):
        assert operating.sensitivity_at_specificity(y, p, target) == pytest.approx(tpr[1 - fpr >= target].max())
        assert operating.specificity_at_sensitivity(y, p, target) == pytest.approx((1 - fpr[tpr >= target]).max())
    youden = operating.choose_threshold(y, p, "youden")
    assert youden == pytest.approx(thr[np.argmax(tpr - fpr)])
    t90 = operating.choose_threshold(y, p, "sensitivity", 0.9)
    assert operating.rates(y, p, t90)["sensitivity"] >= 0.9
    assert operating.rates(y, p, t90 + 1e-9)["sensitivity"] < 0.9  # the highest such threshold
    tn, fp, fn, tp = confusion_matrix(y, p >= youden).ravel()
    r = operating.rates(y, p, youden)
    assert r["sensitivity"] == pytest.approx(tp / (tp + fn)) and r["specificity"] == pytest.approx(tn / (tn + fp))
    assert r["ppv"] == pytest.approx(tp / (tp + fp)) and r["npv"] == pytest.approx(tn / (tn + fn))
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(operating.ThresholdError, match=r"\(0, 1\)"):
            operating.sensitivity_at_specificity(y, p, bad)


def test_net_benefit_formula():
    y, p = _data(200, 3)
    for pt in (0.05, 0.2, 0.5):
        treat = p >= pt
        tp = sum(1 for yi, ti in zip(y, treat, strict=True) if ti and yi == 1)
        fp = sum(1 for yi, ti in zip(y, treat, strict=True) if ti and yi == 0)
        assert decision.net_benefit(y, p, pt) == pytest.approx(tp / 200 - fp / 200 * pt / (1 - pt))
        prev = y.mean()
        assert decision.treat_all(y, pt) == pytest.approx(prev - (1 - prev) * pt / (1 - pt))
    curve = decision.decision_curve(y, p)
    assert curve["model"].shape == (99,) and not curve["treat_none"].any()
    assert decision.net_benefit(y, np.ones_like(p), 0.3) == pytest.approx(decision.treat_all(y, 0.3))


def _frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y, p = _data(n, seed)
    ym = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[ym]
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = y.copy()
    y[:5] = -1  # unlabelled patients are left out, not counted as negatives
    frame = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)], "y_covid": y, "score_covid": p})
    frame["y_morbidity"] = ym
    frame["pred_morbidity"] = prob.argmax(axis=1)
    for i, c in enumerate(["control", "type_i", "type_ii"]):
        frame[f"score_morbidity_{c}"] = prob[:, i]
    return frame


def test_task_table_binary_and_multiclass():
    from mmtune.analysis.stats import auc_ci
    from sklearn.metrics import brier_score_loss, roc_auc_score

    frame = _frame()
    tasks = detect_tasks(list(frame.columns), dict(frame.dtypes))
    settings = ClinicalConfig(n_boot=200, specificity_targets=[0.9], sensitivity_targets=[0.8])
    val, test = frame.iloc[:120], frame.iloc[120:]
    thresholds = choose_thresholds(tasks["covid"], val, settings)
    table = task_table(tasks["covid"], test, settings, thresholds)
    m = flat_metrics(table)
    yt, pt = test["y_covid"].to_numpy(), test["score_covid"].to_numpy()
    keep = yt >= 0
    assert m["covid/brier"] == pytest.approx(brier_score_loss(yt[keep], pt[keep]))
    assert m["covid/auroc"] == pytest.approx(roc_auc_score(yt[keep], pt[keep]))
    assert m["covid/threshold"] == pytest.approx(thresholds[""])
    assert m["covid/sensitivity"] == pytest.approx(operating.rates(yt[keep], pt[keep], thresholds[""])["sensitivity"])
    assert "covid/sensitivity_at_specificity_0.9" in m and "covid/specificity_at_sensitivity_0.8" in m
    rows = table.set_index("metric")
    ci = auc_ci(yt[keep], pt[keep])
    assert rows.loc["auroc", "ci"] == "DeLong" and rows.loc["auroc", "lo"] == pytest.approx(ci.lo)
    for name in ("brier", "calibration_slope", "ppv", "sensitivity_at_specificity_0.9"):
        assert rows.loc[name, "lo"] <= rows.loc[name, "estimate"] <= rows.loc[name, "hi"], name
    assert rows.loc["auroc", "n"] == int(keep.sum())

    multi = task_table(tasks["morbidity"], test, settings, choose_thresholds(tasks["morbidity"], val, settings))
    mm = flat_metrics(multi)
    y = test["y_morbidity"].to_numpy()
    proba = test[[c for c in test.columns if c.startswith("score_morbidity_")]].to_numpy()
    for i, c in enumerate(["control", "type_i", "type_ii"]):
        assert mm[f"morbidity/auroc_{c}"] == pytest.approx(roc_auc_score(y == i, proba[:, i]))
    assert mm["morbidity/auroc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    macro = multi[(multi["part"] == MACRO) & (multi["metric"] == "brier")].iloc[0]
    assert macro["lo"] < macro["estimate"] < macro["hi"]


def test_small_groups_are_shown_without_intervals():
    frame = _frame().iloc[:8]
    tasks = detect_tasks(list(frame.columns), dict(frame.dtypes))
    table = task_table(tasks["covid"], frame, ClinicalConfig(n_boot=100))
    brier = table.set_index("metric").loc["brier"]
    assert brier["ci"] == "too small" and np.isnan(brier["lo"]) and np.isfinite(brier["estimate"])


def test_clinical_config_rejects_targets_outside_unit_interval():
    from mmtune.config.loading import validate
    from mmtune.errors import ConfigError

    for bad in ({"specificity_targets": [1.2]}, {"threshold": {"sensitivity": 0}}, {"net_benefit_at": [1]}):
        with pytest.raises(ConfigError, match=r"\(0, 1\)"):
            validate(ClinicalConfig, bad, "space.yaml")
    assert ClinicalConfig.model_validate({"threshold": {"sensitivity": 0.9}}).threshold_label.startswith("sens")
