"""The component registries chosen by name from YAML, and how their user-facing ``params`` are found and checked.

Convention for every factory: context arguments supplied by mmtune (input channels, feature widths, task names)
are positional; everything a user may set under ``params:`` is keyword-only with a type hint and a default. That
lets ``mmtune.config.checks`` validate ``params`` from the signature alone, without building anything.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from mmtune.errors import ConfigError
from mmtune.registry import Entry, Registry

BACKBONES: Registry = Registry("backbone")
CLINICAL_ENCODERS: Registry = Registry("clinical encoder")
FUSIONS: Registry = Registry("fusion")
HEADS: Registry = Registry("head")
WEIGHTINGS: Registry = Registry("weighting")
TASK_LOSSES: Registry = Registry("task loss")

_POPULATING_MODULES = (
    "mmtune.models.backbones",
    "mmtune.models.backbones3d",
    "mmtune.models.unet",  # U-Net contracting path (designs: U-Net-style encoder-decoder)
    "mmtune.models.tabular",
    "mmtune.models.fusion",
    "mmtune.models.heads",
    "mmtune.losses.tasks",
    "mmtune.losses.weighting",
)


def load_registries() -> dict[str, Registry]:
    """Import the modules that register components (torch is imported; timm and MONAI only when building)."""
    import importlib

    for module in _POPULATING_MODULES:
        importlib.import_module(module)
    return {
        "backbones": BACKBONES,
        "clinical_encoders": CLINICAL_ENCODERS,
        "fusions": FUSIONS,
        "heads": HEADS,
        "weightings": WEIGHTINGS,
        "losses": TASK_LOSSES,
    }


def _signature_target(factory: Callable[..., Any]) -> Callable[..., Any]:
    return factory.__init__ if inspect.isclass(factory) else factory


def user_params(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of a factory: what a user may set under ``params:``."""
    signature = inspect.signature(_signature_target(factory))
    return {name: p for name, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def validate_params(entry: Entry, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check ``params`` against the keyword-only signature of ``entry``'s factory; return them coerced.

    Unknown keys and wrong types are a one-line ``ConfigError`` naming ``<where>.<key>`` and what is allowed.
    """
    allowed = user_params(entry.factory)
    for key in params:
        if key not in allowed:
            known = ", ".join(allowed) or "(none)"
            raise ConfigError(f"unknown parameter {key!r} at {where}.{key}; {entry.name!r} accepts: {known}")
    hints = typing.get_type_hints(_signature_target(entry.factory))
    fields = {name: (hints.get(name, Any), p.default) for name, p in allowed.items() if name in params}
    checker = create_model(  # type: ignore[call-overload]
        f"{entry.name}_params", __config__=ConfigDict(arbitrary_types_allowed=True, extra="forbid"), **fields
    )
    try:
        checked = checker.model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}.{key}: {first['msg']} (got {first.get('input')!r})") from None
    return {name: getattr(checked, name) for name in params}
