"""The weightings added for the search-space zoo, each checked against a reference on a fixed problem: torchjd's
own aggregators on a fixed Jacobian (the plumbing), written-out formulas (RLW, GLS, IMTL-L), LibMTL's DB-MTL
algorithm, and Nash-MTL's invariance to the scale of the losses."""

from __future__ import annotations

import pytest
import torch
from mmtune.config.run import WeightingConfig
from mmtune.losses.weighting import WEIGHTINGS, build_weighting

JACOBIAN = torch.tensor(
    [
        [1.0, -2.0, 0.5, 0.0, 3.0, -1.0],
        [-1.5, 1.0, 0.0, 2.0, -0.5, 0.5],
        [0.3, 0.2, -1.0, 1.0, 1.0, 2.0],
    ],
    dtype=torch.float64,
)
TORCHJD = {
    "upgrad": ("UPGrad", {}),
    "mgda": ("MGDA", {"epsilon": 0.001, "max_iters": 100}),
    "imtl_g": ("IMTLG", {}),
    "aligned_mtl": ("AlignedMTL", {"scale_mode": "median"}),
    "dualproj": ("DualProj", {}),
    "config": ("ConFIG", {}),
    "graddrop": ("GradDrop", {}),
    "gradvac": ("GradVac", {"beta": 0.5}),
    "fairgrad": ("FairGrad", {"alpha": 2.0}),
    "rgw": ("Random", {}),
}


def weighting(name: str, tasks=("a", "b", "c"), **params):
    return build_weighting(WeightingConfig(name=name, params=params), list(tasks))


