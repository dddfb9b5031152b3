"""Raw label cells -> task labels by the card's rules (map, drop, unlabelled).

A missing label is masked (-1 for class tasks, NaN otherwise), never a dropped patient; only values the card
lists under ``drop`` remove a patient. A raw value the card does not cover is an error naming file, row and column,
because silently masking a typo would quietly shrink a class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import pandas as pd

from mmtune.config.card import DEFAULT_MULTILABEL_MAP, DatasetCard, ParseSpec, TaskSpecCard
from mmtune.data.clinical import parse_number
from mmtune.errors import DataError
from mmtune.tasks import TaskKind

MASKED_CLASS = -1


@dataclass
class Labels:
    """Per task one array over the table's rows, and rows the card drops (row position -> reason)."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    dropped: dict[int, str] = field(default_factory=dict)


def matches(raw: str, patterns: list[str], glob: bool = False) -> str | None:
    """The first pattern ``raw`` equals (case-insensitively), or matches as a glob when ``glob`` (``drop`` only:
    ``?`` is a common "unknown" cell, so ``unlabelled`` values are compared literally)."""
    for pattern in patterns:
        if raw == pattern or raw.lower() == pattern.lower():
            return pattern
        if glob and (fnmatchcase(raw, pattern) or fnmatchcase(raw.lower(), pattern.lower())):
            return pattern
    return None


def _lookup(raw: str, table: dict[str, object]) -> object | None:
    if raw in table:
        return table[raw]
    lowered = {k.lower(): v for k, v in table.items()}
    if raw.lower() in lowered:
        return lowered[raw.lower()]
    try:  # "1.0" in the table, 1 in the card
        number = float(raw)
    except ValueError:
        return None
    if number.is_integer() and str(int(number)) in table:
        return table[str(int(number))]
    return None


class _Rules:
    """Resolves one raw cell of one task column."""

    def __init__(self, task: TaskSpecCard, where: int, path: Path) -> None:
        self.task = task
        self.where = where
        self.path = path

    def unknown(self, pid: str, column: str, raw: str) -> DataError:
        return DataError(
            f"{self.path}: row {pid!r}, column {column!r}: raw value {raw!r} is not covered by task "
            f"{self.task.name!r}; add it to tasks[{self.where}].map, .drop or .unlabelled"
        )

    def drop_reason(self, column: str, raw: str) -> str | None:
        pattern = matches(raw, self.task.drop, glob=True)
        if pattern is None:
            return None
        return f"task {self.task.name}: {column} = {raw!r} is dropped by the card (pattern {pattern!r})"


def map_labels(table: pd.DataFrame, card: DatasetCard, path: Path) -> Labels:
    """Labels of every task for every row of ``table`` (positional), plus the rows the card drops."""
    out = Labels()
    ids = table[card.patient_id].tolist()
    for where, task in enumerate(card.tasks):
        if task.kind in (TaskKind.SEGMENTATION, TaskKind.RECONSTRUCTION):
            continue
        rules = _Rules(task, where, path)
        if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
            out.values[task.name] = _class_labels(table[task.column].tolist(), ids, rules, out.dropped)
        elif task.kind == TaskKind.REGRESSION:
            out.values[task.name] = _regression_labels(
                table[task.column].tolist(), ids, rules, card.clinical.parse, out.dropped
            )
        else:
            columns = [_multilabel_column(table[c].tolist(), ids, rules, c, out.dropped) for c in task.columns or []]
            out.values[task.name] = np.stack(columns, axis=1).astype(np.float32)
    return out


def _class_labels(cells: list[str], ids: list[str], rules: _Rules, dropped: dict[int, str]) -> np.ndarray:
    task = rules.task
    classes = list(task.classes or [])
    index = {name: i for i, name in enumerate(classes)}
    identity = {name: name for name in classes}
    out = np.full(len(cells), MASKED_CLASS, dtype=np.int64)
    column = task.column or ""
    for row, raw in enumerate(cells):
        if raw == "":
            continue
        target = _lookup(raw, task.map)
        if target is None and matches(raw, task.unlabelled) is not None:
            continue
        if target is None and (reason := rules.drop_reason(column, raw)) is not None:
            dropped.setdefault(row, reason)
            continue
        if target is None:
            target = _lookup(raw, identity)
        if target is None:
            raise rules.unknown(ids[row], column, raw)
        out[row] = index[str(target)]
    return out


def _regression_labels(
    cells: list[str], ids: list[str], rules: _Rules, parse: ParseSpec, dropped: dict[int, str]
) -> np.ndarray:
    task = rules.task
    column = task.column or ""
    out = np.full(len(cells), np.nan, dtype=np.float32)
    for row, raw in enumerate(cells):
        if raw == "" or matches(raw, task.unlabelled) is not None:
            continue
        if (reason := rules.drop_reason(column, raw)) is not None:
            dropped.setdefault(row, reason)
            continue
        try:
            value = parse_number(raw, parse)
        except ValueError:
            raise rules.unknown(ids[row], column, raw) from None
        if math.isfinite(value):
            out[row] = value
    return out


def _multilabel_column(
    cells: list[str], ids: list[str], rules: _Rules, column: str, dropped: dict[int, str]
) -> np.ndarray:
    task = rules.task
    table: dict[str, object] = {**DEFAULT_MULTILABEL_MAP, **task.map}
    out = np.full(len(cells), np.nan, dtype=np.float32)
    for row, raw in enumerate(cells):
        if raw == "" or matches(raw, task.unlabelled) is not None:
            continue
        if (reason := rules.drop_reason(column, raw)) is not None:
            dropped.setdefault(row, reason)
            continue
        value = _lookup(raw, table)
        if value is None:
            raise rules.unknown(ids[row], column, raw)
        out[row] = float(value)  # type: ignore[arg-type]
    return out
