"""Byte-stable CSV and JSON writers (fixed column order, ``\\n`` line ends, UTF-8, sorted JSON keys)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """Write ``rows`` with exactly ``columns``; ``None``/NaN become empty cells."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(col)) for col in columns])
    return path


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def write_json(path: Path, data: Any) -> Path:
    """Pretty, key-sorted JSON; NaN (an AUROC with one class) is written as ``null``."""
    path.write_text(json.dumps(_clean(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
