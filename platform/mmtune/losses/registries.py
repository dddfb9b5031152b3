"""The loss components' registries (loss weightings and per-task losses), chosen by name from YAML.

Each weighting (``mmtune.losses.weighting.*``) and task loss (``mmtune.losses.tasks``) registers here, beside
what it registers; the model components register in :mod:`mmtune.models.registries`.
"""

from __future__ import annotations

from mmtune.registry import Registry

WEIGHTINGS: Registry = Registry("weighting")
TASK_LOSSES: Registry = Registry("task loss")

_POPULATING_MODULES = ("mmtune.losses.tasks", "mmtune.losses.weighting")


def load_registries() -> dict[str, Registry]:
    """Import the modules that register weightings and task losses (torch is imported)."""
    import importlib

    for module in _POPULATING_MODULES:
        importlib.import_module(module)
    return {"weightings": WEIGHTINGS, "losses": TASK_LOSSES}
