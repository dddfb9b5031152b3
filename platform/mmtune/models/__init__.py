"""Model zoo: registries, backbones (timm 2D, MONAI 3D), clinical encoder, fusions, heads and ``build_model``.

Attributes load lazily (PEP 562) so ``mmtune.models.registries`` (used by ``mmtune.validation`` and
``mmtune list``) does not drag in MONAI or timm; the registries are filled on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmtune.models.multitask import MultiTaskModel, build_model
    from mmtune.models.registries import BACKBONES, CLINICAL_ENCODERS, FUSIONS, HEADS

__all__ = ["BACKBONES", "CLINICAL_ENCODERS", "FUSIONS", "HEADS", "MultiTaskModel", "build_model", "load_registries"]


def __getattr__(name: str) -> Any:
    if name in ("build_model", "MultiTaskModel"):
        from mmtune.models import multitask
        from mmtune.models.registries import load_registries

        load_registries()
        return getattr(multitask, name)
    if name in ("BACKBONES", "CLINICAL_ENCODERS", "FUSIONS", "HEADS", "load_registries"):
        from mmtune.models import registries

        registries.load_registries()
        return getattr(registries, name)
    raise AttributeError(f"module 'mmtune.models' has no attribute {name!r}")