def linear_losses(theta: torch.Tensor, jacobian: torch.Tensor, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Losses whose gradients on ``theta`` are exactly the rows of ``jacobian`` (times ``scale``)."""
    return {t: scale * (theta @ row) for t, row in zip("abc", jacobian)}


def shared_gradient(name: str, jacobian: torch.Tensor = JACOBIAN, scale: float = 1.0, **params) -> torch.Tensor:
    theta = torch.nn.Parameter(torch.zeros(jacobian.shape[1], dtype=jacobian.dtype))
    w = weighting(name, tasks=tuple("abc"[: jacobian.shape[0]]), **params)
    w.backward(linear_losses(theta, jacobian, scale), [theta])
    return theta.grad.detach()


def test_the_zoo_has_at_least_twenty_weightings() -> None:
    assert len(WEIGHTINGS) >= 20
    assert {"rlw", "gls", "imtl_l", "db_mtl", *TORCHJD} <= set(WEIGHTINGS.names())


@pytest.mark.parametrize("name", sorted(TORCHJD))
def test_torchjd_aggregators_give_torchjd_s_update(name: str) -> None:
    import torchjd.aggregation as agg

    cls, params = TORCHJD[name]
    ours = shared_gradient(name, **params)
    if name in ("graddrop", "rgw"):  # seeded draws: seed 0, step 0
        torch.manual_seed(0)
    expected = getattr(agg, cls)(**params)(JACOBIAN)
    assert torch.allclose(ours, expected, atol=1e-6), (ours, expected)
    if name not in ("graddrop", "rgw"):
        assert not torch.allclose(ours, JACOBIAN.sum(0), atol=1e-3)  # the aggregator changed something


def test_nash_mtl_update_does_not_depend_on_the_loss_scale() -> None:
    updates = [shared_gradient("nash_mtl", scale=c, max_norm=0.0) for c in (0.01, 1.0, 100.0)]
    norms = [float(u.norm()) for u in updates]
    assert norms[0] == pytest.approx(norms[1], rel=1e-4) and norms[2] == pytest.approx(norms[1], rel=1e-4), norms
    for u in updates:
        assert torch.allclose(u, updates[1], rtol=1e-4, atol=1e-8)
    # and alpha solves the bargaining fixed point on the raw Gram matrix: alpha_t (G alpha)_t = 1
    w = weighting("nash_mtl", max_norm=0.0)
    theta = torch.nn.Parameter(torch.zeros(6, dtype=torch.float64))
    w.backward(linear_losses(theta, JACOBIAN, 100.0), [theta])
    alpha = torch.tensor(list(w.task_weights().values()), dtype=torch.float64)
    gram = (100.0 * JACOBIAN) @ (100.0 * JACOBIAN).T
    assert torch.allclose(alpha * (gram @ alpha), torch.ones(3, dtype=torch.float64), atol=1e-4)


def test_rlw_weights_are_t_times_a_seeded_softmax() -> None:
    w = weighting("rlw", seed=7)
    theta = torch.nn.Parameter(torch.zeros(6, dtype=torch.float64))
    losses = {t: (theta + 1) @ row for t, row in zip("abc", JACOBIAN.abs())}
    total = w.combine(losses)
    expected_w = 3 * torch.softmax(torch.randn(3, generator=torch.Generator().manual_seed(7)), 0).double()
    assert total.item() == pytest.approx(float(sum(expected_w[i] * losses[t].detach() for i, t in enumerate("abc"))))
    assert list(w.task_weights().values()) == pytest.approx(expected_w.tolist())
    assert sum(w.task_weights().values()) == pytest.approx(3.0)


def test_gls_is_the_geometric_mean_with_its_gradient() -> None:
    theta = torch.nn.Parameter(torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64))
    losses = {"a": theta[0] ** 2, "b": 4 * theta[1], "c": theta[2] + 1}
    w = weighting("gls")
    total = w.combine(losses)
    values = [0.25, 8.0, 4.0]
    assert total.item() == pytest.approx((0.25 * 8.0 * 4.0) ** (1 / 3))
    total.backward()
    gls = total.item()
    # d GLS / d L_t = GLS / (T L_t); chain rule through each loss
    expected = [gls / (3 * values[0]) * 2 * 0.5, gls / (3 * values[1]) * 4, gls / (3 * values[2]) * 1]
    assert theta.grad.tolist() == pytest.approx(expected)


def test_imtl_l_balances_the_scaled_losses() -> None:
    """At its optimum exp(s_t) L_t = 1: s_t -> -log L_t for fixed losses."""
    w = weighting("imtl_l", tasks=("a", "b"))
    fixed = {"a": torch.tensor(4.0, requires_grad=True), "b": torch.tensor(0.25, requires_grad=True)}
    opt = torch.optim.SGD(w.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        w.combine(fixed).backward()
        opt.step()
    scales = w.task_weights()
    assert scales["a"] * 4.0 == pytest.approx(1.0, abs=1e-3)
    assert scales["b"] * 0.25 == pytest.approx(1.0, abs=1e-3)


def libmtl_db_mtl(jacobians: list[torch.Tensor], losses: list[torch.Tensor], beta=0.9, beta_sigma=0.5):
    """LibMTL's DB_MTL.backward, written out: EMA of log-loss gradients, rescaled to the largest norm."""
    buffer = torch.zeros_like(jacobians[0])
    out = []
    for step, (jac, loss) in enumerate(zip(jacobians, losses), start=1):
        grads = jac / loss.unsqueeze(1)  # gradient of log(L_t) for L_t = theta @ jac_t
        buffer = grads + (beta / step**beta_sigma) * (buffer - grads)
        norms = buffer.norm(dim=-1)
        alpha = norms.max() / (norms + 1e-8)
        out.append(sum(alpha[i] * buffer[i] for i in range(len(alpha))))
    return out


def test_db_mtl_matches_libmtl_s_algorithm() -> None:
    w = weighting("db_mtl")
    jacobians = [JACOBIAN.abs(), JACOBIAN.abs().flip(0) * 2, JACOBIAN.abs() * 0.5]
    thetas = [torch.full((6,), v, dtype=torch.float64) for v in (1.0, 0.5, 2.0)]
    ours, loss_values = [], []
    for jac, start in zip(jacobians, thetas):
        theta = torch.nn.Parameter(start.clone())
        losses = linear_losses(theta, jac)
        loss_values.append(torch.stack([v.detach() for v in losses.values()]))
        w.backward(losses, [theta])
        ours.append(theta.grad.detach())
    for got, expected in zip(ours, libmtl_db_mtl(jacobians, loss_values)):
        assert torch.allclose(got, expected, rtol=1e-6), (got, expected)
