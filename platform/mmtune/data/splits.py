"""Patient-level splits (held-out test + k folds, a given column, or whole groups) and the leakage check.

Splits are decided on patients, never on slices, with scikit-learn's splitters seeded by the card, so the same
table and seed always give the same assignment. ``split`` is ``train``/``val``/``test``; ``fold`` is the CV fold
(0..k-1) of every non-test patient and -1 for test; with k_folds >= 2 the fold ``val_fold`` is ``val``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from mmtune.config.card import SplitSpec
from mmtune.errors import DataError

GIVEN_VALUES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
    "holdout": "test",
}


@dataclass
class SplitResult:
    split: np.ndarray  # str per patient
    fold: np.ndarray  # int32 per patient, -1 = test
    warnings: list[str] = field(default_factory=list)


def _safe_strata(y: np.ndarray, min_count: int) -> np.ndarray | None:
    """Strata scikit-learn can honour: rare labels pooled; None when fewer than two strata remain."""
    y = np.asarray(y).astype(np.int64)
    counts = Counter(y.tolist())
    rare = [v for v, c in counts.items() if c < min_count]
    if rare:
        pooled = min(counts) - 1
        y = np.where(np.isin(y, rare), pooled, y)
        counts = Counter(y.tolist())
        if counts[pooled] < min_count:
            largest = max((v for v in counts if v != pooled), key=lambda v: (counts[v], -v), default=pooled)
            y = np.where(y == pooled, largest, y)
    return y if len(set(y.tolist())) >= 2 else None


def _holdout(idx: np.ndarray, fraction: float, strata: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) positions of ``idx``; stratified when the strata allow it."""
    if fraction <= 0 or len(idx) == 0:
        return idx, idx[:0]
    if len(idx) < 2:
        raise DataError(f"cannot hold out {fraction:.0%} of {len(idx)} patient(s); need at least 2")
    y = _safe_strata(strata[idx], 2) if strata is not None else None
    try:
        kept, held = train_test_split(idx, test_size=fraction, stratify=y, random_state=seed, shuffle=True)
    except ValueError:  # too few patients per stratum for the held-out size: fall back to a random split
        kept, held = train_test_split(idx, test_size=fraction, random_state=seed, shuffle=True)
    return np.sort(kept), np.sort(held)


def _kfold(idx: np.ndarray, k: int, strata: np.ndarray | None, groups: np.ndarray | None, seed: int) -> np.ndarray:
    """Fold number per position of ``idx``."""
    fold = np.zeros(len(idx), dtype=np.int32)
    y = _safe_strata(strata[idx], k) if strata is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has fewer than k members"
        if groups is not None:
            g = groups[idx]
            if y is not None:
                splitter: Any = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
                parts = splitter.split(idx, y, g)
            else:
                parts = GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(idx, groups=g)
        elif y is not None:
            parts = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(idx, y)
        else:
            parts = KFold(n_splits=k, shuffle=True, random_state=seed).split(idx)
        for f, (_, held) in enumerate(parts):
            fold[held] = f
    return fold


