"""Reference formulas for the weightings whose other tests check behaviour only (equal, CAGrad, FAMO, GradNorm):
each is computed here independently, on a fixed problem, and compared with the module's update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmtune.config.run import WeightingConfig
from mmtune.losses.weighting import build_weighting

JACOBIAN = torch.tensor([[1.0, -2.0, 0.5, 0.0], [-1.5, 1.0, 0.0, 2.0]], dtype=torch.float64)


def weighting(name: str, tasks=("a", "b"), **params):
    return build_weighting(WeightingConfig(name=name, params=params), list(tasks))


def linear_losses(theta: torch.Tensor, jacobian: torch.Tensor = JACOBIAN) -> dict[str, torch.Tensor]:
    return {t: theta @ row for t, row in zip("ab", jacobian)}


def test_equal_is_the_plain_sum_of_the_losses() -> None:
    theta = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    weighting("equal").combine(linear_losses(theta)).backward()
    assert torch.allclose(theta.grad, JACOBIAN.sum(0))


def test_cagrad_matches_the_primal_problem_solved_by_grid_search() -> None:
    """Liu et al. (2021), eq. (4) and their code: w* = argmin_{w in simplex} g_w . g0 + sqrt(phi) |g_w| with
    phi = c^2 |g0|^2; update (g0 + sqrt(phi) g_w / |g_w|) / (1 + c^2), times T (the summed loss's scale)."""
    c = 0.5
    theta = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    weighting("cagrad", c=c).backward(linear_losses(theta), [theta])
    g = JACOBIAN.numpy()
    g0 = g.mean(0)
    radius = c * np.linalg.norm(g0)
    grid = np.linspace(0.0, 1.0, 200_001)
    gw = grid[:, None] * g[0] + (1 - grid[:, None]) * g[1]
    objective = gw @ g0 + radius * np.linalg.norm(gw, axis=1)
    best = gw[objective.argmin()]
    expected = 2 * (g0 + radius * best / np.linalg.norm(best)) / (1 + c**2)
    assert np.allclose(theta.grad.numpy(), expected, atol=1e-4), (theta.grad, expected)


def test_famo_weights_and_logit_step_follow_the_paper() -> None:
    """FAMO (Liu et al., 2023): the loss sum_t z_t log L_t / c with c = sum_t z_t / L_t gives task t the gradient
    weight z_t / (c L_t); after a step, the logits take one Adam step on J_softmax^T (log L_prev - log L_now)."""
    lr = 0.025
    w = weighting("famo", lr=lr, weight_decay=0.0)
    theta = torch.nn.Parameter(torch.tensor([0.5, 2.0], dtype=torch.float32))

    def losses() -> dict[str, torch.Tensor]:
        return {"a": theta[0].square() + 1.0, "b": 3.0 * theta[1].square() + 1.0}

    first = {k: v.item() for k, v in losses().items()}
    w.combine(losses())  # first step: no previous loss, logits stay 0
    assert w.task_weights() == pytest.approx({"a": 0.5, "b": 0.5})
    with torch.no_grad():
        theta.copy_(torch.tensor([0.2, 1.9]))
    now = losses()
    theta.grad = None
    w.combine(now).backward()
    second = {k: v.item() for k, v in now.items()}
    decrease = np.array([math.log(first[t] / second[t]) for t in "ab"])
    z = np.array([0.5, 0.5])
    grad = z * (decrease - z @ decrease)  # J_softmax(0)^T d
    logits = -lr * grad / (np.abs(grad) + 1e-8)  # Adam's first step: m_hat / sqrt(v_hat) = sign
    expected_z = np.exp(logits) / np.exp(logits).sum()
    assert np.allclose(list(w.task_weights().values()), expected_z, atol=1e-6)
    coef = expected_z / np.array([second["a"], second["b"]])
    coef /= coef.sum()
    expected_grad = coef[0] * np.array([2 * 0.2, 0.0]) + coef[1] * np.array([0.0, 6 * 1.9])
    assert np.allclose(theta.grad.numpy(), expected_grad, atol=1e-5)


def test_gradnorm_weight_step_follows_the_formula() -> None:
    """GradNorm (Chen et al., 2018) with the L1 objective sum_t |w_t G_t - mean(wG) r_t^alpha|: its subgradient
    in w_t is sign(.) G_t; the step is scaled so the largest move is lr x sum(w), then weights sum to T."""
    alpha, lr = 1.5, 0.1
    w = weighting("gradnorm", alpha=alpha, lr=lr)
    theta = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    losses = {t: loss + 3.0 for t, loss in linear_losses(theta).items()}  # positive losses, same gradients
    w.backward(losses, [theta])  # first step: initial losses recorded, rates all 1
    assert torch.allclose(theta.grad, JACOBIAN.sum(0))  # weights were 1 for this step
    norms = JACOBIAN.norm(dim=1).numpy()
    weighted = norms  # w = 1
    target = weighted.mean() * np.ones(2)
    grad_w = np.sign(weighted - target) * norms
    step = lr * grad_w / np.abs(grad_w).max()
    new = np.maximum(1.0 - step * 2.0, 1e-3)
    new *= 2 / new.sum()
    assert np.allclose(list(w.task_weights().values()), new, atol=1e-6)
    assert w.task_weights()["a"] > w.task_weights()["b"]  # task a's gradient is the smaller: it gains weight
