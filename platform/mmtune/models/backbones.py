"""2D backbones for slice stacks: timm models (never pretrained by timm itself) and the tiny ``small_cnn``.

Every factory takes the number of input channels positionally (slices in ``channels`` mode, 1 in ``mil`` mode)
and user ``params`` as keyword-only arguments. ``pretrained:`` weights are loaded afterwards from a local file by
``mmtune.models.pretrained``; timm is always called with ``pretrained=False``, so nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mmtune.models.features import FeatureEncoder
from mmtune.models.registries import BACKBONES
from mmtune.models.small_cnn import SmallCNN


class TimmEncoder(FeatureEncoder):
    """A timm classifier used as a multi-scale encoder through ``forward_intermediates``.

    Maps are timm's intermediate stages with the last replaced by ``forward_features`` output (e.g. after
    EfficientNet's ``conv_head``); ``pool`` is timm's own ``forward_head(pre_logits=True)`` so every parameter of
    the model is used (DDP without ``find_unused_parameters``).
    """

    def __init__(self, name: str, in_chans: int, **kwargs: Any) -> None:
        super().__init__()
        import timm

        self.spatial_dims = 2
        self.net = timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=0, **kwargs)
        self.channels = [*(int(f["num_chs"]) for f in self.net.feature_info[:-1]), int(self.net.num_features)]
        self.out_dim = int(getattr(self.net, "head_hidden_size", None) or self.net.num_features)

    def features(self, x: Tensor) -> list[Tensor]:
        final, intermediates = self.net.forward_intermediates(x, intermediates_only=False)
        return [*intermediates[:-1], final]

    def pool(self, bottleneck: Tensor) -> Tensor:
        return self.net.forward_head(bottleneck, pre_logits=True)

    def weights_module(self) -> nn.Module:
        return self.net

    def stage_modules(self) -> list[nn.Module]:
        return [self.net.get_submodule(info["module"]) for info in self.net.feature_info]


def _register_timm(name: str, description: str, drop_path: bool = True) -> None:
    if drop_path:

        def factory(in_chans: int, *, drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> TimmEncoder:
            extra = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
            return TimmEncoder(name, in_chans, drop_rate=drop_rate, **extra)

    else:

        def factory(in_chans: int, *, drop_rate: float = 0.0) -> TimmEncoder:  # type: ignore[misc]
            return TimmEncoder(name, in_chans, drop_rate=drop_rate)

    factory.__doc__ = description
    factory.__name__ = f"timm_{name}"
    BACKBONES.register(name, description, dims=2, source="timm", min_size=32)(factory)


_register_timm("resnet18", "ResNet-18 (timm), 512-d; the usual first choice for small CT data")
_register_timm("resnet34", "ResNet-34 (timm), 512-d")
_register_timm("resnet50", "ResNet-50 (timm), 2048-d bottleneck blocks")
_register_timm("densenet121", "DenseNet-121 (timm), 1024-d; common in chest imaging", drop_path=False)
_register_timm("efficientnet_b0", "EfficientNet-B0 (timm), 1280-d, compound-scaled MBConv")
_register_timm("convnext_tiny", "ConvNeXt-Tiny (timm), 768-d, modernised ResNet")
_register_timm("mobilenetv3_large_100", "MobileNetV3-Large (timm), 1280-d, fast on CPU")


@BACKBONES.register("small_cnn", dims=2, source="mmtune", min_size=16)
def small_cnn(in_chans: int, *, width: int = 16, stages: int = 4) -> SmallCNN:
    """Tiny 2D CNN (4 stride-2 stages, 16-128 channels): CPU tests and quick searches"""
    return SmallCNN(in_chans, spatial_dims=2, width=width, stages=stages)
