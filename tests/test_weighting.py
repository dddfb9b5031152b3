"""Task-loss weightings, tested on behaviour: projections, rates, learned variances, worst-task gains, label masks,
parameter validation, Lightning manual optimization and DDP gradient synchronisation."""

from __future__ import annotations

import math

import pytest
import torch
from mmtune.config.run import TaskConfig, WeightingConfig
from mmtune.errors import ConfigError, UnknownComponentError
from mmtune.losses import task_loss
from mmtune.losses.weighting import WEIGHTINGS, StepInfo, build_weighting
from mmtune.tasks import TaskKind, TaskSpec

ALL = WEIGHTINGS.names()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def weighting(name: str, tasks=("a", "b"), model=None, **params):
    return build_weighting(WeightingConfig(name=name, params=params), list(tasks), model)


def step(w, losses: dict, params: list, info: StepInfo | None = None) -> None:
    """One optimisation step's backward, the way the Lightning module drives either family."""
    if w.manual_gradients:
        w.backward(losses, params, lambda loss: loss.backward(), step_info=info)
    else:
        w.combine(losses, info).backward()


def test_registered_weightings() -> None:
    loss_based = {"equal", "static", "uncertainty", "dwa", "famo", "rlw", "gls", "imtl_l"}
    torchjd = {
        "upgrad",
        "mgda",
        "imtl_g",
        "aligned_mtl",
        "dualproj",
        "config",
        "graddrop",
        "gradvac",
        "fairgrad",
        "rgw",
    }
    gradient = {"gradnorm", "pcgrad", "cagrad", "nash_mtl", "db_mtl", *torchjd}
    assert set(ALL) == loss_based | gradient
    assert {n for n in ALL if WEIGHTINGS.entry(n).factory.manual_gradients} == gradient


def test_pcgrad_projects_conflicting_gradients() -> None:
    theta = torch.nn.Parameter(torch.zeros(2))
    ga, gb = torch.tensor([1.0, 0.0]), torch.tensor([-2.0, 1.0])
    assert ga @ gb / (ga.norm() * gb.norm()) < math.cos(math.radians(90))  # > 90 degrees apart
    assert (ga + gb) @ ga < 0  # the plain sum would undo task a's progress
    step(weighting("pcgrad"), {"a": theta @ ga, "b": theta @ gb}, [theta])
    g = theta.grad
    assert g @ ga >= -1e-6 and g @ gb >= -1e-6
    # a' = a - (a.b/|b|^2) b = (0.2, 0.4); b' = b - (b.a/|a|^2) a = (0, 1)
    assert torch.allclose(g, torch.tensor([0.2, 1.4]), atol=1e-6)


def test_pcgrad_leaves_agreeing_gradients_alone_and_heads_plain() -> None:
    theta = torch.nn.Parameter(torch.zeros(2))
    head_a, head_b = torch.nn.Parameter(torch.tensor(2.0)), torch.nn.Parameter(torch.tensor(3.0))
    losses = {
        "a": head_a * (theta @ torch.tensor([1.0, 0.0]) + 1),
        "b": head_b * (theta @ torch.tensor([1.0, 1.0]) + 1),
    }
    step(weighting("pcgrad"), losses, [theta])
    assert torch.allclose(theta.grad, torch.tensor([2.0 + 3.0, 3.0]))
    assert head_a.grad.item() == pytest.approx(1.0) and head_b.grad.item() == pytest.approx(1.0)


def quadratic_toy(kind: str):
    """Two tasks on shared theta in R^2 with 100x different loss scales.

    ``scales``: the tasks need orthogonal moves (no conflict), so equal weighting starves the small task.
    ``conflict``: both improve along y, conflict along x; equal weighting lets the big task pull x to its side and
    the small task ends worse than it started.
    """
    if kind == "scales":

        def losses(theta):
            return {"a": 5.0 * (theta[0] - 1).square(), "b": 0.05 * (theta[1] - 1).square()}

    else:
        a, b = torch.tensor([1.0, 1.0]), torch.tensor([-1.0, 1.0])

        def losses(theta):
            return {"a": 5.0 * (theta - a).square().sum(), "b": 0.05 * (theta - b).square().sum()}

    return losses


