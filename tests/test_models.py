"""Model zoo: every backbone x fusion x task kind builds, runs forward/backward at tiny sizes, and honours the
contract (output shapes, all parameters used, parameter groups, missing modalities, local-only weights)."""

from __future__ import annotations

import socket

import pytest
import torch
from mmtune.config.run import ModelConfig
from mmtune.data.format import ImageInfo
from mmtune.errors import ConfigError, UnknownComponentError
from mmtune.models import BACKBONES, FUSIONS, HEADS, build_model
from mmtune.tasks import TaskKind, TaskSpec

B, K, HW, F, D3 = 4, 4, 32, 6, 16
SMALL = {"small_cnn", "small_cnn3d"}
ALL_TASKS = [
    TaskSpec(name="covid", kind=TaskKind.BINARY, classes=["negative", "positive"]),
    TaskSpec(name="morbidity", kind=TaskKind.MULTICLASS, classes=["mild", "regular", "severe"]),
    TaskSpec(name="findings", kind=TaskKind.MULTILABEL, classes=["ggo", "consolidation"]),
    TaskSpec(name="severity", kind=TaskKind.REGRESSION),
    TaskSpec(name="lesion_seg", kind=TaskKind.SEGMENTATION, classes=["background", "lesion"]),
    TaskSpec(name="recon", kind=TaskKind.RECONSTRUCTION),
]
VECTOR_TASKS = [t for t in ALL_TASKS if t.kind not in (TaskKind.SEGMENTATION, TaskKind.RECONSTRUCTION)]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors on 2 shared cores: one intra-op thread is ~10x faster than two threads fighting for them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def image_info(layout: str) -> ImageInfo:
    shape = [K, HW, HW] if layout == "stack2d" else [D3, D3, D3]
    return ImageInfo(dtype="float32", shape=shape, layout=layout)


def make_batch(layout: str, n_clinical: int = F, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(B, K, HW, HW, generator=g) if layout == "stack2d" else torch.rand(B, 1, D3, D3, D3, generator=g)
    missing = (torch.rand(B, n_clinical, generator=g) < 0.2).float()
    return {
        "image": image,
        "mask": (torch.rand(image.shape, generator=g) > 0.7).float(),
        "has_mask": torch.tensor([True, False, True, True]),
        "clinical": torch.randn(B, n_clinical, generator=g) * (1 - missing),
        "clinical_missing": missing,
    }


def expected_shape(task: TaskSpec, image: torch.Tensor) -> tuple[int, ...]:
    if task.kind in (TaskKind.BINARY, TaskKind.REGRESSION):
        return (B,)
    if task.kind in (TaskKind.MULTICLASS, TaskKind.MULTILABEL):
        return (B, len(task.classes))
    return tuple(image.shape)  # segmentation (one foreground class) and reconstruction: like mask / image


def config(backbone: str = "small_cnn", fusion: str = "concat", mode: str = "channels", **fusion_extra) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "backbone": {"name": backbone, "mode": mode},
            "fusion": {"name": fusion, "dim": 32, **fusion_extra},
            "clinical_encoder": {"hidden": 16},
            "head": {"decoder_width": 8},
        }
    )


def forward_backward(model, batch: dict, tasks: list[TaskSpec]) -> dict[str, torch.Tensor]:
    outputs = model(batch)
    assert list(outputs) == [t.name for t in tasks]
    for task in tasks:
        assert tuple(outputs[task.name].shape) == expected_shape(task, batch["image"]), task.name
        assert torch.isfinite(outputs[task.name]).all()
    sum(o.float().square().mean() for o in outputs.values()).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters without gradient (would break DDP): {unused[:5]}"
    return outputs


def tasks_for(fusion: str) -> list[TaskSpec]:
    return VECTOR_TASKS if fusion == "clinical_only" else ALL_TASKS


@pytest.mark.parametrize("mode", ["channels", "mil"])
@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_small_cnn_every_fusion_every_task_kind(fusion: str, mode: str) -> None:
    torch.manual_seed(0)
    tasks = tasks_for(fusion)
    model = build_model(config("small_cnn", fusion, mode), image_info("stack2d"), F, tasks)
    forward_backward(model, make_batch("stack2d"), tasks)


