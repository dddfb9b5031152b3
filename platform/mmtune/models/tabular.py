"""Clinical feature encoders: standardised values (0 where missing) plus missing-value indicators -> embedding."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmtune.models.registries import CLINICAL_ENCODERS


class MLPClinicalEncoder(nn.Module):
    """``depth`` x (Linear -> LayerNorm -> ReLU -> Dropout) over ``[values, missing]`` (indicators optional).

    Indicators matter because "not measured" carries signal in clinical data (e.g. a lab ordered only for the
    sick); with them the network can tell a missing value from a value at the training mean.
    """

    def __init__(self, n_features: int, *, hidden: int, depth: int, dropout: float, missing_indicators: bool) -> None:
        super().__init__()
        self.missing_indicators = missing_indicators
        width = n_features * (2 if missing_indicators else 1)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.net = nn.Sequential(*layers)
        self.out_dim = hidden

    def forward(self, values: Tensor, missing: Tensor) -> Tensor:
        x = torch.cat([values, missing], dim=1) if self.missing_indicators else values
        return self.net(x)


@CLINICAL_ENCODERS.register("mlp", modality="clinical")
def mlp(n_features: int, *, hidden: int = 64, depth: int = 2, dropout: float = 0.1, missing_indicators: bool = True):
    """MLP over standardised features + missing indicators (width, depth, dropout configurable)"""
    return MLPClinicalEncoder(
        n_features, hidden=hidden, depth=depth, dropout=dropout, missing_indicators=missing_indicators
    )