def assign_splits(
    spec: SplitSpec,
    ids: list[str],
    strata: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    given: list[str] | None = None,
    source: str = "table",
) -> SplitResult:
    """Split patients (in the given order) by the card's ``split`` section."""
    n = len(ids)
    split = np.full(n, "train", dtype=object)
    fold = np.zeros(n, dtype=np.int32)
    notes: list[str] = []
    if n == 0:
        return SplitResult(split, fold, notes)
    if spec.method == "given":
        for i, raw in enumerate(given or []):
            value = GIVEN_VALUES.get(str(raw).strip().lower())
            if value is None:
                raise DataError(
                    f"{source}: row {ids[i]!r}, column {spec.column!r}: split value {raw!r} is not "
                    "train/val/test (split.column)"
                )
            split[i] = value
        fold[split == "test"] = -1
        return SplitResult(split, fold, notes)

    idx = np.arange(n)
    use_groups = spec.method == "group"
    if use_groups:
        assert groups is not None
        test_mask = _group_test(spec, groups, source)
        rest = idx[~test_mask]
    else:
        rest, held = _holdout(idx, spec.test_fraction, strata, spec.seed)
        test_mask = np.isin(idx, held)
    split[test_mask] = "test"
    fold[test_mask] = -1
    if len(rest) == 0:
        raise DataError(f"{source}: no patient left outside the test set (split.test_fraction / split.test_groups)")

    if spec.k_folds >= 2:
        units = len(set(groups[rest].tolist())) if use_groups else len(rest)
        if units < spec.k_folds:
            what = "groups" if use_groups else "patients"
            raise DataError(
                f"{source}: split.k_folds = {spec.k_folds} needs at least {spec.k_folds} {what} outside the test set; "
                f"found {units}"
            )
        fold[rest] = _kfold(rest, spec.k_folds, strata, groups if use_groups else None, spec.seed)
        split[rest] = np.where(fold[rest] == spec.val_fold, "val", "train")
    else:
        fraction = spec.effective_val_fraction
        if use_groups:
            g = groups[rest]
            if len(set(g.tolist())) < 2:
                raise DataError(f"{source}: a group split needs at least 2 groups outside the test set")
            _, val_pos = next(GroupShuffleSplit(1, test_size=fraction, random_state=spec.seed).split(rest, groups=g))
            val = rest[val_pos]
        else:
            _, val = _holdout(rest, fraction, strata, spec.seed)
        split[val] = "val"
    return SplitResult(split, fold, notes)


def _group_test(spec: SplitSpec, groups: np.ndarray, source: str) -> np.ndarray:
    """Patients of whole groups held out as the test set."""
    present = sorted(set(groups.tolist()))
    if spec.test_groups is not None:
        unknown = [g for g in spec.test_groups if g not in present]
        if unknown:
            raise DataError(f"{source}: split.test_groups names {unknown[0]!r}, not a group in the data ({present})")
        return np.isin(groups, spec.test_groups)
    if spec.test_fraction <= 0:
        return np.zeros(len(groups), dtype=bool)
    if len(present) < 2:
        raise DataError(f"{source}: a group split needs at least 2 groups; found {present}")
    splitter = GroupShuffleSplit(n_splits=1, test_size=spec.test_fraction, random_state=spec.seed)
    _, test_pos = next(splitter.split(np.zeros(len(groups)), groups=groups))
    mask = np.zeros(len(groups), dtype=bool)
    mask[test_pos] = True
    return mask


def check_no_leakage(table: Any) -> None:
    """Refuse a data set in which a patient appears in two splits (or twice), or whose folds contradict splits.

    ``table`` has ``patient_id``, ``split`` and optionally ``fold`` columns (a pandas DataFrame, a pyarrow Table or a
    dict of lists). Raises ``DataError`` naming the first offending patient.
    """
    frame = _as_frame(table)
    for column in ("patient_id", "split"):
        if column not in frame.columns:
            raise DataError(f"leakage check: missing column {column!r}")
    splits_of = frame.groupby("patient_id", sort=True)["split"].agg(lambda s: sorted(set(s)))
    for pid, splits in splits_of.items():
        if len(splits) > 1:
            raise DataError(f"patient {pid!r} is in more than one split ({', '.join(splits)}): data would leak")
    duplicated = frame["patient_id"][frame["patient_id"].duplicated()]
    if len(duplicated):
        raise DataError(f"patient {duplicated.iloc[0]!r} appears in more than one row")
    unknown = sorted(set(frame["split"]) - {"train", "val", "test"})
    if unknown:
        raise DataError(f"unknown split value {unknown[0]!r}; expected train/val/test")
    if "fold" in frame.columns:
        test = frame["split"] == "test"
        bad = frame[(test & (frame["fold"] != -1)) | (~test & (frame["fold"] < 0))]
        if len(bad):
            row = bad.iloc[0]
            raise DataError(f"patient {row['patient_id']!r}: split {row['split']!r} contradicts fold {row['fold']}")


def _as_frame(table: Any) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    if hasattr(table, "to_pandas"):
        return table.to_pandas()
    return pd.DataFrame(dict(table))