@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_small_cnn3d_every_fusion_every_task_kind(fusion: str) -> None:
    torch.manual_seed(0)
    tasks = tasks_for(fusion)
    model = build_model(config("small_cnn3d", fusion), image_info("volume3d"), F, tasks)
    outputs = forward_backward(model, make_batch("volume3d"), tasks)
    if "lesion_seg" in outputs:
        assert outputs["lesion_seg"].shape == (B, 1, D3, D3, D3)


HEAVY_3D = {"densenet3d_121", "resnet3d_34"}


@pytest.mark.parametrize(
    "backbone",
    [
        pytest.param(name, marks=[pytest.mark.slow] if name in HEAVY_3D else [])
        for name in BACKBONES.names()
        if name not in SMALL
    ],
)
def test_large_backbone_with_concat_and_a_decoder(backbone: str) -> None:
    """Big backbones get one fusion (concat) with a vector and a dense head, at the tiny size."""
    torch.manual_seed(0)
    layout = "stack2d" if BACKBONES.entry(backbone).tags["dims"] == 2 else "volume3d"
    tasks = [ALL_TASKS[0], ALL_TASKS[4]]
    model = build_model(config(backbone, "concat"), image_info(layout), F, tasks)
    forward_backward(model, make_batch(layout), tasks)


def test_registered_names_cover_the_required_components() -> None:
    required_backbones = {"resnet18", "resnet50", "densenet121", "efficientnet_b0", "convnext_tiny", "small_cnn"}
    assert required_backbones | {"resnet3d_10", "resnet3d_18", "densenet3d_121", "small_cnn3d"} <= set(
        BACKBONES.names()
    )
    assert set(FUSIONS.names()) == {
        *("image_only", "clinical_only", "concat", "late", "gated", "film", "cross_attention"),
        *("tensor", "lmf", "mfb", "early", "daft", "hemis"),
    }
    assert set(HEADS.names()) == {k.value for k in TaskKind}
    assert {BACKBONES.entry(n).tags["dims"] for n in BACKBONES.names()} == {2, 3}


def test_dense_tasks_only_build_no_fusion_weights() -> None:
    tasks = ALL_TASKS[4:]
    model = build_model(config(fusion="cross_attention"), image_info("stack2d"), F, tasks)
    assert model.clinical_encoder is None and not list(model.fusion.parameters())
    forward_backward(model, make_batch("stack2d"), tasks)  # every parameter still gets a gradient


def test_multiclass_segmentation_has_a_class_axis() -> None:
    seg = TaskSpec(name="lung_lesion", kind=TaskKind.SEGMENTATION, classes=["background", "lung", "lesion"])
    for mode in ("channels", "mil"):
        model = build_model(config(mode=mode, fusion="image_only"), image_info("stack2d"), F, [seg])
        assert model(make_batch("stack2d"))["lung_lesion"].shape == (B, 2, K, HW, HW)


def test_parameter_groups_split_shared_from_task_specific() -> None:
    tasks = [ALL_TASKS[0], ALL_TASKS[3], ALL_TASKS[4]]
    model = build_model(config(fusion="late"), image_info("stack2d"), F, tasks)
    shared = {id(p) for p in model.shared_parameters()}
    own = {t.name: {id(p) for p in model.task_parameters(t.name)} for t in tasks}
    assert all(own.values()) and shared
    assert not shared & set().union(*own.values())
    assert not own["covid"] & own["severity"]
    assert shared | set().union(*own.values()) == {id(p) for p in model.parameters()}
    # a task's loss reaches its own parameters and the shared ones, never another task's
    model(make_batch("stack2d"))["covid"].sum().backward()
    touched = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert touched & own["covid"] and touched & shared
    assert not touched & (own["severity"] | own["lesion_seg"])
    assert model.last_shared_parameters() and {id(p) for p in model.last_shared_parameters()} <= shared
    with pytest.raises(KeyError, match="unknown task"):
        model.task_parameters("nope")


def test_dropping_clinical_equals_all_features_missing() -> None:
    torch.manual_seed(0)
    model = build_model(config(fusion="concat"), image_info("stack2d"), F, VECTOR_TASKS).eval()
    batch = make_batch("stack2d")
    blank = {**batch, "clinical": torch.zeros(B, F), "clinical_missing": torch.ones(B, F)}
    with torch.no_grad():
        full, dropped, by_hand = model(batch), model(batch, drop_modality="clinical"), model(blank)
        flagged = model({**batch, "drop_modality": "clinical"})
    assert torch.allclose(dropped["covid"], by_hand["covid"])
    assert torch.allclose(flagged["covid"], dropped["covid"])
    assert not torch.allclose(full["covid"], dropped["covid"])


