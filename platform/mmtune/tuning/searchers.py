"""Translation of a search space to Ray Tune: the param space (Tune samplers at the searched keys), the Optuna
define-by-run space, and the search algorithm for ``search.name`` (beside ``schedulers``, which picks the trial
scheduler)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mmtune.config.loading import get_dotted, set_dotted
from mmtune.config.search import SpaceEntry
from mmtune.trial_config import INACTIVE, RUN_KEY
from mmtune.tuning.combinations import is_active

if TYPE_CHECKING:
    from mmtune.tuning.space import SearchSpace


class _Conditional:
    """``tune.sample_from`` body of a conditional key: sample when the condition holds, else mark inactive."""

    def __init__(self, key: str, domain: Any, conditions: dict[str, list[Any]], base: dict[str, Any]) -> None:
        self.key = key
        self.domain = domain
        self.conditions = conditions
        self.base = base

    def __call__(self, config: dict[str, Any]) -> Any:
        from ray.tune.search.sample import Domain
        from ray.tune.search.variant_generator import RecursiveDependencyError

        for key, accepted in self.conditions.items():
            value = get_dotted(config.get(RUN_KEY) or {}, key, INACTIVE)
            if isinstance(value, Domain):  # the condition's own key is not sampled yet: Tune retries this later
                raise RecursiveDependencyError(f"{self.key} waits for {key}")
            if value == INACTIVE:
                value = get_dotted(self.base, key)
            if value not in accepted:
                return INACTIVE
        return self.domain.sample()


def tune_domain(entry: SpaceEntry, as_grid: bool = False) -> Any:
    """The Ray Tune sampler for one entry (``randint`` bounds are inclusive)."""
    from ray import tune

    kind = entry.kind
    if kind == "grid" or (kind == "choice" and as_grid):
        return tune.grid_search(entry.values)
    if kind == "choice":
        return tune.choice(entry.values)
    if kind == "uniform":
        return tune.uniform(*entry.uniform)  # type: ignore[misc]
    if kind == "loguniform":
        return tune.loguniform(*entry.loguniform)  # type: ignore[misc]
    lo, hi = entry.randint  # type: ignore[misc]
    return tune.randint(lo, hi + 1)


def param_space(space: SearchSpace, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Tune's ``param_space``: ``{"run": base with a Tune sampler at each searched key, **fields}``.

    With ``search: optuna`` the samplers are left out (Optuna's define-by-run function proposes them).
    """
    from ray import tune

    config = copy.deepcopy(space.base)
    if space.config.search.name != "optuna":
        grid = space.config.search.name == "grid"
        for key in space.order:
            entry = space.entries[key]
            domain = tune_domain(entry, as_grid=grid and not entry.when)
            if entry.when:
                domain = tune.sample_from(_Conditional(key, tune_domain(entry), entry.conditions(), space.base))
            set_dotted(config, key, domain)
    return {RUN_KEY: config, **copy.deepcopy(dict(fields))}


class OptunaSpace:
    """Optuna define-by-run function: conditional keys are only suggested when their condition holds."""

    def __init__(self, space: SearchSpace) -> None:
        self.order = list(space.order)
        self.entries = dict(space.entries)
        self.base = space.base

    def __call__(self, trial: Any) -> None:
        chosen: dict[str, Any] = {}
        for key in self.order:
            entry = self.entries[key]
            if not is_active(entry, chosen, self.base):
                continue
            name = f"{RUN_KEY}/" + key.replace(".", "/")  # Tune unflattens "/" into the nested config
            kind = entry.kind
            if kind == "choice":
                chosen[key] = trial.suggest_categorical(name, entry.values)
            elif kind == "uniform":
                chosen[key] = trial.suggest_float(name, *entry.uniform)
            elif kind == "loguniform":
                chosen[key] = trial.suggest_float(name, *entry.loguniform, log=True)
            else:
                chosen[key] = trial.suggest_int(name, *entry.randint)


def search_algorithm(space: SearchSpace, max_concurrent: int = 0) -> Any:
    """Tune search algorithm for ``search.name``: seeded random/grid variants or Optuna TPE.

    ``max_concurrent`` caps random/grid variants here (Tune ignores ``max_concurrent_trials`` for them); Optuna
    is a ``Searcher``, which ``TuneConfig(max_concurrent_trials=...)`` caps.
    """
    cfg = space.config.search
    if cfg.name == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        sampler = optuna.samplers.TPESampler(seed=cfg.seed)
        return OptunaSearch(space=OptunaSpace(space), metric=space.metric, mode=space.mode, sampler=sampler)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=cfg.seed, max_concurrent=max_concurrent)


def searched_values(space_keys: list[str], config: Mapping[str, Any]) -> dict[str, Any]:
    """The values a trial got for the searched keys (``None`` where inactive); ``config`` is a trial's Tune config."""
    out = {}
    for key in space_keys:
        value = get_dotted(config.get(RUN_KEY) or {}, key)
        out[key] = None if value == INACTIVE else value
    return out