def train_toy(name: str, kind: str, steps: int = 100, lr: float = 0.05, **params) -> tuple[dict, object]:
    losses_of = quadratic_toy(kind)
    theta = torch.nn.Parameter(torch.zeros(2))
    w = weighting(name, **params)
    opt = torch.optim.SGD([theta], lr=lr)
    with torch.no_grad():
        start = {k: v.item() for k, v in losses_of(theta).items()}
    for _ in range(steps):
        opt.zero_grad()
        step(w, losses_of(theta), [theta])
        opt.step()
    with torch.no_grad():
        return {k: v.item() / start[k] for k, v in losses_of(theta).items()}, w


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("cagrad", "scales"),
        ("nash_mtl", "scales"),
        ("nash_mtl", "conflict"),
        ("famo", "conflict"),
        ("pcgrad", "conflict"),
    ],
)
def test_balancing_weightings_improve_the_worst_task(name: str, kind: str) -> None:
    equal, _ = train_toy("equal", kind)
    balanced, _ = train_toy(name, kind)
    assert max(balanced.values()) < 0.75 * max(equal.values()), (equal, balanced)


def test_gradnorm_lowers_the_weight_of_the_faster_task() -> None:
    equal, _ = train_toy("equal", "scales", steps=40)
    ratios, w = train_toy("gradnorm", "scales", steps=40, alpha=1.5)
    weights = w.task_weights()
    assert equal["a"] < 0.01 < equal["b"]  # task a trains much faster
    assert weights["a"] < 1.0 < weights["b"]
    assert sum(weights.values()) == pytest.approx(2.0)
    assert ratios["b"] < equal["b"]  # the slow task catches up: rates move toward each other


def test_uncertainty_learns_a_larger_variance_for_the_noisy_task() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y_clean = x @ torch.tensor([1.0, -1.0, 0.5, 0.0]) + 0.05 * torch.randn(256, generator=g)
    y_noisy = x @ torch.tensor([0.0, 1.0, 1.0, -0.5]) + 1.0 * torch.randn(256, generator=g)
    torch.manual_seed(0)
    shared = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU())
    heads = torch.nn.ModuleDict({"clean": torch.nn.Linear(16, 1), "noisy": torch.nn.Linear(16, 1)})
    w = build_weighting(
        WeightingConfig(name="uncertainty"), ["clean", "noisy"], kinds={"clean": "regression", "noisy": "regression"}
    )
    opt = torch.optim.Adam([*shared.parameters(), *heads.parameters(), *w.parameters()], lr=0.03)
    for _ in range(300):
        opt.zero_grad()
        h = shared(x)
        losses = {
            "clean": (heads["clean"](h).squeeze(1) - y_clean).square().mean(),
            "noisy": (heads["noisy"](h).squeeze(1) - y_noisy).square().mean(),
        }
        w.combine(losses).backward()
        opt.step()
    s_clean, s_noisy = w.log_vars.tolist()
    assert s_noisy > s_clean + 2.0
    # at the optimum exp(s) = L for the regression form; the noisy task's residual variance is ~1
    assert math.exp(s_noisy) == pytest.approx(losses["noisy"].item(), rel=0.3)
    assert w.task_weights()["clean"] > w.task_weights()["noisy"]


def test_uncertainty_uses_the_classification_form_for_class_tasks() -> None:
    specs = [TaskSpec(name="c", kind=TaskKind.BINARY, classes=["0", "1"]), TaskSpec(name="r", kind=TaskKind.REGRESSION)]
    w = build_weighting(WeightingConfig(name="uncertainty"), specs)
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([math.log(2.0), math.log(2.0)]))
    total = w.combine({"c": torch.tensor(1.0, requires_grad=True), "r": torch.tensor(1.0, requires_grad=True)})
    # classification: L / sigma^2 + log sigma ; regression: L / (2 sigma^2) + log sigma
    assert total.item() == pytest.approx(0.5 + 0.5 * math.log(2) + 0.25 + 0.5 * math.log(2))


