"""Tiny name -> factory registries (timm style) so every component is chosen by name from YAML.

Convention for every factory: context arguments supplied by mmtune (input channels, feature widths, task names)
are positional; everything a user may set under ``params:`` is keyword-only with a type hint and a default. That
lets :func:`validate_params` check ``params`` from the signature alone, without building anything.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import ConfigDict, ValidationError, create_model

from mmtune.errors import ConfigError, UnknownComponentError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry:
    """One registered component: its factory, a one-line description and free-form tags."""

    name: str
    factory: Callable[..., Any]
    description: str
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass
class Namespace:
    """Names ``<prefix>:<rest>`` resolved by ``resolve(rest)`` (an ``Entry`` or ``None`` if unknown) instead of
    being registered one by one (any timm model, any MONAI network); ``candidates()`` lists the valid ``rest``
    values for the close-match hint of an unknown name. Resolved entries are cached."""

    prefix: str
    what: str
    resolve: Callable[[str], Entry | None]
    candidates: Callable[[], list[str]]
    _cache: dict[str, Entry] = field(default_factory=dict)

    def entry(self, rest: str, where: str | None = None) -> Entry:
        if rest not in self._cache:
            found = self.resolve(rest) if rest else None
            if found is None:
                at = f" at {where}" if where else ""
                close = difflib.get_close_matches(rest, self.candidates(), n=3, cutoff=0.6)
                hint = (
                    "did you mean " + " or ".join(repr(f"{self.prefix}:{c}") for c in close) + "?"
                    if close
                    else f"known names: {self.what}"
                )
                raise UnknownComponentError(f"unknown {self.prefix} model {rest!r}{at}; {hint}")
            self._cache[rest] = found
        return self._cache[rest]


class Registry(Generic[F]):
    """Maps names to factories; unknown names raise with the list of known ones."""

    def __init__(self, kind: str, populate: str | None = None) -> None:
        """``populate``: the module whose import registers the entries, imported on first lookup (by name, so a
        registry declared in a lower layer is filled by the components above it without importing them)."""
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._populate = populate
        self._namespaces: dict[str, Namespace] = {}

    def _filled(self) -> dict[str, Entry]:
        if self._populate is not None:
            module, self._populate = self._populate, None
            importlib.import_module(module)
        return self._entries

    def register(self, name: str, description: str = "", **tags: Any) -> Callable[[F], F]:
        """Decorator registering ``factory`` under ``name``; the description defaults to its docstring."""

        def decorator(factory: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            text = description or next(iter((factory.__doc__ or "").strip().splitlines()), "")
            self._entries[name] = Entry(name, factory, text, dict(tags))
            return factory

        return decorator

    def add_namespace(self, namespace: Namespace) -> None:
        """Resolve names ``<prefix>:<rest>`` (e.g. ``timm:convnext_nano``) through ``namespace`` on lookup."""
        if namespace.prefix in self._namespaces:
            raise ValueError(f"{self.kind} namespace {namespace.prefix!r} is added twice")
        self._namespaces[namespace.prefix] = namespace

    def namespaces(self) -> list[Namespace]:
        self._filled()
        return list(self._namespaces.values())

    def entry(self, name: str, where: str | None = None) -> Entry:
        """The entry for ``name``; ``where`` (a YAML key path) is named in the error."""
        entries = self._filled()
        prefix, sep, rest = str(name).partition(":")
        if sep and prefix in self._namespaces:
            return self._namespaces[prefix].entry(rest, where)
        try:
            return entries[name]
        except KeyError:
            at = f" at {where}" if where else ""
            known = ", ".join(sorted(self._entries)) or "(none)"
            close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
            spaces = "".join(f"; or {ns.prefix}:<name> ({ns.what})" for ns in self._namespaces.values())
            raise UnknownComponentError(f"unknown {self.kind} {name!r}{at}; {hint}known: {known}{spaces}") from None

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
        return sorted(self._filled())

    def registration_order(self) -> list[str]:
        """The names in the order they were registered (for messages that have always listed them so)."""
        return list(self._filled())

    def __contains__(self, name: object) -> bool:
        return name in self._filled()

    def __iter__(self) -> Iterator[Entry]:
        entries = self._filled()
        return iter(entries[name] for name in sorted(entries))

    def __len__(self) -> int:
        return len(self._filled())


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
