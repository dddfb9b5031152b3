"""Search space YAML -> a validated ``SearchSpace`` -> a Ray Tune param space.

Everything a user can get wrong is found here, before Ray starts: unknown or misspelt key paths (every space key
must exist in ``RunConfig``), conditions on keys that do not exist, samplers the chosen search algorithm cannot
use, component names missing from the registries (every ``choice``/``grid`` value is checked), and spaces whose
combinations are all invalid. Trials receive the full run config as a nested dict (the base with the sampled
values set at their dotted paths) under ``run``, beside study metadata (see ``mmtune.tuning.trial_entry``).
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from mmtune.config.loading import (
    format_validation_error,
    get_dotted,
    load_base,
    load_yaml,
    parse_overrides,
    set_dotted,
    validate,
)
from mmtune.config.run import RunConfig
from mmtune.config.search import SearchSpaceConfig, SpaceEntry
from mmtune.errors import ConfigError, UnknownComponentError, UserError

if TYPE_CHECKING:
    from mmtune.config.study import StudyConfig

# Value a conditional key gets in Tune's config when its condition does not hold; stripped before the trial runs.
INACTIVE = "__mmtune_inactive__"
RUN_KEY = "run"  # the run config inside a trial's Tune config (mmtune.training.trial's contract)
TRIAL_META_KEY = "mmtune"  # driver metadata inside a trial's Tune config
# Most combinations of discrete values checked one by one; larger spaces are checked on a random subset.
MAX_CHECKED_COMBINATIONS = 2000


@dataclass
class SearchSpace:
    """A validated search space: the file's settings plus the resolved base run config (absolute paths)."""

    path: Path
    config: SearchSpaceConfig
    base: dict[str, Any]
    name: str
    metric: str
    mode: str
    max_t: int
    order: list[str] = field(default_factory=list)  # space keys, conditions before the keys that depend on them

    @property
    def entries(self) -> dict[str, SpaceEntry]:
        return self.config.space

    def where(self, key: str) -> str:
        return f"{self.path}: space.{key}"


# ---------------------------------------------------------------------------------------------------- loading


def load_search_space(
    path: str | Path, overrides: list[str] | Mapping[str, Any] | None = None, name: str | None = None
) -> SearchSpace:
    """Load, override (``--set k=v``) and validate a search-space file; no registry or data checks yet."""
    path = Path(path)
    raw = load_yaml(path)
    raw["base"] = load_base(raw.get("base"), path)
    items = parse_overrides(list(overrides)) if isinstance(overrides, list) else dict(overrides or {})
    for key, value in items.items():
        _apply_override(raw, key, value)
    if name is not None:
        raw["name"] = name
    cfg = validate(SearchSpaceConfig, raw, str(path))
    base = merge_data(copy.deepcopy(cfg.base), cfg)
    if cfg.scheduler.max_t is not None:
        set_dotted(base, "trainer.max_epochs", cfg.scheduler.max_t)
    run = validate(RunConfig, base, f"{path}: base", ())
    base = absolute_paths(run.model_dump(mode="json"))
    space = SearchSpace(
        path=path,
        config=cfg,
        base=base,
        name=cfg.name or path.stem,
        metric=cfg.metric or run.trainer.monitor,
        mode=cfg.mode or run.trainer.mode,
        max_t=cfg.scheduler.max_t or run.trainer.max_epochs,
    )
    for key, entry in cfg.space.items():
        check_key_path(key, f"{path}: space.{key}")
        for cond in entry.conditions():
            check_key_path(cond, f"{path}: space.{key}.when.{cond}")
            if cond == key:
                raise ConfigError(f"{path}: space.{key}.when: a key cannot depend on itself")
        if entry.when and entry.kind == "grid":
            raise ConfigError(f"{path}: space.{key}: a conditional entry is sampled per trial; use choice, not grid")
        if cfg.search.name == "optuna" and entry.kind == "grid":
            raise ConfigError(
                f"{path}: space.{key}: grid is not supported with search: optuna (TPE samples); use choice"
            )
    _check_nesting(space)
    space.order = _dependency_order(space)
    return space


