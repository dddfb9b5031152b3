"""Task heads, registered under the task kind they serve.

Vector heads (binary, multiclass, multilabel, regression) read a fused embedding; dense heads (segmentation,
reconstruction) are U-Net decoders over the image encoder's maps and return tensors shaped like the mask / image:
``[B, K, H, W]`` for slice stacks (one map per slice), ``[B, 1, D, H, W]`` for volumes (``C > 1`` segmentation
classes add a class axis after the batch).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from mmtune.models.decoders import UNetDecoder
from mmtune.models.features import ImageFeatures
from mmtune.models.registries import HEADS
from mmtune.tasks import TaskKind, TaskSpec


class MLPHead(nn.Module):
    """Linear head, or one hidden layer when ``hidden > 0``; scalar kinds return ``[B]``."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, dropout: float, squeeze: bool) -> None:
        super().__init__()
        if hidden:
            self.net: nn.Module = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(in_dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, out_dim),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
        self.squeeze = squeeze

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        return out.squeeze(-1) if self.squeeze else out


@HEADS.register("binary", head="vector", output="[B] logit", default_loss="bce")
def binary_head(task: TaskSpec, in_dim: int, *, hidden: int = 0, dropout: float = 0.0) -> MLPHead:
    """One logit per patient (sigmoid = probability of the positive class)"""
    return MLPHead(in_dim, 1, hidden, dropout, squeeze=True)


@HEADS.register("multiclass", head="vector", output="[B, C] logits", default_loss="ce")
def multiclass_head(task: TaskSpec, in_dim: int, *, hidden: int = 0, dropout: float = 0.0) -> MLPHead:
    """One logit per class (softmax)"""
    return MLPHead(in_dim, task.num_outputs, hidden, dropout, squeeze=False)


@HEADS.register("multilabel", head="vector", output="[B, L] logits", default_loss="bce")
def multilabel_head(task: TaskSpec, in_dim: int, *, hidden: int = 0, dropout: float = 0.0) -> MLPHead:
    """One independent logit per label (sigmoid each)"""
    return MLPHead(in_dim, task.num_outputs, hidden, dropout, squeeze=False)


@HEADS.register("regression", head="vector", output="[B] value", default_loss="mse")
def regression_head(task: TaskSpec, in_dim: int, *, hidden: int = 0, dropout: float = 0.0) -> MLPHead:
    """One real value per patient"""
    return MLPHead(in_dim, 1, hidden, dropout, squeeze=True)


@dataclass(frozen=True)
class DenseLayout:
    """How decoder outputs map back to the data layout: ``stack2d`` + ``channels``/``mil``, or ``volume3d``."""

    layout: str
    mode: str
    n_slices: int
    spatial_dims: int
    encoder_channels: tuple[int, ...]


class DenseHead(nn.Module):
    """A U-Net decoder plus the reshape from decoder channels to per-slice / per-voxel outputs."""

    def __init__(self, out_channels: int, layout: DenseLayout, width: int, skips: bool) -> None:
        super().__init__()
        self.classes = out_channels
        self.layout = layout
        per_slice_channels = layout.layout == "stack2d" and layout.mode == "channels"
        decoder_out = out_channels * layout.n_slices if per_slice_channels else out_channels
        self.decoder = UNetDecoder(layout.spatial_dims, layout.encoder_channels, decoder_out, width, skips)

    def forward(self, image: ImageFeatures, size: tuple[int, ...], crop: tuple[int, ...]) -> Tensor:
        y = self.decoder(image.maps, size, crop)
        c, spec = self.classes, self.layout
        if spec.layout == "volume3d":
            return y  # [B, C, D, H, W]
        if spec.mode == "mil":  # [B*K, C, H, W]
            y = y.reshape(-1, spec.n_slices, c, *y.shape[2:])
            return y[:, :, 0] if c == 1 else y.permute(0, 2, 1, 3, 4)
        return y if c == 1 else y.reshape(y.shape[0], c, spec.n_slices, *y.shape[2:])


@HEADS.register("segmentation", head="dense", output="like mask: [B,K,H,W] / [B,1,D,H,W]", default_loss="dice_ce")
def segmentation_head(task: TaskSpec, layout: DenseLayout, *, width: int = 32) -> DenseHead:
    """U-Net decoder (skip connections) over the encoder's multi-scale maps; one logit map per foreground class"""
    return DenseHead(task.num_outputs, layout, width, skips=True)


@HEADS.register("reconstruction", head="dense", output="like image", default_loss="mse")
def reconstruction_head(task: TaskSpec, layout: DenseLayout, *, width: int = 32) -> DenseHead:
    """Decoder from the bottleneck alone (no skips, so it cannot copy the input) reconstructing the image"""
    return DenseHead(1, layout, width, skips=False)


VECTOR_KINDS = (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.MULTILABEL, TaskKind.REGRESSION)
