"""Every component registry chosen by name from YAML, filled: what ``mmtune list`` and the run checks read.

It sits above ``config`` (source layouts), ``models`` and ``losses`` (each keeps its registries beside what they register), so neither needs
the other to be complete.
"""

from __future__ import annotations

from mmtune.registry import Registry


def load_registries() -> dict[str, Registry]:
    """Category -> filled registry (backbones, clinical encoders, fusions, heads, weightings, task losses, source
    layouts)."""
    from mmtune.config.card import SOURCE_LAYOUTS
    from mmtune.losses import registries as losses
    from mmtune.models import registries as models

    return {**models.load_registries(), **losses.load_registries(), "layouts": SOURCE_LAYOUTS}
