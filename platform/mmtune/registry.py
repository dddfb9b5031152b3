"""Tiny name -> factory registries (timm style) so every component is chosen by name from YAML."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mmtune.errors import UnknownComponentError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry:
    """One registered component: its factory, a one-line description and free-form tags."""

    name: str
    factory: Callable[..., Any]
    description: str
    tags: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[F]):
    """Maps names to factories; unknown names raise with the list of known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str = "", **tags: Any) -> Callable[[F], F]:
        """Decorator registering ``factory`` under ``name``; the description defaults to its docstring."""

        def decorator(factory: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            text = description or next(iter((factory.__doc__ or "").strip().splitlines()), "")
            self._entries[name] = Entry(name, factory, text, dict(tags))
            return factory

        return decorator

    def entry(self, name: str, where: str | None = None) -> Entry:
        """The entry for ``name``; ``where`` (a YAML key path) is named in the error."""
        try:
            return self._entries[name]
        except KeyError:
            at = f" at {where}" if where else ""
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownComponentError(f"unknown {self.kind} {name!r}{at}; known: {known}") from None

    def get(self, name: str, where: str | None = None) -> Callable[..., Any]:
        """The factory registered under ``name``."""
        return self.entry(name, where).factory

    def build(self, name: str, *args: Any, where: str | None = None, **kwargs: Any) -> Any:
        """Call the factory registered under ``name``."""
        return self.get(name, where)(*args, **kwargs)

    def check(self, name: str, where: str | None = None) -> None:
        """Raise the unknown-name error without building anything."""
        self.entry(name, where)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[name] for name in sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
