"""Tables per hospital / centre (the card's ``group``) and per YAML-defined subgroup (``clinical.subgroups``).

Subgroup variables come from the prepared data set the predictions were made on: ``group`` and every clinical
feature's *raw* value (``clinical_raw``, before standardisation; e.g. ``Age``, ``Gender``). Bins are right-open
(``[0, 50, 65, 120]`` -> ``0-50``, ``50-65``, ``65-120``); a patient without the value is in ``missing``. Every
level is shown, however small: a level below ``min_subgroup`` patients (or with fewer than two patients of a class)
gets its estimates without intervals and is marked ``too small``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from mmtune.analysis.clinical.tables import COLUMNS, task_table
from mmtune.analysis.task_metrics import TaskColumns
from mmtune.config.clinical import ClinicalConfig, SubgroupSpec
from mmtune.errors import UserError
from mmtune.tasks import CLASSIFICATION_KINDS

GROUP = "group"
MISSING = "missing"


class SubgroupError(UserError):
    """A subgroup names a column the data does not have."""


def patient_covariates(data_path: str | Path) -> pd.DataFrame:
    """``patient_id``, ``group`` and one column per clinical feature (raw values) of a prepared data set."""
    import pyarrow.dataset as pads

    from mmtune.data.format import CLINICAL_RAW, PATIENT_ID, read_manifest, shard_paths
    from mmtune.data.loading import fixed_list_to_numpy

    manifest = read_manifest(data_path)
    table = pads.dataset([str(p) for p in shard_paths(data_path, manifest)], format="parquet").to_table(
        columns=[PATIENT_ID, GROUP, CLINICAL_RAW]
    )
    features = manifest.clinical.features
    out = pd.DataFrame({PATIENT_ID: table[PATIENT_ID].to_pylist(), GROUP: table[GROUP].to_pylist()})
    if features:
        raw = fixed_list_to_numpy(table[CLINICAL_RAW], len(features))
        for i, name in enumerate(features):
            out[name] = raw[:, i]
    return out


def check_subgroups(settings: ClinicalConfig, covariates: pd.DataFrame, where: str) -> None:
    """Every subgroup column exists (one-line error listing the known columns otherwise)."""
    known = [c for c in covariates.columns if c != "patient_id"]
    for name, spec in settings.subgroups.items():
        if spec.column not in covariates.columns or spec.column == "patient_id":
            raise SubgroupError(
                f"{where}: clinical.subgroups.{name}.column: {spec.column!r} is not a column of the data; "
                f"known: {', '.join(known)}"
            )


def levels(values: pd.Series, spec: SubgroupSpec | None) -> pd.Series:
    """The subgroup level of every patient (strings; ``missing`` where the value is absent)."""
    if spec is not None and spec.bins is not None:
        numeric = pd.to_numeric(values, errors="coerce")
        cut = pd.cut(numeric, bins=spec.bins, right=False, labels=bin_names(spec.bins))
        return cut.astype(object).where(cut.notna(), MISSING).astype(str)
    out = []
    for value in values:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            out.append(MISSING)
            continue
        key = _num(value) if isinstance(value, (int, float, np.integer, np.floating)) else str(value)
        if spec is not None and spec.labels:
            key = spec.labels.get(key, key)
        out.append(key or "(none)")
    return pd.Series(out, index=values.index, dtype=object)


def bin_names(edges: list[float]) -> list[str]:
    return [f"{_num(a)}-{_num(b)}" for a, b in itertools.pairwise(edges)]


def _num(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def subgroup_tables(
    frame: pd.DataFrame,
    tasks: dict[str, TaskColumns],
    covariates: pd.DataFrame,
    settings: ClinicalConfig,
    thresholds: dict[str, dict[str, float]],
) -> pd.DataFrame:
    """One ``task_table`` per (variable, level): ``variable, level`` + the task-table columns. ``frame`` holds
    the evaluated predictions (one row per patient); ``thresholds[task]`` the validation thresholds."""
    merged = frame.merge(covariates, on="patient_id", how="left", suffixes=("", "_data"))
    variables: list[tuple[str, SubgroupSpec | None, str]] = []
    if settings.by_group and GROUP in merged.columns and merged[GROUP].nunique(dropna=True) > 1:
        variables.append(("hospital", None, GROUP))
    variables += [(name, spec, spec.column) for name, spec in settings.subgroups.items()]
    parts = []
    for name, spec, column in variables:
        level = levels(merged[column], spec)
        order = _ordered(level.unique().tolist(), spec)
        for value in order:
            rows = merged[level.to_numpy() == value]
            for task_name, task in tasks.items():
                if task.kind not in CLASSIFICATION_KINDS:
                    continue
                table = task_table(task, rows, settings, thresholds.get(task_name))
                parts.append(table.assign(variable=name, level=value))
    if not parts:
        return pd.DataFrame(columns=["variable", "level", *COLUMNS])
    out = pd.concat(parts, ignore_index=True)
    return out[["variable", "level", *COLUMNS]]


def _ordered(values: list[str], spec: SubgroupSpec | None) -> list[str]:
    # with bins: every bin, even an empty one, so a reader sees it
    binned = spec is not None and spec.bins is not None
    present = bin_names(spec.bins) if binned else sorted(v for v in values if v != MISSING)
    return present + ([MISSING] if MISSING in values else [])
