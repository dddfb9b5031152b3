"""Masked per-task metrics: equal to scikit-learn / scipy on the labelled subset, NaN where undefined."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmtune.tasks import TaskKind, TaskSpec
from mmtune.training.metrics import RunMetrics, class_key, metric_keys
from scipy.stats import spearmanr
from sklearn import metrics as skm

COVID = TaskSpec(name="covid", kind=TaskKind.BINARY, classes=["Control", "COVID-19"])
MORBIDITY = TaskSpec(name="morbidity", kind=TaskKind.MULTICLASS, classes=["Control", "Type I", "Type II"])
FINDINGS = TaskSpec(name="findings", kind=TaskKind.MULTILABEL, classes=["ground_glass", "consolidation", "effusion"])
SEVERITY = TaskSpec(name="severity", kind=TaskKind.REGRESSION)
LESIONS = TaskSpec(name="lesion_seg", kind=TaskKind.SEGMENTATION, classes=["background", "lesion"])


def _batches(n: int, size: int, seed: int = 0):
    """Random outputs + labels with masked entries, split into batches (metrics accumulate over an epoch)."""
    g = torch.Generator().manual_seed(seed)
    y_covid = (torch.rand(n, generator=g) < 0.5).float()
    y_covid[torch.rand(n, generator=g) < 0.25] = float("nan")
    y_morb = torch.randint(0, 3, (n,), generator=g)
    y_morb[torch.rand(n, generator=g) < 0.25] = -1
    y_find = (torch.rand(n, 3, generator=g) < 0.4).float()
    y_find[torch.rand(n, 3, generator=g) < 0.2] = float("nan")
    y_sev = torch.rand(n, generator=g)
    y_sev[torch.rand(n, generator=g) < 0.25] = float("nan")
    out = {
        "covid": torch.randn(n, generator=g) + 1.5 * torch.nan_to_num(y_covid),
        "morbidity": torch.randn(n, 3, generator=g),
        "findings": torch.randn(n, 3, generator=g) + torch.nan_to_num(y_find),
        "severity": torch.nan_to_num(y_sev) + 0.3 * torch.randn(n, generator=g),
    }
    labels = {"y_covid": y_covid, "y_morbidity": y_morb, "y_findings": y_find, "y_severity": y_sev}
    for start in range(0, n, size):
        sl = slice(start, start + size)
        yield {k: v[sl] for k, v in out.items()}, {k: v[sl] for k, v in labels.items()}


def _all(n: int = 120):
    parts = list(_batches(n, 16))
    outputs = {k: torch.cat([p[0][k] for p in parts]) for k in parts[0][0]}
    labels = {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]}
    return parts, outputs, labels


def test_masked_samples_are_ignored_and_values_equal_sklearn() -> None:
    parts, outputs, labels = _all()
    metrics = RunMetrics([COVID, MORBIDITY, FINDINGS, SEVERITY])
    for out, batch in parts:
        metrics.update(out, batch)
    got = metrics.compute("val")

    keep = ~torch.isnan(labels["y_covid"])
    y, p = labels["y_covid"][keep].numpy(), torch.sigmoid(outputs["covid"][keep]).numpy()
    assert got["val/covid/auroc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-6)
    assert got["val/covid/ap"] == pytest.approx(skm.average_precision_score(y, p), abs=1e-6)
    assert got["val/covid/accuracy"] == pytest.approx(skm.accuracy_score(y, p > 0.5), abs=1e-6)
    assert got["val/covid/f1"] == pytest.approx(skm.f1_score(y, p > 0.5), abs=1e-6)
    assert got["val/covid/balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p > 0.5), abs=1e-6)
    assert got["val/covid/auroc"] > 0.7  # the planted signal: not a metric of random numbers

    keep = labels["y_morbidity"] >= 0
    y, prob = labels["y_morbidity"][keep].numpy(), torch.softmax(outputs["morbidity"][keep], -1).numpy()
    assert got["val/morbidity/auroc"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr"), abs=1e-6)
    assert got["val/morbidity/f1"] == pytest.approx(skm.f1_score(y, prob.argmax(1), average="macro"), abs=1e-6)
    assert got["val/morbidity/balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(y, prob.argmax(1)), abs=1e-6
    )
    assert got["val/morbidity/accuracy"] == pytest.approx(skm.accuracy_score(y, prob.argmax(1)), abs=1e-6)
    for c, name in enumerate(MORBIDITY.classes):
        assert got[f"val/morbidity/auroc_{class_key(name)}"] == pytest.approx(
            skm.roc_auc_score(y == c, prob[:, c]), abs=1e-6
        )

    for j, name in enumerate(FINDINGS.classes):
        column = labels["y_findings"][:, j]
        keep = ~torch.isnan(column)
        y, p = column[keep].numpy(), torch.sigmoid(outputs["findings"][keep, j]).numpy()
        pred = p > 0.5
        assert got[f"val/findings/auroc_{name}"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-6)
        assert got[f"val/findings/sensitivity_{name}"] == pytest.approx(skm.recall_score(y, pred), abs=1e-6)
        assert got[f"val/findings/specificity_{name}"] == pytest.approx(
            skm.recall_score(y, pred, pos_label=0), abs=1e-6
        )
        assert got[f"val/findings/f1_{name}"] == pytest.approx(skm.f1_score(y, pred), abs=1e-6)
        assert got[f"val/findings/mcc_{name}"] == pytest.approx(skm.matthews_corrcoef(y, pred), abs=1e-5)
    per_label = [got[f"val/findings/auroc_{n}"] for n in FINDINGS.classes]
    assert got["val/findings/auroc"] == pytest.approx(np.mean(per_label), abs=1e-9)

    keep = ~torch.isnan(labels["y_severity"])
    y, pred = labels["y_severity"][keep].numpy(), outputs["severity"][keep].numpy()
    assert got["val/severity/mae"] == pytest.approx(skm.mean_absolute_error(y, pred), abs=1e-5)
    assert got["val/severity/spearman"] == pytest.approx(spearmanr(y, pred).statistic, abs=1e-5)

    classification = [got["val/covid/auroc"], got["val/morbidity/auroc"], got["val/findings/auroc"]]
    assert got["val/mean_auroc"] == pytest.approx(np.mean(classification), abs=1e-9)
    assert set(got) == set(metric_keys([COVID, MORBIDITY, FINDINGS, SEVERITY], "val")) - {"val/loss"}


def test_undefined_metrics_are_nan_not_errors() -> None:
    metrics = RunMetrics([COVID, MORBIDITY, SEVERITY])
    batch = {
        "y_covid": torch.tensor([1.0, 1.0, float("nan")]),  # one class only
        "y_morbidity": torch.tensor([-1, -1, -1]),  # nothing labelled
        "y_severity": torch.tensor([0.5, 0.5, 0.5]),  # constant
    }
    out = {"covid": torch.tensor([0.3, -0.2, 5.0]), "morbidity": torch.randn(3, 3), "severity": torch.randn(3)}
    metrics.update(out, batch)
    got = metrics.compute("test")
    assert math.isnan(got["test/covid/auroc"]) and math.isnan(got["test/covid/ap"])
    assert math.isnan(got["test/covid/balanced_accuracy"])
    assert got["test/covid/accuracy"] == pytest.approx(0.5)  # defined: sigmoid(0.3) > .5, sigmoid(-0.2) < .5
    assert all(math.isnan(v) for k, v in got.items() if k.startswith("test/morbidity/"))
    assert math.isnan(got["test/severity/spearman"])
    assert math.isnan(got["test/mean_auroc"])
    metrics.reset()
    assert all(math.isnan(v) for v in metrics.compute("test").values())


def test_segmentation_dice_iou_only_on_patients_with_masks() -> None:
    metrics = RunMetrics([LESIONS])
    mask = torch.zeros(3, 2, 4, 4)
    mask[0, :, :2, :2] = 1  # 8 voxels
    mask[1, 0, 0, 0] = 1
    logits = torch.full((3, 2, 4, 4), -5.0)
    logits[0, :, :2, :] = 5.0  # predicts 16 voxels, 8 correct: dice 2*8/24, iou 8/16
    logits[2] = 5.0  # patient 2 has no mask: must not count
    batch = {"mask": mask, "has_mask": torch.tensor([True, True, False]), "image": torch.zeros(3, 2, 4, 4)}
    metrics.update({"lesion_seg": logits}, batch)
    got = metrics.compute("val")
    assert got["val/lesion_seg/dice"] == pytest.approx((2 * 8 / 24 + 0.0) / 2, abs=1e-6)
    assert got["val/lesion_seg/iou"] == pytest.approx((8 / 16 + 0.0) / 2, abs=1e-6)


def test_multi_dataset_keys_split_by_source() -> None:
    metrics = RunMetrics([COVID], dataset_names=["ictcf", "other"])
    batch = {"y_covid": torch.tensor([0.0, 1.0, 0.0, 1.0]), "dataset": torch.tensor([0, 0, 1, 1])}
    metrics.update({"covid": torch.tensor([-1.0, 1.0, 1.0, -1.0])}, batch)
    got = metrics.compute("val")
    assert got["val/ictcf/covid/auroc"] == 1.0
    assert got["val/other/covid/auroc"] == 0.0
    assert got["val/covid/auroc"] == pytest.approx(skm.roc_auc_score([0, 1, 0, 1], [-1, 1, 1, -1]))
