"""The fusions added for the zoo, each checked against its formula: tensor fusion's outer product, low-rank fusion
equal to a tensor fusion with the weight tensor rebuilt from its factors, MFB's pooling, early fusion's input
channels, DAFT's in-backbone modulation and HeMIS's mean / variance over present modalities; every fusion
survives the missing-modality pass."""

from __future__ import annotations

import pytest
import torch
from mmtune.cli.listing import _rows
from mmtune.config.run import ModelConfig
from mmtune.data.format import ImageInfo
from mmtune.models import FUSIONS, build_model
from mmtune.models.features import ClinicalFeatures, ImageFeatures
from mmtune.models.fusion import FusionDims
from mmtune.tasks import TaskKind, TaskSpec

TASKS = [TaskSpec(name="covid", kind=TaskKind.BINARY, classes=["n", "p"])]
IMAGE = ImageInfo(dtype="float32", shape=[4, 32, 32], layout="stack2d")
DIMS = FusionDims(image=6, clinical=5, n_clinical=3, channels=(8, 16), spatial_dims=2, out=4, tasks=("covid",))


def features(b: int = 3, image_present=None, clinical_present=None):
    g = torch.Generator().manual_seed(0)
    pooled = torch.randn(b, DIMS.image, generator=g)
    image = ImageFeatures([torch.randn(b, 16, 2, 2, generator=g)], pooled, 1, lambda x: x, torch.ones(b))
    if image_present is not None:
        image = image.masked(image_present)
    values = torch.randn(b, DIMS.n_clinical, generator=g)
    present = torch.ones(b) if clinical_present is None else clinical_present
    clinical = ClinicalFeatures(values, torch.zeros_like(values), torch.randn(b, DIMS.clinical, generator=g), present)
    return image, clinical


def model(fusion: str, **params) -> torch.nn.Module:
    cfg = ModelConfig.model_validate(
        {
            "backbone": {"name": "small_cnn", "params": {"width": 8}},
            "fusion": {"name": fusion, "dim": 8, "params": params},
        }
    )
    return build_model(cfg, IMAGE, 3, TASKS)


def batch(b: int = 3) -> dict:
    g = torch.Generator().manual_seed(1)
    return {
        "image": torch.rand(b, 4, 32, 32, generator=g),
        "clinical": torch.randn(b, 3, generator=g),
        "clinical_missing": torch.zeros(b, 3),
    }


def test_at_least_twelve_fusions_each_declaring_its_modalities_once() -> None:
    assert len(FUSIONS) >= 12
    for entry in FUSIONS:
        assert not {"needs_image", "needs_clinical"} & set(entry.tags), entry.name  # stated by the class only
        assert entry.factory.uses_image == ("image" in entry.factory.modalities)
    rows = {row[0]: row[1] for row in _rows("fusions")}
    assert rows["clinical_only"] == "modalities=clinical" and rows["early"] == "modalities=image/clinical"


def test_tensor_fusion_is_a_linear_map_of_the_outer_product() -> None:
    fusion = FUSIONS.get("tensor")(DIMS, proj=2).eval()
    image, clinical = features()
    zi = torch.cat([fusion.image_proj(image.pooled), torch.ones(3, 1)], 1)
    zc = torch.cat([fusion.clinical_proj(clinical.embedding), torch.ones(3, 1)], 1)
    outer = torch.stack([torch.outer(zi[i], zc[i]).flatten() for i in range(3)])
    assert torch.allclose(fusion(image, clinical)["fused"], fusion.out(outer), atol=1e-6)


def test_low_rank_fusion_equals_tensor_fusion_with_the_rebuilt_weight_tensor() -> None:
    fusion = FUSIONS.get("lmf")(DIMS, rank=3).eval()
    image, clinical = features()
    # W[i, c, o] = sum_r w_r Wi[r, i, o] Wc[r, c, o]: the full tensor-fusion weight the factors stand for
    weight = torch.einsum("r,rio,rco->ico", fusion.rank_weights[0], fusion.image_factor, fusion.clinical_factor)
    zi = torch.cat([image.pooled, torch.ones(3, 1)], 1)
    zc = torch.cat([clinical.embedding, torch.ones(3, 1)], 1)
    full = torch.einsum("bi,bc,ico->bo", zi, zc, weight) + fusion.bias
    assert torch.allclose(fusion(image, clinical)["fused"], torch.relu(full), atol=1e-5)


