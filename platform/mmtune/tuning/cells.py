"""Study design -> cells -> trials: every cell x split (fold or held-out group) x seed as one full run config.

* ``factorial``: every combination of the factors' levels;
* ``one_at_a_time``: the baseline cell (every factor at its baseline level) plus one cell per non-baseline level
  of each factor, the other factors kept at baseline;
* ``leave_one_out``: the full (base) config plus one cell per factor without it; each factor then has the levels
  ``with`` and ``without`` (baseline ``without``, so an effect reads "full minus without X": what X contributes).

A cell's overrides are merged from its levels; two factors setting the same key (or one key inside another) to
different values in one cell is an error naming both, because the design could not say which factor caused what.
Keys the repeats control (``data.cv``, ``data.fold``, ``data.test_group``, ``trainer.seed``) cannot be factors.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmtune.config.loading import set_dotted
from mmtune.config.study import StudyConfig
from mmtune.errors import ConfigError

WITH, WITHOUT = "with", "without"
FULL_CELL, BASELINE_CELL = "full", "baseline"
RESERVED_KEYS = ("data.cv", "data.fold", "data.test_group", "trainer.seed", "name")
CELL_SEPARATOR = " / "


@dataclass(frozen=True)
class Cell:
    """One configuration of the study: a level per factor and the merged overrides of those levels."""

    name: str
    levels: dict[str, str]
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Replicate:
    """One split of the data that every cell is trained on: (fold of seed's partition | held-out group) x seed."""

    seed: int
    fold: int | None = None
    group: str | None = None
    partition_seed: int | None = None

    @property
    def split_id(self) -> str:
        where = f"f{self.fold}" if self.group is None else f"g={self.group}"
        return f"{where}/s{self.seed}"


@dataclass(frozen=True)
class TrialPlan:
    """One trial: a cell on a replicate, with its full run config."""

    key: str
    cell: Cell
    replicate: Replicate
    config: dict[str, Any]


@dataclass
class Design:
    """The expanded study: factors with their levels and baselines, cells, replicates, trials."""

    factors: dict[str, list[str]]
    baselines: dict[str, str]
    cells: list[Cell]
    replicates: list[Replicate]
    trials: list[TrialPlan]
    kind: str

    @property
    def reference_cell(self) -> str | None:
        """The cell every one-at-a-time / leave-one-out comparison is made against."""
        if self.kind == "leave_one_out":
            return FULL_CELL
        if self.kind == "one_at_a_time":
            return BASELINE_CELL
        return None


# ---------------------------------------------------------------------------------------------------- factors


def factor_levels(study: StudyConfig) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str]]:
    """Each factor's levels (level -> overrides) and baseline level; leave-one-out factors become with/without."""
    if study.design == "leave_one_out":
        levels = {f: {WITH: {}, WITHOUT: dict(drop)} for f, drop in study.factors.items()}
        return levels, {f: WITHOUT for f in study.factors}
    levels = {f: {str(lv): dict(ov or {}) for lv, ov in lvs.items()} for f, lvs in study.factors.items()}
    return levels, {f: study.baseline_level(f) for f in study.factors}


