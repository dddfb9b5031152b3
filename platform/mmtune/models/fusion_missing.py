"""``hemis``: a fusion built for missing modalities (HeMIS, Havaei et al., MICCAI 2016).

Each modality is embedded into one common space; the fused vector is the mean and the variance over the
modalities *present* for that patient (variance 0 with one). A patient without a clinical row or without an
image gets the same kind of vector as everyone else, from what is there, and no imputation is learned.
"""

from __future__ import annotations

import torch
from torch import nn

from mmtune.models.fusion import Fusion, FusionDims, _projection
from mmtune.models.registries import FUSIONS


@FUSIONS.register("hemis")
class HeMIS(Fusion):
    """HeMIS (Havaei et al. 2016): mean and variance over the modalities present, in a common embedding space;
    robust to a missing image or clinical row"""

    def __init__(self, dims: FusionDims, *, common: int = 64, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.image_embed = nn.Sequential(nn.Linear(dims.image, common), nn.ReLU())
        self.clinical_embed = nn.Sequential(nn.Linear(dims.clinical, common), nn.ReLU())
        self.out = _projection(2 * common, dims.out, dropout)

    def forward(self, image, clinical):
        embeddings = torch.stack([self.image_embed(image.pooled), self.clinical_embed(clinical.embedding)], 1)
        present = torch.stack([image.present, clinical.present], dim=1).unsqueeze(2)  # [B, 2, 1]
        count = present.sum(dim=1).clamp_min(1.0)
        mean = (embeddings * present).sum(dim=1) / count
        variance = ((embeddings - mean.unsqueeze(1)).square() * present).sum(dim=1) / count
        return {"fused": self.out(torch.cat([mean, variance], dim=1))}
