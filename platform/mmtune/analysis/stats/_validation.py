"""Input checks shared by the statistics functions: one-line errors that name the function and the argument."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmtune.errors import UserError


class StatsInputError(UserError, ValueError):
    """Inputs a statistical function cannot use (lengths differ, one class only, NaN scores, ...).

    A ``ValueError`` for library callers and a ``UserError`` (exit code 2, one line) when it reaches the CLI.
    """


def as_1d_float(values: object, name: str, where: str, *, allow_nan: bool = False) -> np.ndarray:
    """``values`` as a 1-D float array; raises if it is not 1-D, is empty or (unless allowed) holds NaN/inf."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(f"{where}: {name} must be numeric ({exc})") from None
    if arr.ndim != 1:
        raise StatsInputError(f"{where}: {name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise StatsInputError(f"{where}: {name} is empty")
    if not allow_nan and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise StatsInputError(f"{where}: {name} holds a non-finite value at index {bad}; drop or impute it first")
    return arr


def as_binary_labels(y: object, where: str) -> np.ndarray:
    """``y`` as an int array of 0/1 with both classes present (1 = positive, the class with higher scores)."""
    arr = as_1d_float(y, "y", where)
    bad = ~np.isin(arr, (0.0, 1.0))
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise StatsInputError(
            f"{where}: y must hold only 0 and 1, got {arr[idx]:g} at index {idx} (drop masked labels such as -1 first)"
        )
    labels = arr.astype(np.int64)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        raise StatsInputError(f"{where}: y needs both classes, got only class {labels[0]} ({labels.size} samples)")
    return labels


def same_length(where: str, **arrays: np.ndarray) -> None:
    """Raise unless every array has the same length along axis 0."""
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise StatsInputError(f"{where}: inputs must have the same length, but {listed}")


def check_level(level: float, where: str) -> float:
    """A confidence level strictly between 0 and 1."""
    if not (isinstance(level, int | float) and 0.0 < float(level) < 1.0):
        raise StatsInputError(f"{where}: level must be between 0 and 1 (e.g. 0.95), got {level!r}")
    return float(level)


def check_alternative(alternative: str, where: str) -> str:
    if alternative not in ("two-sided", "greater", "less"):
        raise StatsInputError(f"{where}: alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    return alternative


def check_names(names: Sequence[str] | None, k: int, where: str) -> list[str]:
    """Column names for ``k`` configurations: given (unique, k of them) or ``config_0..``."""
    if names is None:
        return [f"config_{i}" for i in range(k)]
    names = [str(n) for n in names]
    if len(names) != k:
        raise StatsInputError(f"{where}: got {len(names)} names for {k} configurations")
    if len(set(names)) != k:
        raise StatsInputError(f"{where}: configuration names must be unique, got {names}")
    return names
