"""Turn a registered backbone into the image encoder of a model: input layout, MIL folding, padding, weights.

``stack2d`` data in ``channels`` mode feed the K slices as input channels; in ``mil`` mode every slice goes through
the same 1-channel encoder and gated attention pools the K slice embeddings. ``volume3d`` data are ``[B, 1, D, H,
W]``. Inputs smaller than a backbone's ``min_size`` (tiny test data) are zero-padded at the far end; decoders crop
back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtune.config.run import BackboneConfig
from mmtune.console import err_console
from mmtune.data.format import ImageInfo
from mmtune.errors import ConfigError
from mmtune.models.features import FeatureEncoder, ImageFeatures
from mmtune.models.mil import GatedAttentionPool
from mmtune.models.pretrained import LoadReport, load_pretrained
from mmtune.models.registries import BACKBONES
from mmtune.registry import validate_params

LAYOUT_DIMS = {"stack2d": 2, "volume3d": 3}


class ImageEncoder(nn.Module):
    """A ``FeatureEncoder`` plus the layout logic; ``forward(image)`` -> ``ImageFeatures``."""

    def __init__(self, backbone: FeatureEncoder, layout: str, mode: str, n_slices: int, min_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.layout = layout
        self.mode = mode
        self.group = n_slices if mode == "mil" else 1
        self.min_size = min_size
        self.mil = GatedAttentionPool(backbone.out_dim) if mode == "mil" else None
        self.pretrained_report: LoadReport | None = None

    @property
    def out_dim(self) -> int:
        return self.backbone.out_dim

    @property
    def channels(self) -> list[int]:
        return list(self.backbone.channels)

    @property
    def spatial_dims(self) -> int:
        return self.backbone.spatial_dims

    def fold(self, image: Tensor) -> Tensor:
        """The backbone's input: slices folded into the batch in MIL mode, padded up to ``min_size``."""
        if self.mode == "mil":
            b, k = image.shape[:2]
            image = image.reshape(b * k, 1, *image.shape[2:])
        pads: list[int] = []
        for size in reversed(image.shape[2:]):
            pads += [0, max(0, self.min_size - size)]
        return F.pad(image, pads) if any(pads) else image

    def pool(self, bottleneck: Tensor) -> Tensor:
        """``[B * group, C, ...]`` bottleneck -> ``[B, out_dim]`` (attention MIL over slices in ``mil`` mode)."""
        pooled = self.backbone.pool(bottleneck)
        if self.mil is None:
            return pooled
        return self.mil(pooled.reshape(-1, self.group, pooled.shape[-1]))

    def forward(self, image: Tensor, extra: Tensor | None = None) -> ImageFeatures:
        """``extra``: ``[B, E]`` per-patient values appended as constant input channels (early fusion)."""
        x = self.fold(image)
        if extra is not None and extra.shape[1]:
            per_input = extra.repeat_interleave(self.group, dim=0) if self.group > 1 else extra
            planes = per_input.view(*per_input.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, planes.to(x.dtype)], dim=1)
        maps = self.backbone.features(x)
        ones = image.new_ones(image.shape[0])
        return ImageFeatures(maps, self.pool(maps[-1]), self.group, self.pool, ones)

    def padded_size(self, image: Tensor) -> tuple[int, ...]:
        return tuple(max(self.min_size, s) for s in image.shape[2:])


def build_image_encoder(cfg: BackboneConfig, image: ImageInfo, extra_channels: int = 0) -> ImageEncoder:
    """Build the backbone named by ``cfg`` for data described by ``image``; load local weights if given.

    ``extra_channels``: constant input channels appended to the image (early fusion's clinical values)."""
    entry = BACKBONES.entry(cfg.name, "model.backbone.name")
    params = validate_params(entry, cfg.params, "model.backbone.params")
    check_backbone_layout(cfg, image, entry.tags.get("dims"))
    in_chans = (image.shape[0] if image.layout == "stack2d" and cfg.mode == "channels" else 1) + extra_channels
    try:
        dims = (LAYOUT_DIMS[image.layout],) if entry.tags.get("any_dims") else ()  # monai:<Net>: from the data
        backbone = entry.factory(in_chans, *dims, **params)
    except ValueError as exc:  # a parameter value the factory refuses (a name it does not know is caught above)
        raise ConfigError(f"model.backbone.params: {exc}") from None
    encoder = ImageEncoder(backbone, image.layout, cfg.mode, image.shape[0], int(entry.tags.get("min_size", 1)))
    if cfg.pretrained:
        encoder.pretrained_report = load_pretrained(backbone.weights_module(), cfg.pretrained)
        err_console.print(encoder.pretrained_report.line(), highlight=False, markup=False)
    return encoder


def check_backbone_layout(cfg: BackboneConfig, image: ImageInfo, dims: int | None) -> None:
    """A 2D backbone needs slice stacks, a 3D one volumes; MIL only over 2D slice stacks."""
    wanted = LAYOUT_DIMS[image.layout]
    if dims is not None and dims != wanted:
        kind = [n for n in BACKBONES.names() if BACKBONES.entry(n).tags.get("dims") == wanted]
        raise ConfigError(
            f"model.backbone.name: {cfg.name!r} is a {dims}D backbone but the data are {image.layout} "
            f"({wanted}D); use one of: {', '.join(kind)}"
        )
    if cfg.mode == "mil" and (image.layout != "stack2d" or dims == 3):
        raise ConfigError(
            f"model.backbone.mode: 'mil' pools 2D slices of a stack2d image; {cfg.name!r} on {image.layout} data "
            "needs mode 'channels'"
        )