def test_dwa_weights_follow_loss_ratios() -> None:
    w = weighting("dwa", temperature=2.0)
    losses = {"a": torch.tensor(1.0, requires_grad=True), "b": torch.tensor(1.0, requires_grad=True)}
    assert w.task_weights() == {"a": 1.0, "b": 1.0}
    w.on_epoch_end({"a": 1.0, "b": 1.0})
    assert w.task_weights() == {"a": 1.0, "b": 1.0}  # two epochs of history needed
    w.on_epoch_end({"a": 0.5, "b": 1.0})  # a halved, b stalled -> b gets more weight
    expected_b = 2 * math.exp(1.0 / 2) / (math.exp(0.5 / 2) + math.exp(1.0 / 2))
    assert w.task_weights()["b"] == pytest.approx(expected_b)
    assert sum(w.task_weights().values()) == pytest.approx(2.0)
    assert w.combine(losses).item() == pytest.approx(2.0)
    # the epoch means can also come from combine() itself (labelled batches only)
    w = weighting("dwa")
    for epoch in ([(0.5, 1.0)], [(0.4, 0.1), (0.6, 0.1)]):
        for a, b in epoch:
            w.combine({"a": torch.tensor(a, requires_grad=True), "b": torch.tensor(b, requires_grad=True)})
        w.combine(
            {"a": torch.tensor(9.0, requires_grad=True), "b": torch.tensor(9.0)}, StepInfo(n_labelled={"a": 0, "b": 0})
        )
        w.on_epoch_end()
    assert torch.allclose(w.history, torch.tensor([[0.5, 1.0], [0.5, 0.1]]))
    assert w.task_weights()["a"] > w.task_weights()["b"]  # a stalled (0.5 -> 0.5) while b fell tenfold


def test_static_uses_the_given_weights() -> None:
    tasks = [TaskConfig(name="a", weight=2.0), TaskConfig(name="b", weight=0.5)]
    w = build_weighting(WeightingConfig(name="static"), tasks)
    losses = {"a": torch.tensor(3.0), "b": torch.tensor(4.0)}
    assert w.combine(losses).item() == pytest.approx(2.0 * 3 + 0.5 * 4)
    w = build_weighting(WeightingConfig(name="static", params={"weights": {"b": 1.5}}), tasks)
    assert w.combine(losses).item() == pytest.approx(2.0 * 3 + 1.5 * 4)
    with pytest.raises(ConfigError, match=r"weighting\.params\.weights\.c: not a task"):
        build_weighting(WeightingConfig(name="static", params={"weights": {"c": 1.0}}), tasks)


@pytest.mark.parametrize("name", ALL)
def test_a_task_without_labels_contributes_nothing(name: str) -> None:
    """Three tasks, one with no labels in the batch (real masked losses): finite gradients, none from it."""
    torch.manual_seed(0)
    shared = torch.nn.Linear(3, 4)
    heads = torch.nn.ModuleDict({t: torch.nn.Linear(4, 1) for t in ("a", "b", "c")})
    specs = {t: TaskSpec(name=t, kind=TaskKind.REGRESSION) for t in ("a", "b", "c")}
    x = torch.randn(6, 3)
    labels = {"y_a": torch.randn(6), "y_b": torch.full((6,), float("nan")), "y_c": -torch.randn(6)}
    w = weighting(name, tasks=("a", "b", "c"))
    info = StepInfo(n_labelled={"a": 6, "b": 0, "c": 6})
    for _ in range(3):  # several steps: stateful weightings (dwa, famo, gradnorm, nash) update in between
        shared.zero_grad()
        heads.zero_grad()
        h = shared(x)
        losses = {t: task_loss(specs[t], heads[t](h).squeeze(1), labels) for t in specs}
        assert losses["b"].item() == 0.0
        step(w, losses, list(shared.parameters()), info)
        w.on_epoch_end()
    grads = [p.grad for p in shared.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in heads["b"].parameters())
    assert all(math.isfinite(v) for v in w.task_weights().values())
    if name == "uncertainty":
        assert w.log_vars.grad[1] == 0  # absence does not push the variance of b
    # with only one labelled task left, the shared update is exactly that task's gradient direction
    shared.zero_grad()
    h = shared(x)
    losses = {t: task_loss(specs[t], heads[t](h).squeeze(1), labels) for t in specs}
    only_a = StepInfo(n_labelled={"a": 6, "b": 0, "c": 0})
    losses["c"] = losses["c"] * 0.0
    reference = torch.autograd.grad(losses["a"], shared.weight, retain_graph=True)[0]
    step(w, losses, list(shared.parameters()), only_a)
    cosine = torch.nn.functional.cosine_similarity(shared.weight.grad.flatten(), reference.flatten(), dim=0)
    assert cosine.item() == pytest.approx(1.0, abs=1e-5)


