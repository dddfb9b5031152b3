"""What encoders hand to fusions, heads and decoders.

An image encoder yields multi-scale feature maps (finest first, the bottleneck last) plus a pooled patient
embedding; in MIL mode the slices of a stack are folded into the batch (``group`` = slices per patient), so maps
are ``[B * group, C, ...]`` while embeddings are ``[B, D]``. Fusions that need maps (FiLM) or tokens (cross
attention) use the bottleneck; segmentation / reconstruction decoders use every scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn


class FeatureEncoder(nn.Module):
    """A backbone seen through one interface: ``features(x)`` -> maps, ``pool(bottleneck)`` -> ``[N, out_dim]``.

    ``channels`` lists the channel count of each map (finest first, bottleneck last). ``weights_module()`` is the
    module whose ``state_dict`` keys match the usual checkpoints of that architecture (for ``pretrained:``).
    """

    spatial_dims: int = 2
    channels: list[int]
    out_dim: int

    def features(self, x: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def pool(self, bottleneck: Tensor) -> Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(bottleneck, 1), 1)

    def weights_module(self) -> nn.Module:
        return self

    def stage_modules(self) -> list[nn.Module]:
        """The module whose output is each map (same order as ``features``): where fusions that condition the
        image network from inside (``daft``) hook in. Backbones without this cannot host such fusions."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its stages")

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.features(x)[-1])


@dataclass
class ImageFeatures:
    """One batch through the image encoder.

    ``maps``: finest first, bottleneck last, batch dim ``B * group``; ``pooled``: ``[B, out_dim]``; ``pool``
    re-pools a (modulated) bottleneck to ``[B, out_dim]``; ``present``: ``[B]`` 1.0 where the image is available.
    """

    maps: list[Tensor]
    pooled: Tensor
    group: int
    pool: Callable[[Tensor], Tensor]
    present: Tensor

    @property
    def bottleneck(self) -> Tensor:
        return self.maps[-1]

    def per_sample(self, values: Tensor) -> Tensor:
        """Expand a ``[B, ...]`` tensor to the ``B * group`` batch of the maps."""
        return values.repeat_interleave(self.group, dim=0) if self.group > 1 else values

    def tokens(self, level: int = -1) -> Tensor:
        """``[B, group * positions, C]`` tokens of one map (slices x spatial positions in MIL mode)."""
        fmap = self.maps[level]
        n, c = fmap.shape[:2]
        flat = fmap.flatten(2).transpose(1, 2)  # [N, P, C]
        return flat.reshape(n // self.group, -1, c)

    def masked(self, present: Tensor) -> ImageFeatures:
        """The features with absent images zeroed (modality dropout / missing-modality evaluation).

        Only what fusions read is zeroed (pooled embedding and bottleneck); decoders keep the raw maps.
        """
        if bool(present.all()):
            return replace(self, present=present)
        shape = (-1,) + (1,) * (self.bottleneck.dim() - 1)
        bottleneck = self.bottleneck * self.per_sample(present).view(shape)
        return replace(
            self,
            maps=[*self.maps[:-1], bottleneck],
            pooled=self.pooled * present.unsqueeze(1),
            present=present,
        )


@dataclass
class ClinicalFeatures:
    """Clinical inputs after the encoder: raw standardised ``values``/``missing`` ``[B, F]``, the ``embedding``
    ``[B, D]`` and ``present`` ``[B]`` (1.0 unless every feature of the patient is missing)."""

    values: Tensor
    missing: Tensor
    embedding: Tensor
    present: Tensor
