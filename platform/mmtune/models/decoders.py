"""U-Net style decoders on an encoder's multi-scale maps (segmentation and reconstruction heads).

The decoder starts at the bottleneck, and at every finer scale upsamples to the skip map's size (interpolation,
so any encoder's strides work: timm's 2-32, ConvNeXt's 4-32, MONAI's 3D ResNets), concatenates it and convolves.
The output is interpolated to the (padded) input size and cropped to the original. Conv blocks are MONAI's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class UNetDecoder(nn.Module):
    """``maps`` (finest first, bottleneck last) -> ``[N, out_channels, *size]`` logits.

    ``skips=False`` decodes from the bottleneck alone (still stepping through every scale): a reconstruction
    decoder with skip connections would learn to copy its input instead of shaping the shared representation.
    """

    def __init__(
        self,
        spatial_dims: int,
        encoder_channels: Sequence[int],
        out_channels: int,
        width: int = 32,
        skips: bool = True,
    ) -> None:
        from monai.networks.blocks import Convolution

        super().__init__()
        self.spatial_dims = spatial_dims
        self.skips = skips
        self.bottleneck = Convolution(
            spatial_dims, encoder_channels[-1], width, kernel_size=1, act="RELU", norm="BATCH"
        )
        self.blocks = nn.ModuleList(
            Convolution(spatial_dims, width + (skip if skips else 0), width, act="RELU", norm="BATCH")
            for skip in reversed(list(encoder_channels[:-1]))
        )
        self.refine = Convolution(spatial_dims, width, width, act="RELU", norm="BATCH")
        self.head = Convolution(spatial_dims, width, out_channels, kernel_size=1, conv_only=True)

    def _resize(self, x: Tensor, size: Sequence[int]) -> Tensor:
        if tuple(x.shape[2:]) == tuple(size):
            return x
        mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
        return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False)

    def forward(self, maps: Sequence[Tensor], size: Sequence[int], crop: Sequence[int] | None = None) -> Tensor:
        x = self.bottleneck(maps[-1])
        for skip, block in zip(reversed(list(maps[:-1])), self.blocks):
            x = self._resize(x, skip.shape[2:])
            x = block(torch.cat([x, skip], dim=1) if self.skips else x)
        x = self.head(self.refine(self._resize(x, size)))
        if crop is not None and tuple(crop) != tuple(size):
            x = x[(..., *[slice(0, c) for c in crop])]
        return x