def test_params_are_checked_against_the_signature() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown parameter 'alpah' at weighting\.params\.alpah; 'gradnorm' accepts: alpha, lr"
    ):
        weighting("gradnorm", alpah=1.0)
    with pytest.raises(ConfigError, match=r"^weighting\.params\.alpha: .*valid number"):
        weighting("gradnorm", alpha="high")
    with pytest.raises(ConfigError, match=r"weighting\.params: temperature must be > 0"):
        weighting("dwa", temperature=0.0)
    with pytest.raises(
        UnknownComponentError, match=r"unknown weighting 'mgd' at weighting\.name; did you mean 'mgda'\? known: aligned"
    ):
        weighting("mgd")
    assert weighting("cagrad", c=0.25).c == 0.25


def test_gradient_weighting_under_lightning_manual_optimization() -> None:
    import pytorch_lightning as pl
    from mmtune.config.run import ModelConfig
    from mmtune.data.format import ImageInfo
    from mmtune.losses import task_losses
    from mmtune.models import build_model

    specs = [
        TaskSpec(name="covid", kind=TaskKind.BINARY, classes=["n", "p"]),
        TaskSpec(name="severity", kind=TaskKind.REGRESSION),
    ]
    image = ImageInfo(dtype="float32", shape=[4, 32, 32], layout="stack2d")
    g = torch.Generator().manual_seed(0)
    samples = [
        {
            "image": torch.rand(4, 32, 32, generator=g),
            "clinical": torch.randn(6, generator=g),
            "clinical_missing": torch.zeros(6),
            "y_covid": torch.tensor(float("nan") if i % 4 == 2 else float(i % 2)),
            "y_severity": torch.randn((), generator=g),
        }
        for i in range(12)
    ]
    loader = torch.utils.data.DataLoader(samples, batch_size=4)

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.model = build_model(ModelConfig(), image, 6, specs)
            self.weighting = build_weighting(WeightingConfig(name="pcgrad"), [s.name for s in specs], self.model)
            self.seen: list[float] = []

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            opt.zero_grad()
            losses, counts = task_losses(specs, self.model(batch), batch)
            total = self.weighting.backward(
                losses, self.model.shared_parameters(), self.manual_backward, step_info=StepInfo(n_labelled=counts)
            )
            opt.step()
            self.seen.append(total.item())

        def configure_optimizers(self):
            return torch.optim.SGD([*self.model.parameters(), *self.weighting.parameters()], lr=0.01)

        def train_dataloader(self):
            return loader

    module = Module()
    before = [p.detach().clone() for p in module.model.shared_parameters()]
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module)
    assert len(module.seen) == 3 and all(math.isfinite(v) for v in module.seen)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, module.model.shared_parameters()))


def _ddp_worker(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        net = _ddp_net()
        ddp = DistributedDataParallel(net)
        x, ya, yb = _ddp_data(rank)
        ha, hb = ddp(x)
        losses = {"a": (ha - ya).square().mean(), "b": (hb - yb).square().mean()}
        w = build_weighting(WeightingConfig(name="pcgrad"), ["a", "b"])
        w.backward(losses, list(net.shared.parameters()), lambda loss: loss.backward())
        torch.save({n: p.grad for n, p in net.named_parameters()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


class _DDPNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = torch.nn.Linear(3, 4)
        self.a = torch.nn.Linear(4, 1)
        self.b = torch.nn.Linear(4, 1)

    def forward(self, x):
        h = torch.tanh(self.shared(x))
        return self.a(h).squeeze(1), self.b(h).squeeze(1)


def _ddp_net() -> _DDPNet:
    return _DDPNet()


def _ddp_data(rank: int):
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(8, 3, generator=g)
    return x, x[:, 0] * 3 + rank, -x[:, 0] * 2 - 3 * rank  # ranks see different, conflicting data


@pytest.mark.slow
def test_pcgrad_under_ddp_gives_every_rank_the_global_projection(tmp_path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    grads = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name
    # reference in one process: PCGrad on the rank-averaged per-task gradients (= gradient of the averaged loss)
    torch.manual_seed(0)
    net = _ddp_net()
    data = [_ddp_data(r) for r in range(2)]
    outputs = [net(x) for x, _, _ in data]
    losses = {
        "a": sum((o[0] - d[1]).square().mean() for o, d in zip(outputs, data)) / 2,
        "b": sum((o[1] - d[2]).square().mean() for o, d in zip(outputs, data)) / 2,
    }
    build_weighting(WeightingConfig(name="pcgrad"), ["a", "b"]).backward(losses, list(net.shared.parameters()))
    for name, p in net.named_parameters():
        assert torch.allclose(grads[0][name], p.grad, atol=1e-5), name
