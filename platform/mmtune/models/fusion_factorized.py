"""Multiplicative fusions: tensor fusion, low-rank multimodal fusion and factorized bilinear pooling.

Each models image x clinical interactions that concatenation misses. An absent modality (``present == 0``) has
its embedding zeroed; the appended constant 1 of tensor / low-rank fusion keeps the other modality's unimodal
terms, so those two degrade to a one-modality model rather than to zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mmtune.models.fusion import Fusion, FusionDims, _projection
from mmtune.models.registries import FUSIONS


def _with_one(x: Tensor) -> Tensor:
    """``[B, d]`` -> ``[B, d + 1]`` with a constant 1 appended (keeps the unimodal terms in a product)."""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)


def _masked_inputs(image, clinical) -> tuple[Tensor, Tensor]:
    return image.pooled * image.present.unsqueeze(1), clinical.embedding * clinical.present.unsqueeze(1)


@FUSIONS.register("tensor")
class TensorFusion(Fusion):
    """Tensor fusion (Zadeh et al. 2017): outer product of [image; 1] and [clinical; 1] (projected to ``rank``-d)

    Both embeddings are first projected to ``proj`` units so the outer product stays small ((proj+1)^2 features),
    then a linear layer maps it to the fused width.
    """

    def __init__(self, dims: FusionDims, *, proj: int = 16, dropout: float = 0.0) -> None:
        super().__init__(dims)
        if proj < 1:
            raise ValueError(f"proj must be >= 1, got {proj}")
        self.image_proj = nn.Linear(dims.image, proj)
        self.clinical_proj = nn.Linear(dims.clinical, proj)
        self.out = _projection((proj + 1) ** 2, dims.out, dropout)

    def forward(self, image, clinical):
        pooled, embedding = _masked_inputs(image, clinical)
        zi = _with_one(self.image_proj(pooled) * image.present.unsqueeze(1))
        zc = _with_one(self.clinical_proj(embedding) * clinical.present.unsqueeze(1))
        outer = torch.einsum("bi,bj->bij", zi, zc).flatten(1)
        return {"fused": self.out(outer)}


@FUSIONS.register("lmf")
class LowRankFusion(Fusion):
    """Low-rank multimodal fusion (Liu et al. 2018): tensor fusion with rank-``rank`` modality-specific factors

    ``fused = sum_r ([image; 1] W_i^r) * ([clinical; 1] W_c^r)``: linear in the number of modalities, no outer
    product is formed.
    """

    def __init__(self, dims: FusionDims, *, rank: int = 4, dropout: float = 0.0) -> None:
        super().__init__(dims)
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.image_factor = nn.Parameter(torch.empty(rank, dims.image + 1, dims.out))
        self.clinical_factor = nn.Parameter(torch.empty(rank, dims.clinical + 1, dims.out))
        self.rank_weights = nn.Parameter(torch.ones(1, rank) / rank)
        self.bias = nn.Parameter(torch.zeros(dims.out))
        nn.init.xavier_normal_(self.image_factor)
        nn.init.xavier_normal_(self.clinical_factor)
        self.out = nn.Sequential(nn.ReLU(), nn.Dropout(dropout))

    def forward(self, image, clinical):
        pooled, embedding = _masked_inputs(image, clinical)
        fi = torch.einsum("bd,rdo->rbo", _with_one(pooled), self.image_factor)
        fc = torch.einsum("bd,rdo->rbo", _with_one(embedding), self.clinical_factor)
        fused = torch.einsum("xr,rbo->bo", self.rank_weights, fi * fc) + self.bias
        return {"fused": self.out(fused)}

    def last_layer(self):
        return None


@FUSIONS.register("mfb")
class MFB(Fusion):
    """Multi-modal factorized bilinear pooling (Yu et al. 2017): elementwise product of k-factor projections,
    sum-pooled, power- and L2-normalised

    An absent modality is replaced by a learned "missing" vector before the product, so the other modality still
    reaches the output.
    """

    def __init__(self, dims: FusionDims, *, factors: int = 5, dropout: float = 0.1) -> None:
        super().__init__(dims)
        if factors < 1:
            raise ValueError(f"factors must be >= 1, got {factors}")
        self.factors = factors
        self.image_proj = nn.Linear(dims.image, dims.out * factors)
        self.clinical_proj = nn.Linear(dims.clinical, dims.out * factors)
        self.missing_image = nn.Parameter(torch.ones(dims.out * factors))
        self.missing_clinical = nn.Parameter(torch.ones(dims.out * factors))
        self.dropout = nn.Dropout(dropout)

    def forward(self, image, clinical):
        ip, cp = image.present.unsqueeze(1), clinical.present.unsqueeze(1)
        zi = self.image_proj(image.pooled) * ip + self.missing_image * (1 - ip)
        zc = self.clinical_proj(clinical.embedding) * cp + self.missing_clinical * (1 - cp)
        joint = self.dropout(zi * zc).view(zi.shape[0], -1, self.factors).sum(dim=2)
        joint = torch.sign(joint) * torch.sqrt(joint.abs() + 1e-8)
        return {"fused": F.normalize(joint, dim=1)}  # the pooled, normalised product is the fused vector

    def last_layer(self):
        return self.clinical_proj
