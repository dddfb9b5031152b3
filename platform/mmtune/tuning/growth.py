"""Growing a finished study instead of re-running it: what may change between the run on disk and ``--resume``.

``mmtune ablate STUDY.yaml --resume`` after adding seeds, cells or factor levels runs only the new (cell, split)
trials. The finished trials are kept as they are, so a change that would alter what a finished trial means (its
base config, its data, its folds) is refused in one line naming the key, before Ray starts.

The added trials run as a new Tune experiment beside the first one (``tune/``, then ``tune-2/``, ``tune-3/`` ...),
so a finished experiment is never rewritten; results are collected from every experiment of the study.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmtune.errors import ConfigError

FIRST_EXPERIMENT = "tune"
# Base keys that say where a trial writes or logs, not what it trains (``output_dir`` resolves against the CWD).
WHERE_KEYS = ("output_dir", "tracking")


def meaningful(base: Any) -> Any:
    """The base run config without the keys that do not change what a trial means."""
    if not isinstance(base, Mapping):
        return base
    return {k: v for k, v in base.items() if k not in WHERE_KEYS}


def experiment_dirs(root: Path) -> list[Path]:
    """The study's Tune experiments in the order they were started: ``tune``, ``tune-2``, ``tune-3`` ..."""
    found = [root / FIRST_EXPERIMENT] if (root / FIRST_EXPERIMENT).is_dir() else []
    more = [p for p in root.glob(f"{FIRST_EXPERIMENT}-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return found + sorted(more, key=lambda p: int(p.name.split("-", 1)[1]))


def next_experiment(root: Path) -> str:
    """The name of the experiment that grows the study."""
    return f"{FIRST_EXPERIMENT}-{max(len(experiment_dirs(root)), 1) + 1}"


def first_difference(before: Any, now: Any, prefix: str) -> str | None:
    """The dotted key of the first difference between two YAML-like values (``None`` when equal)."""
    if _same(before, now):
        return None
    if isinstance(before, Mapping) and isinstance(now, Mapping):
        for key in list(before) + [k for k in now if k not in before]:
            found = first_difference(before.get(key), now.get(key), f"{prefix}.{key}")
            if found is not None:
                return found
    return prefix


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _get(record: Any, dotted: str) -> Any:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def refuse_changes(before: Mapping[str, Any], now: Mapping[str, Any], where: str) -> None:
    """One line naming the first key whose value differs between the study as run (``before``) and now (a
    ``base`` entry is compared without ``WHERE_KEYS``)."""
    before = {k: meaningful(v) if k == "base" else v for k, v in before.items()}
    now = {k: meaningful(v) if k == "base" else v for k, v in now.items()}
    for key in now:
        found = first_difference(before.get(key), now.get(key), key)
        if found is None:
            continue
        raise ConfigError(
            f"{where}: {found} changed since the study ran ({_short(_get(before, found))} -> "
            f"{_short(_get(now, found))}); it would change what the finished trials mean, so --resume refuses it "
            "(start a new study with another name: instead)"
        )
