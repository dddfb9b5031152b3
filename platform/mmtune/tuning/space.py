"""Search space YAML -> a validated ``SearchSpace`` (loading, ``--set``, the resolved base run config).

The other jobs on a search space each have their module: ``keypaths`` (every space key must exist in
``RunConfig``; conditions; dependency order), ``combinations`` (enumerate / sample / apply assignments),
``candidates`` (every combination against pydantic and the registries, before Ray starts) and ``searchers``
(translation to a Ray Tune param space or an Optuna define-by-run space, beside ``schedulers``). Trials receive the
full run config under ``run`` beside study metadata (the contract in ``mmtune.trial_config``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmtune.config.loading import load_base, load_yaml, parse_overrides, set_dotted, validate
from mmtune.config.run import RunConfig
from mmtune.config.search import SearchSpaceConfig, SpaceEntry
from mmtune.errors import ConfigError
from mmtune.tuning.keypaths import check_key_path, check_nesting, dependency_order

if TYPE_CHECKING:
    from mmtune.config.study import StudyConfig


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
    check_nesting(space)
    space.order = dependency_order(space)
    from mmtune.tuning.metric_check import check_study_metric

    check_study_metric(str(path), space.base, space.metric, space.mode)  # before Ray: Tune needs it in every result
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
