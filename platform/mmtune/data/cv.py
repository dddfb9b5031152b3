"""Repeated stratified k-fold partitions of a prepared data set's non-test patients (``data.cv``).

The prepared data carry one ``fold`` column (one partition). Repeated k-fold needs a fresh partition per repeat,
and an ablation needs *the same* partition in every cell so that comparisons are paired. Both follow from computing
the partition deterministically from ``(k, seed, stratify_by)`` and the data alone: the non-test patients sorted
by ``patient_id``, split by scikit-learn's ``StratifiedKFold(k, shuffle=True, random_state=seed)`` on the label of
``stratify_by`` (a binary or multiclass task; default the card's ``split.stratify_by``). The run's own tasks never
enter, so a cell training ``[covid]`` and one training ``[covid, morbidity]`` get identical folds.

Masked labels (-1) form their own stratum when there are at least k of them, else they join the largest class.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmtune.data.format import PATIENT_ID, SPLIT, Manifest, shard_paths
from mmtune.errors import DataError
from mmtune.tasks import TaskKind

FOLD_COLUMN = "cv_fold"


def default_stratify_by(manifest: Manifest) -> str | None:
    """The card's stratification task when it is a class task of the data, else ``None`` (plain k-fold)."""
    name = manifest.split.stratify_by
    if not name:
        return None
    for task in manifest.tasks:
        if task.name == name and task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
            return name
    return None


def _stratify_task(manifest: Manifest, stratify_by: str | None, where: str) -> str | None:
    name = stratify_by if stratify_by is not None else default_stratify_by(manifest)
    if name is None:
        return None
    for task in manifest.tasks:
        if task.name == name:
            if task.kind not in (TaskKind.BINARY, TaskKind.MULTICLASS):
                raise DataError(
                    f"{where}: stratify_by task {name!r} is {task.kind.value}; use a binary or multiclass task"
                )
            return name
    known = ", ".join(t.name for t in manifest.tasks)
    raise DataError(f"{where}: stratify_by task {name!r} is not in the data; tasks: {known}")


def class_counts(manifest: Manifest, task: str) -> dict[str, int]:
    """Labelled patients per class of ``task`` outside the test split (the manifest's counts, no data read)."""
    out: Counter[str] = Counter()
    for split, by_task in manifest.counts.items():
        if split == "test":
            continue
        for name, count in (by_task.get(task) or {}).items():
            if name != "masked":
                out[name] += int(count)
    return dict(out)


def check_k(manifest: Manifest, k: int, stratify_by: str | None, where: str) -> None:
    """One-line ``DataError`` when k-fold cannot work: fewer non-test patients than k, or (stratified) a class
    with fewer than k patients, which would leave some folds without that class."""
    n = sum(int(c) for s, c in _split_sizes(manifest).items() if s != "test")
    if n and k > n:
        raise DataError(f"{where}: k = {k} folds but the data have only {n} patients outside the test split")
    task = _stratify_task(manifest, stratify_by, where)
    if task is None:
        return
    counts = {c: v for c, v in class_counts(manifest, task).items() if v > 0}
    if not counts:
        return
    smallest, count = min(counts.items(), key=lambda item: (item[1], item[0]))
    if k > count:
        raise DataError(
            f"{where}: k = {k} folds is larger than the smallest class of {task!r} ({smallest!r}: {count} patients "
            f"outside the test split); use at most {count} folds or stratify by another task"
        )


def _split_sizes(manifest: Manifest) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for split, by_task in manifest.counts.items():
        first = next(iter(by_task.values()), {})
        sizes[split] = int(sum(v for v in first.values()))
    return sizes


def read_partition_frame(path: str | Path, manifest: Manifest, stratify_by: str | None) -> pd.DataFrame:
    """``patient_id`` and the stratification label of the non-test patients, sorted by id."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    columns = [PATIENT_ID, SPLIT] + ([f"y_{stratify_by}"] if stratify_by else [])
    dataset = pads.dataset([str(p) for p in shard_paths(path, manifest)], format="parquet")
    table = dataset.to_table(columns=columns, filter=pc.field(SPLIT) != pc.scalar("test"))
    frame = table.to_pandas().drop(columns=[SPLIT])
    return frame.sort_values(PATIENT_ID, kind="mergesort").reset_index(drop=True)


def _strata(labels: np.ndarray, k: int) -> np.ndarray:
    y = np.asarray(labels).astype(np.int64)
    counts = Counter(y.tolist())
    if -1 in counts and counts[-1] < k and len(counts) > 1:
        largest = max((v for v in counts if v != -1), key=lambda v: (counts[v], -v))
        y = np.where(y == -1, largest, y)
    return y


def assign_folds(
    ids: Sequence[str], k: int, seed: int, labels: np.ndarray | None = None, where: str = "data.cv"
) -> np.ndarray:
    """Fold (0..k-1) of each patient of ``ids`` (already in a canonical order), stratified by ``labels``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(ids)
    if k > n:
        raise DataError(f"{where}: k = {k} folds but only {n} patients outside the test split")
    fold = np.full(n, -1, dtype=np.int32)
    index = np.arange(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class smaller than k is reported by check_k
        if labels is not None and len(set(np.asarray(labels).tolist())) >= 2:
            parts = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(index, _strata(labels, k))
        else:
            parts = KFold(n_splits=k, shuffle=True, random_state=seed).split(index)
        for f, (_, held) in enumerate(parts):
            fold[held] = f
    return fold


def partition(
    path: str | Path, manifest: Manifest, k: int, seed: int, stratify_by: str | None = None, where: str = "data.cv"
) -> pd.DataFrame:
    """``patient_id`` -> ``cv_fold`` for the non-test patients of one prepared data set (deterministic)."""
    task = _stratify_task(manifest, stratify_by, where)
    frame = read_partition_frame(path, manifest, task)
    labels = frame[f"y_{task}"].to_numpy() if task else None
    frame[FOLD_COLUMN] = assign_folds(frame[PATIENT_ID].tolist(), k, seed, labels, where)
    return frame[[PATIENT_ID, FOLD_COLUMN]]


def validation_ids(
    path: str | Path, manifest: Manifest, k: int, fold: int, seed: int, stratify_by: str | None = None
) -> frozenset[str]:
    """The patients of fold ``fold`` (the run's validation set); every other non-test patient trains."""
    frame = partition(path, manifest, k, seed, stratify_by)
    return frozenset(frame.loc[frame[FOLD_COLUMN] == fold, PATIENT_ID].astype(str))
