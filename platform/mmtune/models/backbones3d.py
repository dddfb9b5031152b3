"""3D backbones for volumes: MONAI ResNets / DenseNet (never with MONAI's downloading ``pretrained=True``) and
the tiny ``small_cnn3d``. Inputs are ``[B, 1, D, H, W]``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmtune.models.features import FeatureEncoder
from mmtune.models.registries import BACKBONES
from mmtune.models.small_cnn import SmallCNN


def _pool3d(bottleneck: Tensor) -> Tensor:
    return bottleneck.flatten(2).mean(dim=2)


class MonaiResNetEncoder(FeatureEncoder):
    """A MONAI ``ResNet`` (``feed_forward=False``) read out after the stem and each of its four layers."""

    def __init__(self, depth: int, in_chans: int, conv1_t_stride: int, widen_factor: float) -> None:
        super().__init__()
        from monai.networks import nets

        factory = {10: nets.resnet10, 18: nets.resnet18, 34: nets.resnet34}[depth]
        self.spatial_dims = 3
        self.net = factory(
            pretrained=False,
            spatial_dims=3,
            n_input_channels=in_chans,
            feed_forward=False,
            conv1_t_stride=conv1_t_stride,
            widen_factor=widen_factor,
        )
        self.channels = probe_channels(self, in_chans, 16)
        self.out_dim = self.channels[-1]

    def _layers(self) -> list[nn.Module]:
        return [self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4]

    def features(self, x: Tensor) -> list[Tensor]:
        net = self.net
        x = net.act(net.bn1(net.conv1(x)))
        maps = [x]
        if not net.no_max_pool:
            x = net.maxpool(x)
        for layer in self._layers():
            x = layer(x)
            maps.append(x)
        return maps

    def pool(self, bottleneck: Tensor) -> Tensor:
        return _pool3d(bottleneck)

    def stage_modules(self) -> list[nn.Module]:
        return [self.net.act, *self._layers()]

    def weights_module(self) -> nn.Module:
        return self.net


class MonaiDenseNetEncoder(FeatureEncoder):
    """MONAI ``DenseNet121`` features read out after the stem and each dense block (classifier dropped)."""

    taps = ("relu0", "denseblock1", "denseblock2", "denseblock3", "norm5")

    def __init__(self, in_chans: int, dropout: float) -> None:
        super().__init__()
        from monai.networks import nets

        self.spatial_dims = 3
        net = nets.DenseNet121(spatial_dims=3, in_channels=in_chans, out_channels=1, dropout_prob=dropout)
        net.class_layers = nn.Identity()  # our own pooling; an unused classifier would break DDP
        self.net = net
        self.channels = probe_channels(self, in_chans, 32)
        self.out_dim = self.channels[-1]

    def features(self, x: Tensor) -> list[Tensor]:
        maps = []
        for name, module in self.net.features.named_children():
            x = module(x)
            if name in self.taps:
                maps.append(x)
        return maps

    def pool(self, bottleneck: Tensor) -> Tensor:
        return _pool3d(torch.relu(bottleneck))

    def stage_modules(self) -> list[nn.Module]:
        return [self.net.features.get_submodule(name) for name in self.taps]

    def weights_module(self) -> nn.Module:
        return self.net


def probe_channels(encoder: FeatureEncoder, in_chans: int, size: int) -> list[int]:
    """Channel count of each map, read from one no-grad forward pass of a tiny zero input in eval mode."""
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        maps = encoder.features(torch.zeros(1, in_chans, size, size, size))
    encoder.train(was_training)
    return [int(m.shape[1]) for m in maps]


@BACKBONES.register("resnet3d_10", dims=3, source="monai", min_size=16)
def resnet3d_10(in_chans: int, *, conv1_t_stride: int = 1, widen_factor: float = 1.0) -> MonaiResNetEncoder:
    """3D ResNet-10 (MONAI, Med3D layout), 512-d"""
    return MonaiResNetEncoder(10, in_chans, conv1_t_stride, widen_factor)


@BACKBONES.register("resnet3d_18", dims=3, source="monai", min_size=16)
def resnet3d_18(in_chans: int, *, conv1_t_stride: int = 1, widen_factor: float = 1.0) -> MonaiResNetEncoder:
    """3D ResNet-18 (MONAI, Med3D layout), 512-d"""
    return MonaiResNetEncoder(18, in_chans, conv1_t_stride, widen_factor)


@BACKBONES.register("resnet3d_34", dims=3, source="monai", min_size=16)
def resnet3d_34(in_chans: int, *, conv1_t_stride: int = 1, widen_factor: float = 1.0) -> MonaiResNetEncoder:
    """3D ResNet-34 (MONAI, Med3D layout), 512-d"""
    return MonaiResNetEncoder(34, in_chans, conv1_t_stride, widen_factor)


@BACKBONES.register("densenet3d_121", dims=3, source="monai", min_size=32)
def densenet3d_121(in_chans: int, *, dropout: float = 0.0) -> MonaiDenseNetEncoder:
    """3D DenseNet-121 (MONAI), 1024-d; inputs under 32 voxels a side are zero-padded"""
    return MonaiDenseNetEncoder(in_chans, dropout)


@BACKBONES.register("small_cnn3d", dims=3, source="mmtune", min_size=16)
def small_cnn3d(in_chans: int, *, width: int = 8, stages: int = 4) -> SmallCNN:
    """Tiny 3D CNN (4 stride-2 stages, 8-64 channels): CPU tests of volume pipelines"""
    return SmallCNN(in_chans, spatial_dims=3, width=width, stages=stages)