def _apply_override(raw: dict[str, Any], key: str, value: Any) -> None:
    """``--set`` on the space file; ``space.<dotted key>...`` addresses a space entry whose name holds dots."""
    if not key.startswith("space."):
        if key.startswith("base.") and not isinstance(raw.get("base"), dict):
            raise ConfigError(f"--set {key}: the search space has no base mapping")
        set_dotted(raw, key, value)
        return
    rest = key[len("space.") :]
    space = raw.setdefault("space", {})
    if not isinstance(space, dict):
        raise ConfigError(f"--set {key}: space is not a mapping")
    for existing in sorted(space, key=len, reverse=True):
        if rest == existing:
            space[existing] = value
            return
        if rest.startswith(existing + ".") and isinstance(space[existing], dict):
            set_dotted(space[existing], rest[len(existing) + 1 :], value)
            return
    space[rest] = value


def merge_data(base: dict[str, Any], cfg: SearchSpaceConfig | StudyConfig) -> dict[str, Any]:
    """The file's top-level ``data:`` (path / card / source) over the base run config's ``data``."""
    if cfg.data is None:
        return base
    data = base.get("data")
    if not isinstance(data, dict):
        data = {}
        base["data"] = data
    for key in ("path", "card", "source"):
        value = getattr(cfg.data, key)
        if value is not None:
            data[key] = value
    return base


def absolute_path(value: Any) -> Any:
    """Absolute local paths; URLs (``aim://head:53800`` for a remote Aim server) stay as they are."""
    if not isinstance(value, str) or not value or "://" in value:
        return value
    return str(Path(value).expanduser().resolve())


def absolute_paths(base: dict[str, Any]) -> dict[str, Any]:
    """Trials run with another working directory (and on other nodes): every path they read must be absolute."""
    data = base["data"]
    if isinstance(data.get("path"), list):
        for source in data["path"]:
            source["path"] = absolute_path(source["path"])
    else:
        data["path"] = absolute_path(data.get("path"))
    data["card"] = absolute_path(data.get("card"))
    data["source"] = absolute_path(data.get("source"))
    base["tracking"]["aim_repo"] = absolute_path(base["tracking"].get("aim_repo"))
    base["model"]["backbone"]["pretrained"] = absolute_path(base["model"]["backbone"].get("pretrained"))
    base["output_dir"] = absolute_path(base.get("output_dir"))
    return base


# ---------------------------------------------------------------------------------------------------- key paths


def _unwrap(annotation: Any) -> list[Any]:
    """The members of a (possibly optional) union annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def check_key_path(dotted: str, where: str) -> None:
    """Raise a ``ConfigError`` unless ``dotted`` names a key of ``RunConfig`` (free-form ``params`` accept any key)."""
    node: Any = RunConfig
    walked: list[str] = []
    for part in dotted.split("."):
        members = _unwrap(node)
        model = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), None)
        free = any(typing.get_origin(m) is dict or m is dict or m is Any for m in members)
        if model is not None and part in model.model_fields:
            node = model.model_fields[part].annotation
        elif free:
            return  # a free-form mapping (``params``): the component's signature is checked with each candidate
        elif model is not None:
            at = ".".join(walked) or "the run config"
            known = ", ".join(model.model_fields)
            raise ConfigError(f"{where}: {'.'.join([*walked, part])!r} is not a run config key; {at} has: {known}")
        else:
            raise ConfigError(f"{where}: {'.'.join(walked)!r} is a value, not a mapping; it has no key {part!r}")
        walked.append(part)


def _check_nesting(space: SearchSpace) -> None:
    keys = sorted(space.entries)
    for a, b in itertools.combinations(keys, 2):
        if b.startswith(a + "."):
            raise ConfigError(f"{space.where(b)}: lies inside space.{a}, which is searched as a whole")


def _dependency_order(space: SearchSpace) -> list[str]:
    """Space keys ordered so that conditions are decided before the keys they activate (cycles are errors)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(key: str, chain: list[str]) -> None:
        if state.get(key) == 2:
            return
        if state.get(key) == 1:
            raise ConfigError(f"{space.where(key)}.when: circular condition ({' -> '.join([*chain, key])})")
        state[key] = 1
        for cond in space.entries[key].conditions():
            if cond in space.entries:
                visit(cond, [*chain, key])
        state[key] = 2
        order.append(key)

    for key in space.entries:
        visit(key, [])
    return order


