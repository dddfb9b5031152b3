"""YAML loading and pydantic validation that turn every mistake into a one-line error naming the key path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mmtune.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config model: unknown (misspelt) keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load``; missing files and syntax errors become ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def key_path(loc: tuple[Any, ...]) -> str:
    """Join a pydantic error location into a dotted YAML key path (list indices as ``[i]``)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _describe(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (misspelt?)"
    if kind == "missing":
        return "required key is missing"
    msg = str(error.get("msg", "invalid value"))
    if kind == "value_error":  # a model validator's own sentence: it already says what was expected
        return msg.removeprefix("Value error, ")
    if "input" in error and kind not in ("missing",):
        value = error["input"]
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f"{msg} (got {shown})"
    return msg


def format_validation_error(exc: ValidationError, source: str, prefix: tuple[Any, ...] = ()) -> str:
    """One line: ``source: key.path: what was expected`` for the first error (+N more)."""
    errors = exc.errors()
    first = errors[0]
    loc = tuple(prefix) + tuple(p for p in first["loc"] if not _is_union_tag(p))
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {key_path(loc)}: {_describe(first)}{more}"


def _is_union_tag(part: Any) -> bool:
    # pydantic inserts the chosen union member / function name into the location; keep only real keys.
    return isinstance(part, str) and (part.startswith("function-") or part in {"tagged-union"})


def validate(model: type[M], data: Any, source: str, prefix: tuple[Any, ...] = ()) -> M:
    """Validate ``data`` against ``model``; any problem becomes a one-line ``ConfigError``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, prefix)) from None


def load_model(model: type[M], path: str | Path) -> M:
    """Load a YAML file and validate it as ``model``."""
    return validate(model, load_yaml(path), str(path))


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c = value`` inside nested dicts, creating mappings on the way (for ``--set`` overrides)."""
    parts = dotted.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part) if isinstance(node, dict) else None
        if nxt is None:
            nxt = {}
            node[part] = nxt
        elif not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: {'.'.join(parts[: i + 1])} is not a mapping")
        node = nxt
    node[parts[-1]] = value


def get_dotted(data: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """Read ``a.b.c`` from nested mappings, ``default`` if any part is absent."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are YAML scalars/lists (``lr=1e-3``, ``tasks=[covid]``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = yaml_number(value)
    return out


def yaml_number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; a user writing it (in ``--set`` or a search space) means the number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_base(base: Any, path: Path) -> Any:
    """``base:`` of a search space or study file: an inline mapping or a run config file (relative to the CWD,
    else to ``path``'s folder)."""
    if not isinstance(base, str):
        return base
    for candidate in (Path(base), path.parent / base):
        if candidate.is_file():
            return load_yaml(candidate)
    raise ConfigError(f"{path}: base: run config file {base!r} not found")


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply dotted overrides in place and return ``data``."""
    for key, value in overrides.items():
        set_dotted(data, key, value)
    return data
