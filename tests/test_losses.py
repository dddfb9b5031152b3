"""Masked task losses: labelled samples only, exact zero (with a gradient) when nothing is labelled, values equal to
the torch / MONAI reference computed on the labelled subset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmtune.config.run import TaskConfig
from mmtune.errors import UnknownComponentError
from mmtune.losses import n_labelled, resolve_task_options, task_loss, task_losses
from mmtune.tasks import TaskKind, TaskSpec
from monai.losses import DiceCELoss, DiceLoss

BINARY = TaskSpec(name="covid", kind=TaskKind.BINARY, classes=["negative", "positive"])
MULTICLASS = TaskSpec(name="morbidity", kind=TaskKind.MULTICLASS, classes=["mild", "regular", "severe"])
MULTILABEL = TaskSpec(name="findings", kind=TaskKind.MULTILABEL, classes=["ggo", "consolidation", "effusion"])
REGRESSION = TaskSpec(name="severity", kind=TaskKind.REGRESSION)
SEGMENTATION = TaskSpec(name="lesion_seg", kind=TaskKind.SEGMENTATION, classes=["background", "lesion"])
RECONSTRUCTION = TaskSpec(name="recon", kind=TaskKind.RECONSTRUCTION)
NAN = float("nan")


def options(task: TaskSpec, **kwargs) -> TaskConfig:
    return TaskConfig(name=task.name, **kwargs)


def test_binary_bce_ignores_masked_samples_and_matches_torch() -> None:
    logits = torch.tensor([0.3, -1.2, 2.0, 0.5], requires_grad=True)
    labels = torch.tensor([1.0, NAN, 0.0, 1.0])
    loss = task_loss(BINARY, logits, {"y_covid": labels}, options(BINARY, pos_weight=2.0))
    keep = torch.tensor([0, 2, 3])
    reference = F.binary_cross_entropy_with_logits(logits[keep], labels[keep], pos_weight=torch.tensor(2.0))
    assert torch.allclose(loss, reference)
    loss.backward()
    assert logits.grad[1] == 0 and (logits.grad[keep] != 0).all()
    # int64 labels with -1 masked (the Parquet encoding) give the same loss; the masked label's value is irrelevant
    as_int = task_loss(BINARY, logits, {"y_covid": torch.tensor([1, -1, 0, 1])}, options(BINARY, pos_weight=2.0))
    assert torch.allclose(as_int, reference)


def test_multiclass_ce_with_class_weights_matches_torch() -> None:
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([2, -1, 0, 1, -1])
    weights = [1.0, 2.0, 0.5]
    loss = task_loss(MULTICLASS, logits, {"y_morbidity": labels}, options(MULTICLASS, class_weights=weights))
    keep = labels >= 0
    assert torch.allclose(loss, F.cross_entropy(logits[keep], labels[keep], weight=torch.tensor(weights)))
    moved = logits.clone()
    moved[~keep] += 10.0  # what the model says about unlabelled patients does not matter
    changed = task_loss(MULTICLASS, moved, {"y_morbidity": labels}, options(MULTICLASS, class_weights=weights))
    assert torch.equal(loss, changed)


def test_multilabel_masks_entries_not_samples() -> None:
    logits = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([[1.0, NAN, 0.0], [NAN, NAN, NAN], [0.0, 1.0, NAN]])
    loss = task_loss(MULTILABEL, logits, {"y_findings": labels}, options(MULTILABEL))
    valid = ~torch.isnan(labels)
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits[valid], labels[valid]))
    assert n_labelled(MULTILABEL, {"y_findings": labels}) == 2


@pytest.mark.parametrize(
    ("name", "reference"), [("mse", F.mse_loss), ("smooth_l1", F.smooth_l1_loss), ("l1", F.l1_loss)]
)
def test_regression_losses_on_labelled_samples(name, reference) -> None:
    pred = torch.tensor([1.0, 5.0, -2.0, 0.0])
    target = torch.tensor([1.5, NAN, 2.0, NAN])
    loss = task_loss(REGRESSION, pred, {"y_severity": target}, options(REGRESSION, loss=name))
    assert torch.allclose(loss, reference(pred[[0, 2]], target[[0, 2]]))


def test_segmentation_dice_ce_per_patient_and_masked() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 4, 8, 8, generator=g)  # slice stack: [B, K, H, W]
    masks = (torch.rand(3, 4, 8, 8, generator=g) > 0.6).float()
    has_mask = torch.tensor([True, False, True])
    loss = task_loss(SEGMENTATION, logits, {"mask": masks, "has_mask": has_mask}, options(SEGMENTATION))
    keep = has_mask
    reference = DiceCELoss(sigmoid=True)(logits[keep].unsqueeze(1), masks[keep].unsqueeze(1))
    assert torch.allclose(loss, reference)
    scrambled = masks.clone()
    scrambled[1] = 1 - scrambled[1]  # the patient without a mask: whatever its (zero) mask holds is ignored
    same = task_loss(SEGMENTATION, logits, {"mask": scrambled, "has_mask": has_mask}, options(SEGMENTATION))
    assert torch.equal(loss, same)
    dice_only = task_loss(
        SEGMENTATION, logits, {"mask": masks, "has_mask": has_mask}, options(SEGMENTATION, loss="dice")
    )
    assert torch.allclose(dice_only, DiceLoss(sigmoid=True)(logits[keep].unsqueeze(1), masks[keep].unsqueeze(1)))


def test_segmentation_volumes_and_multiple_classes() -> None:
    g = torch.Generator().manual_seed(3)
    volume_logits = torch.randn(2, 1, 6, 6, 6, generator=g)
    volume_masks = (torch.rand(2, 1, 6, 6, 6, generator=g) > 0.5).float()
    batch = {"mask": volume_masks, "has_mask": torch.tensor([True, True])}
    loss = task_loss(SEGMENTATION, volume_logits, batch, options(SEGMENTATION))
    assert torch.allclose(loss, DiceCELoss(sigmoid=True)(volume_logits, volume_masks))
    three = TaskSpec(name="lung_lesion", kind=TaskKind.SEGMENTATION, classes=["background", "lung", "lesion"])
    logits = torch.randn(2, 2, 4, 6, 6, generator=g)  # [B, C, K, H, W]
    labels = torch.randint(0, 3, (2, 4, 6, 6), generator=g).float()
    loss = task_loss(three, logits, {"mask": labels, "has_mask": torch.tensor([True, True])}, options(three))
    onehot = torch.stack([labels == 1, labels == 2], dim=1).float()
    reference = DiceLoss(sigmoid=True)(logits, onehot) + F.binary_cross_entropy_with_logits(logits, onehot)
    assert torch.allclose(loss, reference)


def test_reconstruction_targets_the_image() -> None:
    image = torch.rand(2, 4, 8, 8)
    output = torch.rand(2, 4, 8, 8)
    assert torch.allclose(task_loss(RECONSTRUCTION, output, {"image": image}), F.mse_loss(output, image))


@pytest.mark.parametrize(
    ("task", "output", "batch"),
    [
        (BINARY, torch.randn(3), {"y_covid": torch.full((3,), NAN)}),
        (BINARY, torch.randn(3), {"y_covid": torch.tensor([-1, -1, -1])}),
        (MULTICLASS, torch.randn(3, 3), {"y_morbidity": torch.tensor([-1, -1, -1])}),
        (MULTILABEL, torch.randn(3, 3), {"y_findings": torch.full((3, 3), NAN)}),
        (REGRESSION, torch.randn(3), {"y_severity": torch.full((3,), NAN)}),
        (SEGMENTATION, torch.randn(3, 4, 8, 8), {"mask": torch.zeros(3, 4, 8, 8), "has_mask": torch.zeros(3).bool()}),
        (BINARY, torch.randn(0), {"y_covid": torch.zeros(0)}),
    ],
)
def test_no_labels_gives_exact_zero_with_a_gradient(task, output, batch) -> None:
    output = output.clone().requires_grad_(True)
    loss = task_loss(task, output, batch, options(task, pos_weight=3.0) if task is BINARY else None)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(output.grad, torch.zeros_like(output))


def test_task_losses_returns_losses_and_label_counts() -> None:
    batch = {"y_covid": torch.tensor([1.0, NAN, 0.0]), "y_severity": torch.tensor([NAN, NAN, NAN])}
    outputs = {"covid": torch.zeros(3), "severity": torch.zeros(3, requires_grad=True)}
    losses, counts = task_losses([BINARY, REGRESSION], outputs, batch)
    assert counts == {"covid": 2, "severity": 0}
    assert losses["severity"].item() == 0.0
    assert losses["covid"].item() == pytest.approx(np.log(2))


def test_auto_pos_weight_and_balanced_class_weights_from_training_labels() -> None:
    resolved = resolve_task_options(BINARY, options(BINARY, pos_weight="auto"), np.array([1, 0, 0, 0, -1, 0]))
    assert resolved.pos_weight == pytest.approx(4.0)
    resolved = resolve_task_options(
        MULTICLASS, options(MULTICLASS, class_weights="balanced"), np.array([0, 0, 0, 1, 2, 2, -1])
    )
    assert resolved.class_weights == pytest.approx([6 / 9, 2.0, 1.0])
    degenerate = resolve_task_options(BINARY, options(BINARY, pos_weight="auto"), np.array([0, 0, -1]))
    assert degenerate.pos_weight == 1.0
    with pytest.raises(ValueError, match="'auto' must be resolved"):
        task_loss(BINARY, torch.zeros(2), {"y_covid": torch.ones(2)}, options(BINARY, pos_weight="auto"))


def test_unknown_loss_name_is_a_config_error() -> None:
    with pytest.raises(UnknownComponentError, match=r"unknown task loss 'focal' at tasks\.covid\.loss; known: bce"):
        task_loss(BINARY, torch.zeros(2), {"y_covid": torch.ones(2)}, options(BINARY, loss="focal"))