def test_late_fusion_without_image_uses_the_clinical_heads_only() -> None:
    torch.manual_seed(0)
    model = build_model(config(fusion="late"), image_info("stack2d"), F, VECTOR_TASKS).eval()
    batch = make_batch("stack2d")
    with torch.no_grad():
        branches = model.forward_features(batch)
        clinical_logit = model.heads["clinical"]["covid"](branches["clinical"])
        image_logit = model.heads["image"]["covid"](branches["image"])
        full = model(batch)["covid"]
        no_image = model(batch, drop_modality="image")["covid"]
    assert set(branches) == {"image", "clinical"}
    assert torch.allclose(full, (clinical_logit + image_logit) / 2, atol=1e-6)  # learned mix starts at 1/2
    assert torch.allclose(no_image, clinical_logit, atol=1e-6)


def test_modality_dropout_blanks_one_modality_per_sample_in_training_only() -> None:
    torch.manual_seed(0)
    model = build_model(config(fusion="gated", modality_dropout=0.95), image_info("stack2d"), F, VECTOR_TASKS)
    batch = make_batch("stack2d")
    model.train()
    model(batch)
    gate = model.fusion.last_gate  # 1 = image only (clinical dropped), 0 = clinical only (image dropped)
    forced = ((gate == 1).all(dim=1) | (gate == 0).all(dim=1)).sum()
    assert forced >= 2
    model.eval()
    model(batch)
    assert not ((model.fusion.last_gate == 1).all(dim=1) | (model.fusion.last_gate == 0).all(dim=1)).any()


def test_mil_pools_slices_with_attention() -> None:
    model = build_model(config(mode="mil", fusion="image_only"), image_info("stack2d"), F, VECTOR_TASKS[:1])
    model(make_batch("stack2d"))
    attention = model.image_encoder.mil.last_attention
    assert attention.shape == (B, K)
    assert torch.allclose(attention.sum(dim=1), torch.ones(B))


def test_film_starts_as_identity_and_cross_attention_attends_over_slices() -> None:
    torch.manual_seed(0)
    film = build_model(config(fusion="film"), image_info("stack2d"), F, VECTOR_TASKS[:1])
    assert film.fusion.daft is False and torch.count_nonzero(film.fusion.film[-1].weight) == 0
    assert build_model(config("small_cnn3d", "film"), image_info("volume3d"), F, VECTOR_TASKS[:1]).fusion.daft
    attn = build_model(config(mode="mil", fusion="cross_attention"), image_info("stack2d"), F, VECTOR_TASKS[:1])
    attn(make_batch("stack2d"))
    # F clinical query tokens over K slices x (2x2 bottleneck positions) image tokens
    assert attn.fusion.last_attention.shape == (B, F, K * 2 * 2)


