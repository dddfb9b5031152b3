"""Training: the Lightning module, masked metrics, ``fit`` (one run) and the Ray Tune trial function.

``from mmtune.training import fit, FitResult, run_trial`` works without importing torch until one is used.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "fit": "mmtune.training.fit",
    "FitResult": "mmtune.training.fit",
    "run_trial": "mmtune.training.trial",
    "MultiTaskModule": "mmtune.training.module",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mmtune.training' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
