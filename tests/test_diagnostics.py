"""Per-epoch MTL diagnostics on a fixed batch: weights, shared-gradient norms and cosines equal what autograd gives
directly, the model's state (mode, ``.grad``, batch-norm statistics) is left as it was, and unlabelled tasks are
NaN."""

from __future__ import annotations

import math

import torch
from mmtune.config.run import ModelConfig
from mmtune.data.format import ImageInfo
from mmtune.losses import task_losses
from mmtune.models import build_model
from mmtune.tasks import TaskKind, TaskSpec
from mmtune.training.diagnostics import fixed_batch, gradient_diagnostics

TASKS = [
    TaskSpec(name="covid", kind=TaskKind.BINARY, classes=["n", "p"]),
    TaskSpec(name="severity", kind=TaskKind.REGRESSION),
    TaskSpec(name="age", kind=TaskKind.REGRESSION),
]


def setup():
    torch.manual_seed(0)
    cfg = ModelConfig.model_validate({"backbone": {"name": "small_cnn", "params": {"width": 8}}, "fusion": {"dim": 8}})
    model = build_model(cfg, ImageInfo(dtype="float32", shape=[4, 32, 32], layout="stack2d"), 3, TASKS)
    g = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.rand(12, 4, 32, 32, generator=g),
        "clinical": torch.randn(12, 3, generator=g),
        "clinical_missing": torch.zeros(12, 3),
        "y_covid": (torch.rand(12, generator=g) > 0.5).float(),
        "y_severity": torch.randn(12, generator=g),
        "y_age": torch.full((12,), float("nan")),  # no labels: NaN diagnostics
    }
    return model, batch


def test_diagnostics_equal_autograd_and_leave_the_model_alone() -> None:
    model, batch = setup()
    fixed = fixed_batch(batch, 6)
    assert fixed["image"].shape[0] == 6 and fixed["image"].data_ptr() != batch["image"].data_ptr()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    out = gradient_diagnostics(model, lambda o: task_losses(TASKS, o, fixed), fixed, {"covid": 0.5, "severity": 2.0})
    assert model.training and torch.equal(bn.running_mean, stats)
    assert all(p.grad is None for p in model.parameters())

    model.eval()  # the reference: each task's gradient on the shared parameters, straight from autograd
    losses, _ = task_losses(TASKS, model(fixed), fixed)
    shared = model.shared_parameters()
    grads = {
        t: torch.cat([g.flatten() for g in torch.autograd.grad(losses[t], shared, retain_graph=True)])
        for t in ("covid", "severity")
    }
    assert out["diag/covid/weight"] == 0.5 and out["diag/severity/weight"] == 2.0
    assert math.isnan(out["diag/age/weight"])
    assert (
        abs(out["diag/covid/grad_norm"] - torch.linalg.norm(grads["covid"]).item()) < 1e-5 * out["diag/covid/grad_norm"]
    )
    cosine = torch.dot(grads["covid"], grads["severity"]) / (grads["covid"].norm() * grads["severity"].norm())
    assert abs(out["diag/covid~severity/grad_cosine"] - cosine.item()) < 1e-5
    assert math.isnan(out["diag/age/grad_norm"]) and math.isnan(out["diag/covid~age/grad_cosine"])
    assert set(out) == {
        *(f"diag/{t}/{k}" for t in ("covid", "severity", "age") for k in ("weight", "grad_norm")),
        *(f"diag/{p}/grad_cosine" for p in ("covid~severity", "covid~age", "severity~age")),
    }
