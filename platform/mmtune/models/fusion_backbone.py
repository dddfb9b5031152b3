"""Fusions inside the image network: early fusion (clinical values as input channels) and DAFT (clinical
vector scales and shifts an intermediate feature map, so every later stage sees the conditioned maps).

Removing the clinical modality (``drop_modality``, modality dropout) feeds zeros with every feature marked
missing to early fusion, and turns DAFT's affine transform into the identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from mmtune.models.features import ClinicalFeatures
from mmtune.models.fusion import Fusion, FusionDims, _projection
from mmtune.models.registries import FUSIONS


@FUSIONS.register("early")
class EarlyFusion(Fusion):
    """Early fusion: each clinical value and its missing flag become constant extra input channels of the image
    network; no clinical encoder is built"""

    needs_clinical_encoder = False

    def __init__(self, dims: FusionDims, *, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.out = _projection(dims.image, dims.out, dropout)

    @classmethod
    def image_input_channels(cls, n_clinical: int) -> int:
        return 2 * n_clinical

    def image_inputs(self, clinical: ClinicalFeatures) -> Tensor:
        return torch.cat([clinical.values, clinical.missing], dim=1)

    def forward(self, image, clinical):
        return {"fused": self.out(image.pooled)}


@FUSIONS.register("daft")
class DAFT(Fusion):
    """DAFT (Pölsterl et al. 2021) inside the backbone: the output of image stage ``level`` is scaled and shifted
    per channel from [its pooled map; clinical embedding]; later stages see the conditioned maps

    ``level`` indexes the encoder's maps (default -2: the input of the last stage, as DAFT conditions the last
    residual block). The scale/shift layer starts at zero, so training starts from the image-only network.
    """

    def __init__(self, dims: FusionDims, *, level: int = -2, hidden: int = 32, dropout: float = 0.0) -> None:
        super().__init__(dims)
        n = len(dims.channels)
        if not -n <= level < n - 1 or level == -1:
            raise ValueError(f"level must index a stage before the last one (-{n}..{n - 2}, not -1), got {level}")
        self.level = level
        width = dims.channels[level]
        self.film = nn.Sequential(nn.Linear(width + dims.clinical, hidden), nn.ReLU(), nn.Linear(hidden, 2 * width))
        nn.init.zeros_(self.film[-1].weight)
        nn.init.zeros_(self.film[-1].bias)
        self.out = _projection(dims.image + dims.clinical, dims.out, dropout)
        self._clinical: ClinicalFeatures | None = None
        self._group = 1

    def attach(self, encoder: nn.Module) -> None:
        try:
            stage = encoder.backbone.stage_modules()[self.level]
        except NotImplementedError as exc:
            raise ValueError(f"fusion 'daft' needs a backbone whose stages it can hook: {exc}") from None
        self._group = encoder.group
        stage.register_forward_hook(self._modulate)

    @contextmanager
    def conditioning(self, clinical: ClinicalFeatures | None) -> Iterator[None]:
        self._clinical = clinical
        try:
            yield
        finally:
            self._clinical = None

    def _modulate(self, module: nn.Module, inputs: object, output: Tensor) -> Tensor | None:
        clinical = self._clinical
        if clinical is None:
            return None
        pooled = output.flatten(2).mean(dim=2)  # [B * group, C]
        condition = clinical.embedding.repeat_interleave(self._group, dim=0) if self._group > 1 else clinical.embedding
        scale, shift = self.film(torch.cat([pooled, condition], dim=1)).chunk(2, dim=1)
        present = clinical.present.repeat_interleave(self._group, dim=0) if self._group > 1 else clinical.present
        shape = (*output.shape[:2], *([1] * (output.dim() - 2)))
        scale = (scale * present.unsqueeze(1)).view(shape)
        shift = (shift * present.unsqueeze(1)).view(shape)
        return output * (1 + scale) + shift

    def forward(self, image, clinical):
        return {"fused": self.out(torch.cat([image.pooled, clinical.embedding], dim=1))}