def check_override_keys(levels: Mapping[str, Mapping[str, Mapping[str, Any]]], where: str) -> None:
    """Every override key must be a run config key and not one the repeats set."""
    from mmtune.tuning.keypaths import check_key_path

    for factor, by_level in levels.items():
        for level, overrides in by_level.items():
            for key in overrides:
                at = f"{where}: factors.{factor}" + ("" if level in (WITH, WITHOUT) else f".{level}") + f".{key}"
                for reserved in RESERVED_KEYS:
                    if key == reserved or key.startswith(reserved + ".") or reserved.startswith(key + "."):
                        raise ConfigError(
                            f"{at}: {reserved} is set by `repeats` for every trial; it cannot be a factor"
                        )
                check_key_path(key, at)


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def merge_overrides(
    chosen: Mapping[str, str], levels: Mapping[str, Mapping[str, Mapping[str, Any]]], where: str
) -> dict[str, Any]:
    """The overrides of one cell; a key set by two factors to different values (or nested keys) is an error."""
    merged: dict[str, Any] = {}
    owner: dict[str, tuple[str, str]] = {}
    for factor, level in chosen.items():
        for key, value in levels[factor][level].items():
            for other_key, (other_factor, other_level) in owner.items():
                if other_factor == factor or not _related(key, other_key):
                    continue
                if key == other_key and _same(value, merged[other_key]):
                    continue
                raise ConfigError(
                    f"{where}: factors.{other_factor}.{other_level} sets {other_key} and factors.{factor}.{level} "
                    f"sets {key} ({_short(merged[other_key])} vs {_short(value)}) in the same cell; "
                    "each config key must belong to one factor"
                )
            merged[key] = copy.deepcopy(value)
            owner[key] = (factor, level)
    return merged


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def expand_cells(study: StudyConfig, where: str = "study") -> tuple[list[Cell], dict[str, list[str]], dict[str, str]]:
    """The cells of the design (see the module docstring), the factors' level names and the baselines."""
    levels, baselines = factor_levels(study)
    check_override_keys(levels, where)
    names = {f: list(lv) for f, lv in levels.items()}
    cells: list[Cell] = []
    if study.design == "factorial":
        for combo in itertools.product(*(names[f] for f in names)):
            chosen = dict(zip(names, combo, strict=True))
            cells.append(Cell(CELL_SEPARATOR.join(combo), chosen, merge_overrides(chosen, levels, where)))
    elif study.design == "one_at_a_time":
        base = dict(baselines)
        cells.append(Cell(BASELINE_CELL, base, merge_overrides(base, levels, where)))
        for factor in names:
            for level in names[factor]:
                if level == baselines[factor]:
                    continue
                chosen = {**base, factor: level}
                cells.append(Cell(f"{factor}={level}", chosen, merge_overrides(chosen, levels, where)))
    else:  # leave_one_out
        full = {f: WITH for f in names}
        cells.append(Cell(FULL_CELL, full, {}))
        for factor in names:
            chosen = {**full, factor: WITHOUT}
            cells.append(Cell(f"without {factor}", chosen, merge_overrides(chosen, levels, where)))
    seen: set[str] = set()
    for cell in cells:
        if cell.name in seen:
            raise ConfigError(f"{where}: two cells are both named {cell.name!r}; rename a level")
        seen.add(cell.name)
    return cells, names, baselines


# ---------------------------------------------------------------------------------------------------- replicates


def replicates(study: StudyConfig, groups: list[str] | None = None) -> list[Replicate]:
    """Splits x seeds, seed-major so that an interrupted study already holds complete paired blocks."""
    rep = study.repeats
    out: list[Replicate] = []
    for seed in rep.seeds:
        if rep.scheme == "kfold":
            partition_seed = rep.partition_seed + (seed if rep.partition == "repeated" else 0)
            out += [Replicate(seed, fold=f, partition_seed=partition_seed) for f in range(rep.k)]
        else:
            out += [Replicate(seed, group=g) for g in (rep.groups or groups or [])]
    return out


def trial_config(
    base: Mapping[str, Any],
    cell: Cell,
    replicate: Replicate,
    study: StudyConfig,
    study_name: str,
    stratify_by: str | None,
) -> dict[str, Any]:
    """The full run config of ``cell`` on ``replicate``, tagged for Aim (study, cell, factor levels, fold, seed)."""
    config = copy.deepcopy(dict(base))
    for key, value in cell.overrides.items():
        set_dotted(config, key, copy.deepcopy(value))
    data = config.setdefault("data", {})
    data.pop("fold", None)
    data.pop("test_group", None)
    data.pop("cv", None)
    if replicate.group is None:
        data["cv"] = {
            "k": study.repeats.k,
            "fold": replicate.fold,
            "seed": replicate.partition_seed,
            "stratify_by": stratify_by,
        }
    else:
        data["test_group"] = replicate.group
    set_dotted(config, "trainer.seed", replicate.seed)
    tags = dict(config.setdefault("tracking", {}).get("tags") or {})
    tags.update({f: lv for f, lv in cell.levels.items()})
    tags.update(
        study=study_name,
        cell=cell.name,
        fold=str(replicate.fold) if replicate.group is None else f"group={replicate.group}",
        seed=str(replicate.seed),
    )
    config["tracking"]["tags"] = {str(k): str(v) for k, v in tags.items()}
    config["tracking"]["experiment"] = study_name
    return config


