"""Key paths of a search space: every space key and condition must name a ``RunConfig`` key; nesting; the order
in which conditions are decided before the keys they activate (cycles are errors)."""

from __future__ import annotations

import itertools
import types
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mmtune.config.run import RunConfig
from mmtune.errors import ConfigError

if TYPE_CHECKING:
    from mmtune.tuning.space import SearchSpace


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


def check_nesting(space: SearchSpace) -> None:
    """A searched key inside another searched key (searched as a whole) is an error."""
    keys = sorted(space.entries)
    for a, b in itertools.combinations(keys, 2):
        if b.startswith(a + "."):
            raise ConfigError(f"{space.where(b)}: lies inside space.{a}, which is searched as a whole")


def dependency_order(space: SearchSpace) -> list[str]:
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
