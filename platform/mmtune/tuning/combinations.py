"""Combinations of a search space: enumerate, count, sample and apply assignments (dotted key -> value), with
conditional keys only where their condition holds."""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mmtune.config.loading import get_dotted, set_dotted
from mmtune.config.search import SpaceEntry

if TYPE_CHECKING:
    from mmtune.tuning.space import SearchSpace


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
