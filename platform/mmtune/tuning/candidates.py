"""Every combination of a search space (or an ablation study's cells) against pydantic and the registries
(``mmtune.validation.check_run_config``, with the data's manifest when known), before Ray starts."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mmtune.config.loading import format_validation_error, get_dotted
from mmtune.config.run import RunConfig
from mmtune.config.search import SpaceEntry
from mmtune.errors import ConfigError, UnknownComponentError, UserError
from mmtune.tuning.combinations import apply_assignment, count_combinations, is_active, iter_combinations

if TYPE_CHECKING:
    from mmtune.tuning.space import SearchSpace

# Most combinations of discrete values checked one by one; larger spaces are checked on a random subset.
MAX_CHECKED_COMBINATIONS = 2000

CheckFn = Callable[[RunConfig], None]


def component_checker(manifest: Any = None) -> CheckFn:
    """``mmtune.validation.check_run_config`` bound to the data's manifest when one is available (quiet: its
    warnings are for one run, not for every combination)."""
    from mmtune.validation import check_run_config

    return lambda run: check_run_config(run, manifest=manifest, quiet=True)


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
