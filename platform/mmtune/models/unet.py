"""The contracting path of a U-Net as a backbone, so a design can be a true U-Net-style encoder-decoder.

With a ``segmentation`` task the decoder (``mmtune.models.decoders.UNetDecoder``, skip connections at every scale)
is the expanding path, and the classification / regression heads read the pooled *bottleneck* (the fusion's image
embedding is the global average of the deepest map): "a U-Net whose bottleneck feeds the heads" (CT triage designs).
Unlike strided classifiers (``small_cnn``, timm), the first map is at full input resolution, as in Ronneberger et
al. (2015); blocks are MONAI ``BasicUNet``'s (``TwoConv``: conv-norm-act x 2, ``Down``: max-pool + ``TwoConv``).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from mmtune.models.features import FeatureEncoder
from mmtune.models.registries import BACKBONES

# Batch norm by default: instance norm (MONAI BasicUNet's choice, made for segmentation) gives every channel of a
# small bottleneck (2 x 2 for 32 x 32 inputs at depth 4) zero spatial mean, so the global average the heads read
# keeps almost nothing, and absolute intensity (dense consolidation vs faint ground glass) is normalised away.
Norm = Literal["batch", "instance"]
NORMS: dict[str, tuple[str, dict]] = {
    "batch": ("batch", {}),
    "instance": ("instance", {"affine": True}),
}


class UNetEncoder(FeatureEncoder):
    """A full-resolution ``TwoConv`` then ``depth`` ``Down`` stages doubling the width; one map per scale."""

    def __init__(
        self,
        in_chans: int,
        spatial_dims: int = 2,
        width: int = 16,
        depth: int = 4,
        dropout: float = 0.0,
        norm: str = "batch",
    ):
        from monai.networks.nets.basic_unet import Down, TwoConv

        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.spatial_dims = spatial_dims
        self.channels = [width * 2**i for i in range(depth + 1)]
        act = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True})
        layer_norm = NORMS[norm]
        self.stem = TwoConv(spatial_dims, in_chans, self.channels[0], act, layer_norm, True, dropout)
        self.downs = nn.ModuleList(
            Down(spatial_dims, self.channels[i], self.channels[i + 1], act, layer_norm, True, dropout)
            for i in range(depth)
        )
        self.out_dim = self.channels[-1]

    def features(self, x: Tensor) -> list[Tensor]:
        maps = [self.stem(x)]
        for down in self.downs:
            maps.append(down(maps[-1]))
        return maps

    def stage_modules(self) -> list[nn.Module]:
        return [self.stem, *self.downs]

    def pool(self, bottleneck: Tensor) -> Tensor:
        return bottleneck.flatten(2).mean(dim=2)


@BACKBONES.register("unet_encoder", dims=2, source="mmtune", min_size=32)
def unet_encoder(
    in_chans: int, *, width: int = 16, depth: int = 4, dropout: float = 0.0, norm: Norm = "batch"
) -> UNetEncoder:
    """U-Net contracting path (2D, full-resolution first map, MONAI BasicUNet blocks); bottleneck feeds the heads"""
    return UNetEncoder(in_chans, spatial_dims=2, width=width, depth=depth, dropout=dropout, norm=norm)


@BACKBONES.register("unet_encoder3d", dims=3, source="mmtune", min_size=32)
def unet_encoder3d(
    in_chans: int, *, width: int = 8, depth: int = 4, dropout: float = 0.0, norm: Norm = "batch"
) -> UNetEncoder:
    """U-Net contracting path (3D volumes, MONAI BasicUNet blocks); bottleneck feeds the heads"""
    return UNetEncoder(in_chans, spatial_dims=3, width=width, depth=depth, dropout=dropout, norm=norm)