def test_mfb_sum_pools_factors_then_normalises() -> None:
    fusion = FUSIONS.get("mfb")(DIMS, factors=2, dropout=0.0).eval()
    image, clinical = features()
    joint = (fusion.image_proj(image.pooled) * fusion.clinical_proj(clinical.embedding)).view(3, DIMS.out, 2).sum(2)
    joint = torch.sign(joint) * torch.sqrt(joint.abs() + 1e-8)
    expected = joint / joint.norm(dim=1, keepdim=True)
    assert torch.allclose(fusion(image, clinical)["fused"], expected, atol=1e-6)


def test_early_fusion_feeds_clinical_values_as_input_channels() -> None:
    torch.manual_seed(0)
    net = model("early").eval()
    assert net.clinical_encoder is None
    first = net.image_encoder.backbone.stages[0][0].conv
    assert first.in_channels == 4 + 2 * 3  # slices + one value and one missing flag per feature
    seen = []
    first.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    data = batch()
    with torch.no_grad():
        net(data)
    planes = seen[0][:, 4:]
    assert torch.equal(planes[:, :3, 5, 7], data["clinical"]) and torch.equal(planes[:, 3:, 0, 0], torch.zeros(3, 3))
    with torch.no_grad():
        net(data, drop_modality="clinical")
    assert torch.equal(seen[1][:, 4:7], torch.zeros(3, 3, 32, 32)) and torch.equal(
        seen[1][:, 7:], torch.ones(3, 3, 32, 32)
    )


def test_daft_scales_and_shifts_a_stage_inside_the_backbone() -> None:
    torch.manual_seed(0)
    net = model("daft", level=-2).eval()
    torch.nn.init.normal_(net.fusion.film[-1].weight)
    stages = net.image_encoder.backbone.stages
    data = batch()
    with torch.no_grad():
        _, _, clinical = net.encode(data)
        plain = net.image_encoder.backbone.stages[0](net.image_encoder.fold(data["image"]))
        for stage in stages[1:-1]:
            plain = stage(plain)  # the stage DAFT conditions, without the hook's context
        scale, shift = net.fusion.film(torch.cat([plain.mean(dim=(2, 3)), clinical.embedding], 1)).chunk(2, 1)
        expected_last = stages[-1](plain * (1 + scale[:, :, None, None]) + shift[:, :, None, None])
        raw, _, _ = net.encode(data)
        assert torch.allclose(raw.maps[-1], expected_last, atol=1e-5)
        dropped, _, _ = net.encode(data, drop_modality="clinical")
        assert torch.allclose(dropped.maps[-1], stages[-1](plain), atol=1e-5)  # no clinical row: identity


def test_hemis_averages_only_the_modalities_present() -> None:
    fusion = FUSIONS.get("hemis")(DIMS, common=7).eval()
    image, clinical = features(clinical_present=torch.tensor([1.0, 0.0, 1.0]))
    out = fusion(image, clinical)["fused"]
    ei, ec = fusion.image_embed(image.pooled), fusion.clinical_embed(clinical.embedding)
    both_mean, both_var = (ei + ec) / 2, ((ei - ec) / 2).square()
    expected = torch.stack(
        [
            torch.cat([both_mean[0], both_var[0]]),
            torch.cat([ei[1], torch.zeros(7)]),  # clinical row missing: the image alone, variance 0
            torch.cat([both_mean[2], both_var[2]]),
        ]
    )
    assert torch.allclose(out, fusion.out(expected), atol=1e-6)


@pytest.mark.parametrize("name", [e.name for e in FUSIONS if e.factory.uses_image and e.factory.uses_clinical])
def test_every_two_modality_fusion_survives_the_missing_modality_pass(name: str) -> None:
    """The robustness pass (training.predictions.without_modality) runs for every fusion reading both
    modalities; each gives finite outputs that depend on the clinical values only when they are present."""
    torch.manual_seed(0)
    net = model(name).eval()
    data = batch()
    other = {**data, "clinical": data["clinical"] + 1.0}
    with torch.no_grad():
        full, changed = net(data)["covid"], net(other)["covid"]
        dropped, dropped_other = (
            net(data, drop_modality="clinical")["covid"],
            net(other, drop_modality="clinical")["covid"],
        )
    assert torch.isfinite(dropped).all()
    assert not torch.allclose(full, changed) or name == "daft"  # DAFT starts as the image-only network
    assert torch.equal(dropped, dropped_other)  # once removed, the clinical values have no say
