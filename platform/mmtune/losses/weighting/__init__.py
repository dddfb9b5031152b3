"""Task-loss weightings: ``build_weighting(cfg, tasks, model)`` -> a ``Weighting`` module.

One module per family member (equal, static, uncertainty, dwa, famo; gradnorm, pcgrad, cagrad, nash_mtl); the
shared interface and the DDP / label-mask rules are in ``base``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from mmtune.config.run import TaskConfig, WeightingConfig
from mmtune.errors import ConfigError
from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting import (  # noqa: F401
    cagrad,
    db_mtl,
    dwa,
    equal,
    famo,
    gradnorm,
    jacobian,
    loss_based,
    nash_mtl,
    pcgrad,
    static,
    uncertainty,
)
from mmtune.losses.weighting.base import GradientWeighting, StepInfo, Weighting, WeightingContext
from mmtune.registry import validate_params
from mmtune.tasks import TaskKind, TaskSpec

__all__ = ["WEIGHTINGS", "GradientWeighting", "StepInfo", "Weighting", "WeightingContext", "build_weighting"]


def build_weighting(
    cfg: WeightingConfig,
    tasks: Sequence[str | TaskConfig | TaskSpec],
    model: nn.Module | None = None,
    *,
    kinds: Mapping[str, TaskKind | str] | None = None,
) -> Weighting:
    """Build the weighting named by ``cfg`` for ``tasks`` (names, run-config ``TaskConfig``s or ``TaskSpec``s).

    Static weights come from ``TaskConfig.weight``; task kinds (uncertainty's classification / regression forms)
    from ``TaskSpec``s, ``model.tasks`` or ``kinds``. ``cfg.params`` are checked against the weighting's signature.
    """
    entry = WEIGHTINGS.entry(cfg.name, "weighting.name")
    params = validate_params(entry, cfg.params, "weighting.params")
    names = [t if isinstance(t, str) else t.name for t in tasks]
    static_weights = {t.name: t.weight for t in tasks if isinstance(t, TaskConfig)}
    task_kinds: dict[str, TaskKind] = {}
    for spec in getattr(model, "tasks", []) or []:
        if isinstance(spec, TaskSpec):
            task_kinds[spec.name] = spec.kind
    task_kinds.update({t.name: t.kind for t in tasks if isinstance(t, TaskSpec)})
    task_kinds.update({k: TaskKind(v) for k, v in (kinds or {}).items()})
    context = WeightingContext(kinds=task_kinds, static_weights=static_weights, model=model)
    try:
        weighting: Any = entry.factory(names, context, **params)
    except ValueError as exc:
        raise ConfigError(
            f"weighting.params.{exc}" if ":" in str(exc).split()[0] else f"weighting.params: {exc}"
        ) from None
    return weighting
