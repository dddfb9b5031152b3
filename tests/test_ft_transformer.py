"""The FT-Transformer clinical encoder (rtdl_revisiting_models): builds inside a model with every parameter
used, reads missing flags as tokens, learns a feature interaction an additive model cannot, and its params are
checked in one line."""

from __future__ import annotations

import pytest
import torch
from mmtune.config.run import ModelConfig
from mmtune.errors import ConfigError
from mmtune.models import CLINICAL_ENCODERS, build_model
from mmtune.models.multitask import clinical_encoder_kwargs
from test_models import VECTOR_TASKS, F, forward_backward, image_info, make_batch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def encoder(n_features: int = 4, **params):
    cfg = ModelConfig.model_validate(
        {"clinical_encoder": {"name": "ft_transformer", "hidden": 16, "depth": 1, "dropout": 0.0, "params": params}}
    )
    return CLINICAL_ENCODERS.get("ft_transformer")(n_features, **clinical_encoder_kwargs(cfg.clinical_encoder))


@pytest.mark.parametrize("fusion", ["concat", "clinical_only"])
def test_ft_transformer_in_a_model_uses_every_parameter(fusion: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig.model_validate(
        {
            "fusion": {"name": fusion, "dim": 16},
            "clinical_encoder": {"name": "ft_transformer", "hidden": 16, "depth": 2, "params": {"heads": 4}},
        }
    )
    model = build_model(cfg, image_info("stack2d"), F, VECTOR_TASKS)
    assert type(model.clinical_encoder.net).__name__ == "FTTransformer"
    assert model.clinical_encoder.net.backbone.blocks[0]["attention"]._n_heads == 4
    forward_backward(model, make_batch("stack2d"), VECTOR_TASKS)


def test_missing_flags_are_tokens() -> None:
    torch.manual_seed(0)
    values = torch.zeros(2, 4)  # a missing value is stored as 0, the training mean
    missing = torch.tensor([[0.0, 0, 0, 0], [1.0, 0, 0, 0]])
    with_flags = encoder().eval()
    out = with_flags(values, missing)
    assert not torch.allclose(out[0], out[1], atol=1e-4)  # measured-at-the-mean differs from not measured
    cfg = ModelConfig.model_validate(
        {"clinical_encoder": {"name": "ft_transformer", "hidden": 16, "depth": 1, "missing_indicators": False}}
    )
    without = CLINICAL_ENCODERS.get("ft_transformer")(4, **clinical_encoder_kwargs(cfg.clinical_encoder)).eval()
    out = without(values, missing)
    assert torch.allclose(out[0], out[1])


def test_ft_transformer_learns_an_interaction() -> None:
    """y = 1 when x0 and x1 share a sign: no additive (linear) score separates it; attention between the two
    feature tokens does. Reaches > 90 % training accuracy in 300 Adam steps."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = ((x[:, 0] * x[:, 1]) > 0).float()
    torch.manual_seed(0)
    enc = encoder()
    head = torch.nn.Linear(enc.out_dim, 1)
    opt = torch.optim.AdamW([*enc.parameters(), *head.parameters()], lr=3e-3)
    missing = torch.zeros_like(x)
    for _ in range(300):
        opt.zero_grad()
        logits = head(enc(x, missing)).squeeze(1)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, y).backward()
        opt.step()
    accuracy = ((logits > 0).float() == y).float().mean().item()
    assert accuracy > 0.9, accuracy


def test_encoder_params_are_checked_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^model\.clinical_encoder\.params\.heads: Input should be a valid integer"):
        encoder(heads="many")
    with pytest.raises(ConfigError, match=r"^model\.clinical_encoder\.params\.hidden: set model\.clinical_encoder"):
        encoder(hidden=32)
    with pytest.raises(ConfigError, match=r"unknown parameter 'heads' at model\.clinical_encoder\.params\.heads"):
        cfg = ModelConfig.model_validate({"clinical_encoder": {"name": "mlp", "params": {"heads": 2}}})
        clinical_encoder_kwargs(cfg.clinical_encoder)
    cfg = ModelConfig.model_validate(
        {"fusion": {"name": "concat"}, "clinical_encoder": {"name": "ft_transformer", "params": {"heads": 5}}}
    )
    with pytest.raises(ConfigError, match=r"^model\.clinical_encoder: hidden \(64\) must be a multiple of heads \(5\)"):
        build_model(cfg, image_info("stack2d"), F, VECTOR_TASKS)