# ---------------------------------------------------------------------------------------------------- candidates


def is_active(entry: SpaceEntry, assigned: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    """Whether a conditional entry applies, given the values assigned so far (else the base's values)."""
    for key, accepted in entry.conditions().items():
        value = assigned[key] if key in assigned else get_dotted(base, key)
        if value not in accepted:
            return False
    return True


def iter_combinations(space: SearchSpace) -> Iterator[dict[str, Any]]:
    """Every combination of discrete values and range bounds, conditional keys only where their condition holds."""
    order = space.order

    def rec(i: int, current: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(order):
            yield dict(current)
            return
        key = order[i]
        entry = space.entries[key]
        if not is_active(entry, current, space.base):
            yield from rec(i + 1, current)
            return
        for value in entry.values:
            current[key] = value
            yield from rec(i + 1, current)
            del current[key]

    yield from rec(0, {})


def count_combinations(space: SearchSpace, limit: int = 10**7) -> int:
    """Number of ``iter_combinations`` (counting stops at ``limit``)."""
    return sum(1 for _ in itertools.islice(iter_combinations(space), limit))


def sample_assignment(space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    """One random draw of the space (what a random-search trial may get); inactive keys are absent."""
    out: dict[str, Any] = {}
    for key in space.order:
        entry = space.entries[key]
        if not is_active(entry, out, space.base):
            continue
        kind = entry.kind
        if kind in ("choice", "grid"):
            out[key] = rng.choice(entry.values)
        elif kind == "uniform":
            out[key] = rng.uniform(*entry.uniform)  # type: ignore[misc]
        elif kind == "loguniform":
            lo, hi = entry.loguniform  # type: ignore[misc]
            out[key] = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        else:
            lo, hi = entry.randint  # type: ignore[misc]
            out[key] = rng.randint(lo, hi)
    return out


def apply_assignment(base: Mapping[str, Any], assignment: Mapping[str, Any]) -> dict[str, Any]:
    """The base run config with each dotted key of ``assignment`` set (a new dict)."""
    out = copy.deepcopy(dict(base))
    for key, value in assignment.items():
        set_dotted(out, key, copy.deepcopy(value))
    return out


def trial_count(space: SearchSpace) -> int:
    """How many trials Tune will run: grid points x ``num_samples`` (every unconditional choice is a grid point
    under ``search: grid``)."""
    cfg = space.config
    points = 1
    for entry in space.entries.values():
        if entry.kind == "grid" or (cfg.search.name == "grid" and entry.kind == "choice" and not entry.when):
            points *= len(entry.values)
    return points * cfg.num_samples


# ---------------------------------------------------------------------------------------------------- registries


CheckFn = Callable[[RunConfig], None]


def component_checker(manifest: Any = None) -> CheckFn:
    """``mmtune.validation.check_run_config`` bound to the data's manifest when one is available.

    Falls back to pydantic validation alone while the registries are not installed (an older checkout).
    """
    try:
        from mmtune.validation import check_run_config
    except ImportError:  # pragma: no cover - depends on the model zoo being present
        return lambda run: None
    import inspect

    params = inspect.signature(check_run_config).parameters
    if "manifest" in params and "quiet" in params:  # warnings are for one run, not for every combination
        return lambda run: check_run_config(run, manifest=manifest, quiet=True)
    if "manifest" in params:
        return lambda run: check_run_config(run, manifest=manifest)
    if len(params) > 1 and manifest is not None:
        return lambda run: check_run_config(run, manifest)
    return lambda run: check_run_config(run)


@dataclass
class CandidateReport:
    """What checking every combination found."""

    checked: int
    valid: int
    total: int
    first_invalid: tuple[dict[str, Any], str] | None = None

    @property
    def invalid(self) -> int:
        return self.checked - self.valid


def _check_one(space: SearchSpace, assignment: Mapping[str, Any], check: CheckFn) -> tuple[str, bool] | None:
    """``None`` if valid, else (message, whether the problem is the value itself rather than the combination)."""
    config = apply_assignment(space.base, assignment)
    try:
        run = RunConfig.model_validate(config)
    except ValidationError as exc:
        return format_validation_error(exc, "run config").removeprefix("run config: "), True
    try:
        check(run)
    except UnknownComponentError as exc:
        return str(exc), True
    except UserError as exc:
        return str(exc), False
    return None


def check_candidates(space: SearchSpace, manifest: Any = None, seed: int = 0) -> CandidateReport:
    """Check combinations against pydantic and the registries; raise for values that can never work.

    Errors (each one line naming the key path): a ``choice``/``grid`` value or range bound that is invalid on
    its own (e.g. an unregistered fusion name), a value that is invalid in every combination, and a space with
    no valid combination at all. Some invalid combinations are only counted (the caller warns).
    """
    check = component_checker(manifest)
    if _check_one(space, {}, check) is None:  # names and types that are wrong whatever else is chosen
        for key in space.order:
            for value in space.entries[key].values:
                problem = _check_one(space, _isolated(space, key, value), check)
                if problem is not None and problem[1]:
                    what = _what(space.entries[key])
                    raise ConfigError(f"{space.where(key)}: {what} {value!r} is invalid: {problem[0]}")
    total = count_combinations(space, MAX_CHECKED_COMBINATIONS + 1)
    if total <= MAX_CHECKED_COMBINATIONS:
        combos = list(iter_combinations(space))
    else:
        rng = random.Random(seed)
        combos = [_bounds_draw(space, rng) for _ in range(MAX_CHECKED_COMBINATIONS)]
    report = CandidateReport(checked=len(combos), valid=0, total=total)
    works: dict[tuple[str, str], bool] = {}
    failure: dict[tuple[str, str], str] = {}
    for assignment in combos:
        problem = _check_one(space, assignment, check)
        error = None if problem is None else problem[0]
        if error is None:
            report.valid += 1
        elif report.first_invalid is None:
            report.first_invalid = (assignment, error)
        for key, value in assignment.items():
            slot = (key, repr(value))
            works[slot] = works.get(slot, False) or error is None
            if error is not None:
                failure.setdefault(slot, error)
    if report.valid == 0:
        assignment, error = report.first_invalid  # type: ignore[misc]
        shown = ", ".join(f"{k}={v!r}" for k, v in assignment.items()) or "the base config"
        raise ConfigError(f"{space.path}: no combination of the space is valid; e.g. {shown}: {error}")
    for key in space.order:
        for value in space.entries[key].values:
            slot = (key, repr(value))
            if slot in works and not works[slot]:
                what = _what(space.entries[key])
                raise ConfigError(
                    f"{space.where(key)}: {what} {value!r} is never valid with the rest of the space: {failure[slot]}"
                )
    return report


def _what(entry: SpaceEntry) -> str:
    return "value" if entry.is_discrete else "bound"


def _isolated(space: SearchSpace, key: str, value: Any) -> dict[str, Any]:
    """``key = value`` on the base, plus the first accepted value of each condition that activates it."""
    out: dict[str, Any] = {}
    pending = [key]
    while pending:
        current = pending.pop()
        for cond, accepted in space.entries[current].conditions().items():
            if cond not in out and get_dotted(space.base, cond) not in accepted:
                out[cond] = accepted[0]
                if cond in space.entries:
                    pending.append(cond)
    out[key] = value
    return out


def _bounds_draw(space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in space.order:
        entry = space.entries[key]
        if is_active(entry, out, space.base):
            out[key] = rng.choice(entry.values)
    return out


# ---------------------------------------------------------------------------------------------------- Ray Tune


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


def strip_inactive(config: Any) -> Any:
    """Drop keys whose value is ``INACTIVE`` (conditional keys whose condition did not hold)."""
    if isinstance(config, dict):
        return {k: strip_inactive(v) for k, v in config.items() if not (isinstance(v, str) and v == INACTIVE)}
    if isinstance(config, list):
        return [strip_inactive(v) for v in config]
    return config


def searched_values(space_keys: list[str], config: Mapping[str, Any]) -> dict[str, Any]:
    """The values a trial got for the searched keys (``None`` where inactive); ``config`` is a trial's Tune config."""
    out = {}
    for key in space_keys:
        value = get_dotted(config.get(RUN_KEY) or {}, key)
        out[key] = None if value == INACTIVE else value
    return out
