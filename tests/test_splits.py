"""Patient-level splits: stratified test + k folds, a given column, whole groups; and the leakage check."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mmtune.config.card import SplitSpec
from mmtune.data.splits import assign_splits, check_no_leakage
from mmtune.errors import DataError

N = 200
IDS = [f"P{i}" for i in range(N)]
# 60 % class 0, 30 % class 1, 10 % class 2, a few masked
STRATA = np.array([0] * 120 + [1] * 60 + [2] * 16 + [-1] * 4)


def test_stratified_test_and_folds() -> None:
    spec = SplitSpec(method="stratified", test_fraction=0.2, k_folds=5, seed=3, stratify_by="x")
    result = assign_splits(spec, IDS, strata=STRATA)
    test = result.split == "test"
    assert test.sum() == 40
    assert (result.fold[test] == -1).all() and (result.fold[~test] >= 0).all()
    assert set(result.fold[~test].tolist()) == {0, 1, 2, 3, 4}
    assert ((result.split == "val") == (result.fold == 0)).all()
    # stratified: every split and fold holds each class in proportion (+-2 patients)
    assert Counter(STRATA[test].tolist())[2] in (3, 4)
    for fold in range(5):
        members = STRATA[result.fold == fold]
        assert len(members) == 32
        assert abs(Counter(members.tolist())[0] - 0.6 * 32) <= 2
        assert abs(Counter(members.tolist())[1] - 0.3 * 32) <= 2
    again = assign_splits(spec, IDS, strata=STRATA)
    assert (again.split == result.split).all() and (again.fold == result.fold).all()
    other = assign_splits(spec.model_copy(update={"seed": 4}), IDS, strata=STRATA)
    assert not (other.split == result.split).all()


def test_single_validation_split_uses_val_fraction() -> None:
    spec = SplitSpec(test_fraction=0.25, k_folds=1, val_fraction=0.2, seed=0)
    result = assign_splits(spec, IDS, strata=STRATA)
    assert Counter(result.split.tolist()) == {"train": 120, "val": 30, "test": 50}
    assert set(result.fold[result.split != "test"].tolist()) == {0}


def test_given_split_column() -> None:
    given = ["train", "Validation", "TEST", "valid"] * 5
    spec = SplitSpec(method="given", column="set")
    result = assign_splits(spec, IDS[:20], given=given)
    assert result.split.tolist()[:4] == ["train", "val", "test", "val"]
    assert result.fold.tolist()[:4] == [0, 0, -1, 0]
    with pytest.raises(DataError, match=r"row 'P1', column 'set': split value 'dev set'"):
        assign_splits(spec, IDS[:2], given=["train", "dev set"], source="t.csv")


def test_group_split_keeps_groups_whole() -> None:
    groups = np.array([f"H{i % 7}" for i in range(N)], dtype=object)
    spec = SplitSpec(method="group", test_fraction=0.2, k_folds=3, seed=1, group_column="Hospital")
    result = assign_splits(spec, IDS, strata=STRATA, groups=groups)
    frame = pd.DataFrame({"group": groups, "split": result.split, "fold": result.fold})
    assert (frame.groupby("group")["fold"].nunique() == 1).all()
    assert (frame.groupby("group")["split"].nunique() == 1).all()
    assert frame.loc[frame.split == "test", "group"].nunique() == 2  # ceil(0.2 * 7)
    named = assign_splits(spec.model_copy(update={"test_groups": ["H3"]}), IDS, strata=STRATA, groups=groups)
    assert set(groups[named.split == "test"].tolist()) == {"H3"}
    with pytest.raises(DataError, match=r"split\.test_groups names 'H9'"):
        assign_splits(spec.model_copy(update={"test_groups": ["H9"]}), IDS, groups=groups)
    with pytest.raises(DataError, match="needs at least 7 groups outside the test set; found 5"):
        assign_splits(spec.model_copy(update={"k_folds": 7}), IDS, groups=groups)


def test_too_few_patients_for_folds() -> None:
    with pytest.raises(DataError, match=r"split.k_folds = 5 needs at least 5 patients .* found 3"):
        assign_splits(SplitSpec(test_fraction=0.25, k_folds=5), IDS[:4])


def test_tiny_classes_do_not_break_stratification() -> None:
    strata = np.array([0] * 18 + [1] * 1 + [2] * 1)
    result = assign_splits(SplitSpec(test_fraction=0.2, k_folds=3, seed=0), IDS[:20], strata=strata)
    assert Counter(result.split.tolist())["test"] == 4


def test_check_no_leakage_refuses_crafted_tables() -> None:
    good = pd.DataFrame({"patient_id": ["a", "b", "c"], "split": ["train", "val", "test"], "fold": [1, 0, -1]})
    check_no_leakage(good)
    check_no_leakage(pa.Table.from_pandas(good))
    leaking = pd.DataFrame({"patient_id": ["a", "b", "a"], "split": ["train", "val", "test"], "fold": [1, 0, -1]})
    with pytest.raises(DataError, match=r"patient 'a' is in more than one split \(test, train\)"):
        check_no_leakage(leaking)
    twice = {"patient_id": ["a", "a"], "split": ["train", "train"], "fold": [0, 0]}
    with pytest.raises(DataError, match="'a' appears in more than one row"):
        check_no_leakage(twice)
    contradicting = {"patient_id": ["a", "b"], "split": ["test", "train"], "fold": [2, 0]}
    with pytest.raises(DataError, match="split 'test' contradicts fold 2"):
        check_no_leakage(contradicting)
    with pytest.raises(DataError, match="unknown split value 'holdout'"):
        check_no_leakage({"patient_id": ["a"], "split": ["holdout"]})
