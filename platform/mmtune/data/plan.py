"""The driver-side half of ``prepare``: table + discovery + labels + splits, before any pixel is decoded.

Everything here is small (one row per patient) and fatal input problems surface here, before Ray starts, so a
bad card or table fails in well under a second and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmtune.config.card import DatasetCard, LoadedCard
from mmtune.data.clinical import build_clinical, require_columns
from mmtune.data.discovery import natural_key
from mmtune.data.labels import map_labels
from mmtune.data.layouts import discover, layout_of, load_table
from mmtune.data.splits import assign_splits
from mmtune.errors import DataError


@dataclass
class Plan:
    """Kept patients (natural id order) with everything but their pixels."""

    loaded: LoadedCard
    root: Path
    table_path: Path
    ids: list[str]
    groups: list[str]
    split: np.ndarray
    fold: np.ndarray
    labels: dict[str, np.ndarray]
    features: list[str]
    clinical_raw: np.ndarray
    jobs: list[dict[str, object]]
    dropped: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    table_file: list[object] = field(default_factory=list)  # [relative path, size, sha256]

    @property
    def card(self) -> DatasetCard:
        return self.loaded.card


def _card_columns(loaded: LoadedCard) -> dict[str, str]:
    """Columns the card requires in the table (column -> card key)."""
    card = loaded.card
    out: dict[str, str] = {}
    for i, task in enumerate(card.tasks):
        if task.column:
            out[task.column] = f"tasks[{i}].column"
        for j, column in enumerate(task.columns or []):
            out[column] = f"tasks[{i}].columns[{j}]"
    # plus the card's structural columns; the id column (checked on its own) and file-path templates excepted
    out.update(
        {c: key for c, key in card.structural_columns.items() if key not in ("patient_id", "source.options template")}
    )
    return out


def make_plan(loaded: LoadedCard, source: str | Path | None = None) -> Plan:
    """Read the table, discover images, map labels, parse clinical features and split the kept patients."""
    card = loaded.card
    root = loaded.source_root(source)
    if not root.is_dir():
        where = "--source" if source is not None else f"source.path in {loaded.path}"
        raise DataError(f"{root}: source folder not found ({where})")
    source_table = load_table(root, card)
    table_path, table = source_table.path, source_table.table
    require_columns(table, table_path, _card_columns(loaded))
    labels = map_labels(table, card, table_path)
    clinical = build_clinical(table, card, table_path)
    discovery = discover(root, table, card, table_path)

    ids_all = table[card.patient_id].tolist()
    in_table = set(ids_all)
    dropped: dict[str, str] = {}
    kept_rows: list[int] = []
    for row, pid in enumerate(ids_all):
        if row in labels.dropped:
            dropped[pid] = labels.dropped[row]
        elif pid not in discovery.patients:
            dropped[pid] = discovery.no_images.get(pid) or _no_images_reason(card, pid)
        else:
            kept_rows.append(row)
    for pid in list(discovery.patients) + list(discovery.no_images):
        if pid not in in_table:
            dropped[pid] = "images without a row in the clinical table"
    kept_rows.sort(key=lambda r: natural_key(ids_all[r]))
    ids = [ids_all[r] for r in kept_rows]
    rows = np.array(kept_rows, dtype=np.int64)
    if not ids:
        raise DataError(f"{table_path}: no patient has both a table row and images ({len(dropped)} dropped)")

    group_values = table[card.group].tolist() if card.group else [""] * len(table)
    split_group = card.split_group_column
    split_groups = np.array(table[split_group].tolist(), dtype=object)[rows] if split_group else None
    strata = labels.values[card.split.stratify_by][rows] if card.split.stratify_by else None
    given = np.array(table[card.split.column].tolist(), dtype=object)[rows].tolist() if card.split.column else None
    result = assign_splits(card.split, ids, strata=strata, groups=split_groups, given=given, source=str(table_path))

    data = source_table.data
    return Plan(
        loaded=loaded,
        root=root,
        table_path=table_path,
        ids=ids,
        groups=[group_values[r] for r in rows],
        split=result.split,
        fold=result.fold,
        labels={name: values[rows] for name, values in labels.values.items()},
        features=clinical.features,
        clinical_raw=clinical.raw[rows],
        jobs=[discovery.patients[pid].to_job() for pid in ids],
        dropped=dict(sorted(dropped.items(), key=lambda kv: natural_key(kv[0]))),
        skipped=dict(sorted(discovery.skipped.items())),
        warnings=clinical.warnings + result.warnings,
        table_file=[_relative(table_path, root), len(data), hashlib.sha256(data).hexdigest()],
    )


def _no_images_reason(card: DatasetCard, pid: str) -> str:
    return layout_of(card).no_images_reason(card, pid)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
