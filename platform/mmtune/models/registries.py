"""The model components' registries (backbones, clinical encoders, fusions, heads), chosen by name from YAML.

Each registering module imports its registry from here (beside what it registers); the loss weightings and task
losses register in :mod:`mmtune.losses.registries`. How ``params`` are checked is :func:`mmtune.registry.validate_params`.
"""

from __future__ import annotations

from mmtune.registry import Registry

BACKBONES: Registry = Registry("backbone")
CLINICAL_ENCODERS: Registry = Registry("clinical encoder")
FUSIONS: Registry = Registry("fusion")
HEADS: Registry = Registry("head")
SHARINGS: Registry = Registry("sharing")
REFERENCES: Registry = Registry("reference model")  # model.reference: no network (mmtune.models.gbdt)

_POPULATING_MODULES = (
    "mmtune.models.backbones",
    "mmtune.models.backbones3d",
    "mmtune.models.unet",
    "mmtune.models.external_backbones",  # timm:<name> and monai:<Class> namespaces  # U-Net contracting path (designs: U-Net-style encoder-decoder)
    "mmtune.models.tabular",
    "mmtune.models.ft_transformer",
    "mmtune.models.fusion",
    "mmtune.models.fusion_factorized",
    "mmtune.models.fusion_backbone",
    "mmtune.models.fusion_missing",
    "mmtune.models.heads",
    "mmtune.models.sharing",
    "mmtune.models.gbdt",
)


def load_registries() -> dict[str, Registry]:
    """Import the modules that register model components (torch is imported; timm and MONAI only when building)."""
    import importlib

    for module in _POPULATING_MODULES:
        importlib.import_module(module)
    return {
        "backbones": BACKBONES,
        "clinical_encoders": CLINICAL_ENCODERS,
        "fusions": FUSIONS,
        "heads": HEADS,
        "sharings": SHARINGS,
        "references": REFERENCES,
    }
