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


class _Loader(yaml.SafeLoader):
    """``safe_load`` that refuses a key given twice in one mapping (YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor`` merges may be overridden
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: PyYAML reports it
                continue
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


def _key_paths(node: yaml.Node, prefix: str = "") -> dict[int, str]:
    """Line of each mapping key -> its dotted path (so a duplicate is named by where it sits)."""
    out: dict[int, str] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            name = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out.setdefault(key_node.start_mark.line + 1, name)
            out.update({k: v for k, v in _key_paths(value_node, name).items() if k not in out})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update({k: v for k, v in _key_paths(item, f"{prefix}[{i}]").items() if k not in out})
    return out


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` with one-line errors: syntax errors and duplicate keys name ``where``, the line and key."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except _DuplicateKey as dup:
        try:
            paths = _key_paths(yaml.compose(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError:
            paths = {}
        name = paths.get(dup.again, str(dup.key))
        raise ConfigError(
            f"{where}: line {dup.again}: duplicate key {name!r} (first given on line {dup.first}); keep one"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}:{at}: invalid YAML: {problem}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, a syntax error, a duplicate key, an empty file or a top level that is
    not a mapping becomes a one-line ``ConfigError`` naming the file (and line and key where there is one)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if data is None:
        raise ConfigError(f"{path}: the file is empty (or only comments); expected a mapping of keys")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got a {type(data).__name__}")
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