def test_build_rejects_impossible_combinations() -> None:
    with pytest.raises(ConfigError, match=r"model\.fusion\.name: 'film' needs clinical features"):
        build_model(config(fusion="film"), image_info("stack2d"), 0, VECTOR_TASKS)
    with pytest.raises(ConfigError, match=r"model\.backbone\.name: 'resnet3d_10' is a 3D backbone"):
        build_model(config("resnet3d_10", "image_only"), image_info("stack2d"), F, VECTOR_TASKS)
    with pytest.raises(ConfigError, match=r"model\.backbone\.name: 'small_cnn' is a 2D backbone"):
        build_model(config("small_cnn", "image_only"), image_info("volume3d"), F, VECTOR_TASKS)
    with pytest.raises(ConfigError, match=r"model\.backbone\.mode: 'mil'"):
        build_model(config("small_cnn3d", "image_only", mode="mil"), image_info("volume3d"), F, VECTOR_TASKS)
    with pytest.raises(ConfigError, match="builds no image encoder"):
        build_model(config(fusion="clinical_only"), image_info("stack2d"), F, ALL_TASKS)
    with pytest.raises(ConfigError, match=r"model\.fusion\.params\.heads.*accepts: combine, dropout"):
        build_model(config(fusion="late", params={"heads": 2}), image_info("stack2d"), F, VECTOR_TASKS)
    with pytest.raises(ConfigError, match=r"model\.fusion\.params: token_dim 10 is not divisible by heads 4"):
        build_model(config(fusion="cross_attention", params={"token_dim": 10}), image_info("stack2d"), F, VECTOR_TASKS)
    with pytest.raises(
        UnknownComponentError, match=r"unknown fusion 'fancy' at model\.fusion\.name; known: clinical_only"
    ):
        build_model(config(fusion="fancy"), image_info("stack2d"), F, VECTOR_TASKS)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test (nothing may download weights)."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_pretrained_loads_a_local_state_dict_and_never_downloads(tmp_path, no_network) -> None:
    import timm

    source = timm.create_model("resnet18", pretrained=False, in_chans=3, num_classes=0)  # ImageNet-shaped weights
    torch.nn.init.normal_(source.layer1[0].conv1.weight)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)

    cfg = ModelConfig.model_validate({"backbone": {"name": "resnet18", "pretrained": str(path)}})
    model = build_model(cfg, image_info("stack2d"), F, VECTOR_TASKS[:1])
    net = model.image_encoder.backbone.net
    assert torch.equal(net.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    # 3 trained input channels repeated onto 4 slices and rescaled by 3/4 (timm's rule)
    expected = torch.cat([source.conv1.weight, source.conv1.weight[:, :1]], dim=1) * 0.75
    assert torch.allclose(net.conv1.weight, expected)
    report = model.image_encoder.pretrained_report
    assert (report.missing, report.unexpected, report.adapted, report.skipped) == (0, 0, 1, 0)
    assert report.loaded == len(source.state_dict())

    mil = ModelConfig.model_validate({"backbone": {"name": "resnet18", "mode": "mil", "pretrained": str(path)}})
    mil_model = build_model(mil, image_info("stack2d"), F, VECTOR_TASKS[:1])
    assert torch.allclose(
        mil_model.image_encoder.backbone.net.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True)
    )


def test_pretrained_errors_name_the_key(tmp_path, no_network) -> None:
    cfg = ModelConfig.model_validate({"backbone": {"name": "small_cnn", "pretrained": str(tmp_path / "nope.pt")}})
    with pytest.raises(ConfigError, match=r"^model\.backbone\.pretrained: weights file not found"):
        build_model(cfg, image_info("stack2d"), F, VECTOR_TASKS[:1])
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    cfg = ModelConfig.model_validate({"backbone": {"name": "small_cnn", "pretrained": str(junk)}})
    with pytest.raises(ConfigError, match=r"^model\.backbone\.pretrained: .*weights_only=True"):
        build_model(cfg, image_info("stack2d"), F, VECTOR_TASKS[:1])
    other = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    cfg = ModelConfig.model_validate({"backbone": {"name": "small_cnn", "pretrained": str(other)}})
    with pytest.raises(ConfigError, match=r"no tensor in .* matches"):
        build_model(cfg, image_info("stack2d"), F, VECTOR_TASKS[:1])


def test_unet_encoder_keeps_absolute_intensity_with_batch_norm_not_instance_norm():
    """Why batch norm is the default: with instance norm two patients whose scans differ only in intensity
    (x and 2x + 1) get nearly the same pooled bottleneck, so findings defined by density (consolidation vs ground
    glass) cannot be learnt; batch norm keeps them apart."""
    from mmtune.models.unet import unet_encoder

    torch.manual_seed(0)
    x = torch.rand(3, 4, 32, 32)
    change = {}
    for norm in ("batch", "instance"):
        encoder = unet_encoder(4, width=4, depth=4, norm=norm).train()  # batch statistics, as in training
        with torch.no_grad():
            pooled = encoder.pool(encoder.features(torch.cat([x, 2 * x + 1]))[-1])
        change[norm] = float((pooled[:3] - pooled[3:]).norm() / pooled[:3].norm())
    assert change["instance"] < 0.2  # only zero padding at the borders breaks the invariance
    assert change["batch"] > 0.5


def test_unet_encoder_rejects_an_unknown_norm():
    from mmtune.models.unet import unet_encoder

    with pytest.raises(ValueError, match="batch, instance"):
        unet_encoder(1, norm="layer")
