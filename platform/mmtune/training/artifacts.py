"""Writers of a run's small artefacts: ``metrics.json`` and the resolved ``config.yaml`` (atomic)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mmtune.atomic import atomic_write_text


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics_json(
    path: str | Path,
    metrics: Mapping[str, float],
    *,
    epochs: int,
    best_epoch: int | None,
    aim_hash: str | None,
    monitor: str,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """``{"metrics": {key: value|null}, "epochs", "best_epoch", "monitor", "aim_hash", ...}`` (NaN -> null)."""
    data: dict[str, Any] = {
        "metrics": {k: _json_safe(float(v)) for k, v in sorted(metrics.items())},
        "epochs": int(epochs),
        "best_epoch": best_epoch,
        "monitor": monitor,
        "aim_hash": aim_hash,
    }
    data.update(dict(extra or {}))
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_metrics_json(path: str | Path) -> dict[str, Any]:
    """Read ``metrics.json``; null metric values come back as NaN."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data["metrics"] = {k: float("nan") if v is None else float(v) for k, v in data.get("metrics", {}).items()}
    return data


def write_config_yaml(path: str | Path, config: Mapping[str, Any]) -> Path:
    return atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False))
