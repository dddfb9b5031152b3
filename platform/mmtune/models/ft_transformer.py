"""``ft_transformer``: the FT-Transformer clinical encoder (Gorishniy et al., NeurIPS 2021), from
``rtdl_revisiting_models``, the authors' maintained package.

Every standardised value becomes a token (its own linear embedding); with ``missing_indicators`` each feature's
missing flag is a categorical token too (cardinality 2), so "not measured" is seen as such and not as a value at
the training mean. A [CLS] token attends over them through ``depth`` transformer blocks; its representation,
after the paper's head normalisation (LayerNorm, ReLU), is the clinical embedding handed to the fusion.
"""

from __future__ import annotations

from torch import Tensor, nn

from mmtune.models.registries import CLINICAL_ENCODERS


class FTTransformerEncoder(nn.Module):
    """``rtdl_revisiting_models.FTTransformer`` without its output layer, as a ``[B, hidden]`` encoder."""

    def __init__(
        self,
        n_features: int,
        *,
        hidden: int,
        depth: int,
        dropout: float,
        missing_indicators: bool,
        heads: int,
        ffn_multiplier: float,
        residual_dropout: float,
    ) -> None:
        super().__init__()
        from rtdl_revisiting_models import FTTransformer

        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.missing_indicators = missing_indicators
        self.net = FTTransformer(
            n_cont_features=n_features,
            cat_cardinalities=[2] * n_features if missing_indicators else [],
            d_out=None,
            n_blocks=depth,
            d_block=hidden,
            attention_n_heads=heads,
            attention_dropout=dropout,
            ffn_d_hidden=None,
            ffn_d_hidden_multiplier=ffn_multiplier,
            ffn_dropout=dropout,
            residual_dropout=residual_dropout,
        )
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, values: Tensor, missing: Tensor) -> Tensor:
        categories = missing.long() if self.missing_indicators else None
        return self.head(self.net(values, categories))


@CLINICAL_ENCODERS.register("ft_transformer", modality="clinical", source="rtdl_revisiting_models")
def ft_transformer(
    n_features: int,
    *,
    hidden: int = 64,
    depth: int = 2,
    dropout: float = 0.1,
    missing_indicators: bool = True,
    heads: int = 8,
    ffn_multiplier: float = 4 / 3,
    residual_dropout: float = 0.0,
) -> FTTransformerEncoder:
    """FT-Transformer: one token per feature (+ missing-flag tokens), [CLS] attention over them (rtdl package)"""
    return FTTransformerEncoder(
        n_features,
        hidden=hidden,
        depth=depth,
        dropout=dropout,
        missing_indicators=missing_indicators,
        heads=heads,
        ffn_multiplier=ffn_multiplier,
        residual_dropout=residual_dropout,
    )
