"""Any timm model (``timm:<name>``) and any MONAI network (``monai:<Class>``) as a backbone: built offline, every
parameter trained or frozen on purpose (DDP), params checked against the MONAI signature, local weights loaded,
unknown names refused in one line with close matches (exit 2 from the CLI, before training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from mmtune.config.run import ModelConfig
from mmtune.errors import ConfigError, UnknownComponentError
from mmtune.models import BACKBONES, build_model
from test_models import ALL_TASKS, F, forward_backward, image_info, make_batch, no_network  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
TINY_DENSENET = {"init_features": 8, "growth_rate": 4, "block_config": [1, 1, 1, 1]}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def model_config(name: str, params: dict | None = None, fusion: str = "concat", **backbone) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "backbone": {"name": name, "params": params or {}, **backbone},
            "fusion": {"name": fusion, "dim": 16},
            "clinical_encoder": {"hidden": 8},
            "head": {"decoder_width": 4},
        }
    )


def trained_or_frozen(model: torch.nn.Module) -> None:
    """After a backward pass every trainable parameter has a gradient (the frozen ones are the MONAI head)."""
    assert not [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


def test_timm_namespace_builds_any_timm_model_with_a_decoder() -> None:
    torch.manual_seed(0)
    tasks = [ALL_TASKS[0], ALL_TASKS[4]]  # binary + segmentation: the decoder reads every scale
    model = build_model(model_config("timm:convnext_nano", {"drop_path_rate": 0.1}), image_info("stack2d"), F, tasks)
    net = model.image_encoder.backbone.net
    assert type(net).__name__ == "ConvNeXt" and net.num_classes == 0
    forward_backward(model, make_batch("stack2d"), tasks)


@pytest.mark.parametrize(("layout", "fusion"), [("stack2d", "concat"), ("volume3d", "daft")])
def test_monai_namespace_passes_params_through_and_reads_every_scale(layout: str, fusion: str) -> None:
    torch.manual_seed(0)
    tasks = [ALL_TASKS[0], ALL_TASKS[4]]
    params = {**TINY_DENSENET, "dropout_prob": 0.1}
    model = build_model(model_config("monai:DenseNet121", params, fusion), image_info(layout), F, tasks)
    encoder = model.image_encoder.backbone
    net = encoder.net
    assert type(net).__name__ == "DenseNet121" and net.features.conv0.in_channels == (4 if layout == "stack2d" else 1)
    assert isinstance(net.features.conv0, torch.nn.Conv2d if layout == "stack2d" else torch.nn.Conv3d)
    # stem + 4 dense blocks: 5 scales, each half the previous; the bottleneck is the last map at the smallest size
    # (the ReLU after norm5, where MONAI's own head pools)
    assert len(encoder.channels) == 5 and encoder.taps[-1][0] == "class_layers.relu"
    assert encoder.frozen == sum(p.numel() for p in net.class_layers.out.parameters())  # the unused classifier
    model.train()
    outputs = model(make_batch(layout))
    sum(o.float().square().mean() for o in outputs.values()).backward()
    trained_or_frozen(model)


def test_monai_params_are_checked_against_the_class_signature() -> None:
    entry = BACKBONES.entry("monai:DenseNet121")
    from mmtune.registry import user_params, validate_params

    # DenseNet121's own arguments plus those it forwards to DenseNet; spatial_dims / channels are mmtune's
    assert {"growth_rate", "block_config", "dropout_prob", "bn_size"} <= set(user_params(entry.factory))
    assert not {"spatial_dims", "in_channels", "out_channels", "pretrained"} & set(user_params(entry.factory))
    with pytest.raises(ConfigError, match=r"^model\.backbone\.params\.dropout_prob: Input should be a valid number"):
        validate_params(entry, {"dropout_prob": "high"}, "model.backbone.params")
    with pytest.raises(ConfigError, match=r"unknown parameter 'growth_rat' at model\.backbone\.params\.growth_rat"):
        validate_params(entry, {"growth_rat": 4}, "model.backbone.params")
    with pytest.raises(
        ConfigError,
        match=r"^model\.backbone\.params: MONAI DenseNet121\(act='no_such_act'\) cannot be built: Unsupported option",
    ):
        build_model(model_config("monai:DenseNet121", {"act": "no_such_act"}), image_info("stack2d"), F, ALL_TASKS[:1])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "timm:convnxt_nano",
            "unknown timm model 'convnxt_nano' at model.backbone.name; did you mean 'timm:convnext_nano'",
        ),
        (
            "monai:DenseNet12",
            "unknown monai model 'DenseNet12' at model.backbone.name; did you mean 'monai:DenseNet121'",
        ),
        ("resnet19", "unknown backbone 'resnet19' at model.backbone.name; did you mean 'resnet18'"),
    ],
)
def test_unknown_names_get_close_matches(name: str, message: str) -> None:
    with pytest.raises(UnknownComponentError) as info:
        BACKBONES.entry(name, "model.backbone.name")
    assert str(info.value).startswith(message)
    if ":" not in name:
        assert str(info.value).endswith(
            "or timm:<name> (timm.list_models()); or monai:<name> (monai.networks.nets classes taking spatial_dims)"
        )


@pytest.mark.usefixtures("no_network")
def test_local_weights_load_into_a_timm_namespace_backbone(tmp_path: Path) -> None:
    import timm

    source = timm.create_model("resnet10t", pretrained=False, in_chans=4, num_classes=0)
    torch.nn.init.normal_(source.layer1[0].conv1.weight)
    path = tmp_path / "resnet10t.pth"
    torch.save(source.state_dict(), path)
    model = build_model(model_config("timm:resnet10t", pretrained=str(path)), image_info("stack2d"), F, ALL_TASKS[:1])
    assert torch.equal(model.image_encoder.backbone.net.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert model.image_encoder.pretrained_report.missing == 0


def test_cli_refuses_an_unknown_namespaced_backbone_in_one_line(prepared_synthetic: Path, tmp_path: Path) -> None:
    import subprocess

    mmtune = str(Path(sys.executable).with_name("mmtune"))
    args = [mmtune, "train", str(REPO / "configs" / "multitask.yaml"), "--set", f"data.path={prepared_synthetic}"]
    result = subprocess.run(
        [*args, "--set", "model.backbone.name=timm:convnxt_nano", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    err = result.stderr.strip()
    assert "\n" not in err and "did you mean 'timm:convnext_nano'" in err, err
    assert not (tmp_path / "run").exists()
