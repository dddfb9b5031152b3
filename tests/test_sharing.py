"""``model.sharing``: hard sharing, MMoE, CGC and cross-stitch on the fused vector, with every fusion; outputs
checked against the written-out formulas, parameter groups, and bad input refused before training."""

from __future__ import annotations

import pytest
import torch
from mmtune.config.loading import validate
from mmtune.config.run import ModelConfig, RunConfig
from mmtune.data.format import ImageInfo
from mmtune.errors import ConfigError, UnknownComponentError
from mmtune.models import FUSIONS, build_model
from mmtune.models.registries import SHARINGS
from mmtune.tasks import TaskKind, TaskSpec

TASKS = [
    TaskSpec(name="covid", kind=TaskKind.BINARY, classes=["n", "p"]),
    TaskSpec(name="severity", kind=TaskKind.REGRESSION),
]
IMAGE = ImageInfo(dtype="float32", shape=[4, 32, 32], layout="stack2d")


def model(sharing: str, fusion: str = "concat", tasks=TASKS, **params):
    cfg = ModelConfig.model_validate(
        {
            "backbone": {"name": "small_cnn", "params": {"width": 8}},
            "fusion": {"name": fusion, "dim": 8},
            "clinical_encoder": {"hidden": 8},
            "sharing": sharing,
            "sharing_params": params,
        }
    )
    return build_model(cfg, IMAGE, 3, tasks)


def batch(b: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(b, 4, 32, 32, generator=g),
        "clinical": torch.randn(b, 3, generator=g),
        "clinical_missing": torch.zeros(b, 3),
    }


def test_the_four_sharings_are_registered() -> None:
    assert set(SHARINGS.names()) == {"hard", "mmoe", "cgc", "cross_stitch"}
    assert model("hard").sharing is None  # hard sharing builds nothing: the model is the one it always was


@pytest.mark.parametrize("sharing", ["mmoe", "cgc", "cross_stitch"])
@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_every_sharing_with_every_fusion(sharing: str, fusion: str) -> None:
    torch.manual_seed(0)
    net = model(sharing, fusion)
    outputs = net(batch())
    assert outputs["covid"].shape == (3,) and outputs["severity"].shape == (3,)
    sum(o.sum() for o in outputs.values()).backward()
    assert not [n for n, p in net.named_parameters() if p.grad is None]  # DDP needs every parameter used
    shared = {id(p) for p in net.shared_parameters()}
    own = {t.name: {id(p) for p in net.task_parameters(t.name)} for t in TASKS}
    assert not shared & (own["covid"] | own["severity"]) and not own["covid"] & own["severity"]
    assert shared | own["covid"] | own["severity"] == {id(p) for p in net.parameters()}


def test_mmoe_mixes_shared_experts_with_a_softmax_gate_per_task() -> None:
    torch.manual_seed(0)
    net = model("mmoe", experts=3).eval()
    data = batch()
    with torch.no_grad():
        fused = net.forward_features(data)["fused"]
        moe = net.sharing["fused"]
        experts = torch.stack([e(fused) for e in moe.shared], dim=1)
        for task in ("covid", "severity"):
            gate = torch.softmax(moe.gates[task](fused), dim=1)
            expected = net.heads["fused"][task](torch.einsum("be,bew->bw", gate, experts))
            assert torch.allclose(net(data)[task], expected, atol=1e-6)


def test_cgc_gives_each_task_its_own_experts_reached_by_no_other_task() -> None:
    torch.manual_seed(0)
    net = model("cgc", shared_experts=1, task_experts=2)
    net(batch())["covid"].sum().backward()
    cgc = net.sharing["fused"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cgc.own["covid"].parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in cgc.own["severity"].parameters())
    assert {id(p) for p in cgc.own["severity"].parameters()} <= {id(p) for p in net.task_parameters("severity")}


def test_cross_stitch_mixes_the_task_columns() -> None:
    torch.manual_seed(0)
    net = model("cross_stitch", layers=1, self_weight=0.8).eval()
    stitch = net.sharing["fused"]
    assert torch.allclose(stitch.stitches[0].detach(), torch.tensor([[0.8, 0.2], [0.2, 0.8]]))
    with torch.no_grad():
        fused = net.forward_features(batch())["fused"]
        columns = [column(fused) for column in stitch.columns[0]]
        mixed = stitch(fused)
    assert torch.allclose(mixed["covid"], 0.8 * columns[0] + 0.2 * columns[1], atol=1e-6)
    assert torch.allclose(mixed["severity"], 0.2 * columns[0] + 0.8 * columns[1], atol=1e-6)


def test_bad_sharings_are_refused_in_one_line() -> None:
    from mmtune.validation import check_run_config

    def run(**model_section) -> RunConfig:
        return validate(RunConfig, {"data": {"path": "p"}, "tasks": ["covid", "severity"], "model": model_section}, "r")

    with pytest.raises(UnknownComponentError, match=r"^unknown sharing 'mmo' at model\.sharing; did you mean 'mmoe'\?"):
        check_run_config(run(sharing="mmo"), quiet=True)
    with pytest.raises(ConfigError, match=r"^model\.sharing_params\.experts: .*valid integer"):
        check_run_config(run(sharing="mmoe", sharing_params={"experts": "many"}), quiet=True)
    with pytest.raises(
        ConfigError, match=r"^model\.sharing: 'cgc' shares the fused vector between tasks but the run has 1"
    ):
        model("cgc", tasks=TASKS[:1])
    assert check_run_config(run(sharing="cross_stitch", sharing_params={"layers": 2}), quiet=True) == []