def expand(
    study: StudyConfig,
    base: Mapping[str, Any],
    study_name: str,
    *,
    groups: list[str] | None = None,
    stratify_by: str | None = None,
    where: str = "study",
) -> Design:
    """Cells x replicates -> trials (each with its full run config and a stable key ``<cell> @ <split>``)."""
    cells, names, baselines = expand_cells(study, where)
    reps = replicates(study, groups)
    trials = [
        TrialPlan(
            f"{cell.name} @ {rep.split_id}", cell, rep, trial_config(base, cell, rep, study, study_name, stratify_by)
        )
        for rep in reps
        for cell in cells
    ]
    return Design(names, baselines, cells, reps, trials, study.design)


def design_frame(design: Design, sizes: Mapping[str, Mapping[str, int]] | None = None) -> Any:
    """``cells.parquet``: one row per planned trial (key, cell, factor levels, fold/group, seed, split sizes)."""
    import pandas as pd

    rows = []
    for trial in design.trials:
        rep = trial.replicate
        row: dict[str, Any] = {
            "key": trial.key,
            "cell": trial.cell.name,
            **{f"factor.{f}": lv for f, lv in trial.cell.levels.items()},
            "split_id": rep.split_id,
            "fold": rep.fold if rep.fold is not None else -1,
            "group": rep.group or "",
            "seed": rep.seed,
            "partition_seed": rep.partition_seed if rep.partition_seed is not None else -1,
        }
        for name, value in (sizes or {}).get(rep.split_id, {}).items():
            row[name] = int(value)
        rows.append(row)
    return pd.DataFrame(rows)


def split_sizes(
    design: Design, data_path: str | Path, manifest: Any, stratify_by: str | None
) -> dict[str, dict[str, int]]:
    """Train / val / test patients of every replicate (the Nadeau-Bengio correction needs n_train and n_test)."""
    import pyarrow.dataset as pads

    from mmtune.data import cv
    from mmtune.data.format import GROUP, SPLIT, shard_paths

    out: dict[str, dict[str, int]] = {}
    table = (
        pads.dataset([str(p) for p in shard_paths(data_path, manifest)], format="parquet")
        .to_table(columns=[SPLIT, GROUP])
        .to_pandas()
    )
    n_test = int((table[SPLIT] == "test").sum())
    partitions: dict[int, Any] = {}
    for rep in design.replicates:
        if rep.group is None:
            if rep.partition_seed not in partitions:
                partitions[rep.partition_seed] = cv.partition(  # type: ignore[index]
                    data_path, manifest, design_k(design), int(rep.partition_seed or 0), stratify_by
                )
            folds = partitions[rep.partition_seed]  # type: ignore[index]
            n_val = int((folds[cv.FOLD_COLUMN] == rep.fold).sum())
            out[rep.split_id] = {"n_train": len(folds) - n_val, "n_val": n_val, "n_test": n_test}
        else:
            held = table[GROUP] == rep.group
            val = ~held & (table[SPLIT] == "val")
            out[rep.split_id] = {
                "n_train": int((~held & ~val).sum()),
                "n_val": int(val.sum()),
                "n_test": int(held.sum()),
            }
    return out


def design_k(design: Design) -> int:
    folds = [r.fold for r in design.replicates if r.fold is not None]
    return max(folds) + 1 if folds else 0
