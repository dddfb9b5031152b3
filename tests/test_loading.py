"""Prepared Parquet -> batches: split / fold / group selection, fold refit of clinical normalisation, label masks,
multi-dataset masking, and the Ray Data path yielding exactly what the in-memory path yields."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from mmtune.config.run import DataConfig, DataSource
from mmtune.data.format import read_manifest, shard_paths
from mmtune.data.integrity import record_shards
from mmtune.data.loading import (
    iterate_batches,
    load_splits,
    make_loader,
    ray_datasets,
    resolve_data,
    shard_batches,
)
from mmtune.errors import DataError

TASKS = ["covid", "morbidity", "mortality", "severity", "findings", "lesion_seg"]


def _table(root: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(str(p)) for p in shard_paths(root)])


def _split_ids(prepared: Path, **data) -> dict[str, list[str]]:
    info = resolve_data(DataConfig(path=str(prepared), **data), ["covid"])
    return {s: list(a.columns["patient_id"]) for s, a in load_splits(info).items()}


def test_split_column_fold_and_test_group_selection(prepared_synthetic: Path) -> None:
    table = _table(prepared_synthetic).to_pandas()
    ids = _split_ids(prepared_synthetic)
    for split in ("train", "val", "test"):
        assert sorted(ids[split]) == sorted(table.loc[table["split"] == split, "patient_id"])
    assert sum(len(v) for v in ids.values()) == len(table)

    fold = 1
    ids = _split_ids(prepared_synthetic, fold=fold)
    non_test = table[table["split"] != "test"]
    assert sorted(ids["val"]) == sorted(non_test.loc[non_test["fold"] == fold, "patient_id"])
    assert sorted(ids["train"]) == sorted(non_test.loc[non_test["fold"] != fold, "patient_id"])
    assert sorted(ids["test"]) == sorted(table.loc[table["split"] == "test", "patient_id"])
    assert len(ids["val"]) > 0 and not set(ids["val"]) & set(ids["train"])

    group = sorted(table["group"].unique())[0]
    ids = _split_ids(prepared_synthetic, test_group=group)
    assert sorted(ids["test"]) == sorted(table.loc[table["group"] == group, "patient_id"])
    held_out = set(ids["test"])
    assert not held_out & (set(ids["train"]) | set(ids["val"]))
    assert len(held_out) + len(ids["train"]) + len(ids["val"]) == len(table)

    with pytest.raises(DataError, match=r"data\.test_group"):
        _split_ids(prepared_synthetic, test_group="no such hospital")
    with pytest.raises(DataError, match=r"data\.fold"):
        _split_ids(prepared_synthetic, fold=99)


def test_fold_refits_clinical_normalisation_on_training_rows(prepared_synthetic: Path) -> None:
    table = _table(prepared_synthetic)
    frame = table.select(["patient_id", "split", "fold"]).to_pandas()
    raw = np.stack(table["clinical_raw"].to_numpy(zero_copy_only=False)).astype(np.float64)
    fold = 2
    train = ((frame["split"] != "test") & (frame["fold"] != fold)).to_numpy()
    mean = np.nanmean(raw[train], axis=0)
    std = np.nanstd(raw[train], axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    expected = np.where(np.isnan(raw), 0.0, (raw - mean) / std)
    by_id = dict(zip(frame["patient_id"], range(len(frame))))

    info = resolve_data(DataConfig(path=str(prepared_synthetic), fold=fold), ["covid"])
    splits = load_splits(info)
    for split in ("train", "val", "test"):
        cols = splits[split].columns
        rows = [by_id[p] for p in cols["patient_id"]]
        np.testing.assert_allclose(cols["clinical"], expected[rows], atol=1e-5)
        np.testing.assert_array_equal(cols["clinical_missing"], np.isnan(raw[rows]).astype(np.float32))
    # the refit differs from the prepared (train-split) statistics: no stale normalisation slipped through
    stored = np.stack(table["clinical"].to_numpy(zero_copy_only=False))
    assert not np.allclose(stored[train], expected[train], atol=1e-3)
    # default selection keeps the prepared values untouched
    default = load_splits(resolve_data(DataConfig(path=str(prepared_synthetic)), ["covid"]))["val"].columns
    rows = [by_id[p] for p in default["patient_id"]]
    np.testing.assert_allclose(default["clinical"], stored[rows], atol=1e-6)


def test_batches_carry_masks_and_labels_as_the_contract_says(prepared_synthetic: Path) -> None:
    manifest = read_manifest(prepared_synthetic)
    table = _table(prepared_synthetic).to_pandas().set_index("patient_id")
    cfg = DataConfig(path=str(prepared_synthetic), batch_size=8)
    info = resolve_data(cfg, TASKS)
    splits = load_splits(info)
    batch = next(iter(make_loader(splits["val"], info, cfg, train=False)))
    k, h, w = manifest.image.shape
    n = len(batch["patient_id"])
    assert batch["image"].shape == (n, k, h, w) and batch["image"].dtype == torch.float32
    assert float(batch["image"].min()) >= 0.0 and float(batch["image"].max()) <= 1.0
    assert batch["mask"].shape == (n, k, h, w) and batch["has_mask"].dtype == torch.bool
    assert batch["clinical"].shape == (n, len(manifest.clinical.features))
    assert batch["y_covid"].dtype == torch.float32 and batch["y_morbidity"].dtype == torch.int64
    assert batch["y_findings"].shape == (n, 3)
    for i, pid in enumerate(batch["patient_id"]):
        row = table.loc[pid]
        assert batch["has_mask"][i].item() == (row["mask"] is not None)
        mortality = int(row["y_mortality"])
        got = batch["y_mortality"][i].item()
        assert np.isnan(got) if mortality == -1 else got == mortality, pid
        assert batch["y_morbidity"][i].item() == int(row["y_morbidity"])
        np.testing.assert_allclose(batch["y_findings"][i].numpy(), np.asarray(row["y_findings"], np.float32))
    # every split: masked binary labels become NaN, exactly where the Parquet says -1
    every = next(iterate_batches(splits["train"], info, 10_000))
    stored = table.loc[every["patient_id"], "y_mortality"].to_numpy()
    assert np.array_equal(np.isnan(every["y_mortality"].numpy()), stored == -1)
    assert (stored == -1).any(), "the synthetic data mask some mortality labels"
    # training batches: no ids, shuffled, drop_last keeps batch norm safe
    train_batch = next(iter(make_loader(splits["train"], info, cfg, train=True)))
    assert "patient_id" not in train_batch and train_batch["image"].shape[0] == 8


def _derived_source(prepared: Path, out: Path, *, drop_task: str | None = None, classes: dict | None = None) -> Path:
    """A second prepared data set made from the first: other patient ids, optionally a task removed or relabelled."""
    shutil.copytree(prepared, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for name in manifest["shards"]:
        table = pq.read_table(out / name)
        ids = [f"B-{p}" for p in table["patient_id"].to_pylist()]
        table = table.set_column(table.schema.get_field_index("patient_id"), "patient_id", pa.array(ids))
        if drop_task:
            table = table.drop_columns([f"y_{drop_task}"])
        pq.write_table(table, out / name)
    manifest["name"] = "other"
    manifest["shard_info"] = record_shards(out, manifest["shards"])
    if drop_task:
        manifest["tasks"] = [t for t in manifest["tasks"] if t["name"] != drop_task]
    for task in manifest["tasks"]:
        if classes and task["name"] in classes:
            task["classes"] = classes[task["name"]]
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_multi_dataset_masks_missing_tasks_and_weights_sampling(prepared_synthetic: Path, tmp_path: Path) -> None:
    other = _derived_source(prepared_synthetic, tmp_path / "other", drop_task="morbidity")
    cfg = DataConfig(
        path=[DataSource(path=str(prepared_synthetic), weight=1.0), DataSource(path=str(other), weight=3.0)],
        batch_size=8,
    )
    info = resolve_data(cfg, ["covid", "morbidity"])
    assert info.source_names == ["synthetic", "other"]
    splits = load_splits(info)
    train = splits["train"].columns
    from_other = train["dataset"] == 1
    assert from_other.sum() == (train["dataset"] == 0).sum() > 0
    assert all(str(p).startswith("B-") for p in train["patient_id"][from_other])
    assert (train["y_morbidity"][from_other] == -1).all()  # the task this source lacks is masked
    assert (train["y_morbidity"][~from_other] >= 0).all()
    np.testing.assert_array_equal(train["y_covid"][from_other], train["y_covid"][~from_other])
    # weighted sampling: source "other" fills ~3/4 of the sampled training rows
    loader = make_loader(splits["train"], info, cfg, train=True, seed=3)
    drawn = torch.cat([b["dataset"] for _ in range(20) for b in loader])
    assert 0.68 < drawn.float().mean().item() < 0.82
    batch = next(iter(loader))
    assert torch.isin(batch["y_morbidity"][batch["dataset"] == 1], torch.tensor([-1])).all()


def test_data_sets_disagreeing_on_a_tasks_classes_is_one_line_error(prepared_synthetic: Path, tmp_path: Path) -> None:
    other = _derived_source(prepared_synthetic, tmp_path / "relabelled", classes={"covid": ["COVID-19", "Control"]})
    cfg = DataConfig(path=[DataSource(path=str(prepared_synthetic)), DataSource(path=str(other))])
    with pytest.raises(DataError) as err:
        resolve_data(cfg, ["covid"])
    message = str(err.value)
    assert "\n" not in message and "'covid'" in message
    assert str(prepared_synthetic.resolve()) in message and str(other.resolve()) in message


@pytest.mark.parametrize("mode", [pytest.param("stream", marks=pytest.mark.slow), "memory"])
def test_ray_data_path_yields_the_in_memory_rows(prepared_synthetic: Path, ray_local, mode: str) -> None:
    cfg = DataConfig(path=str(prepared_synthetic), fold=1)  # fold: the Ray path refits normalisation too
    info = resolve_data(cfg, TASKS)
    memory = load_splits(info, ("train", "val"))
    datasets = ray_datasets(info, ("train", "val"), mode=mode)
    for split in ("train", "val"):
        batches = list(shard_batches(datasets[split].iterator(), info, 7, train=False))
        got_ids = [p for b in batches for p in b["patient_id"]]
        ref = next(iterate_batches(memory[split], info, 10_000))
        assert sorted(got_ids) == sorted(ref["patient_id"])
        order = [got_ids.index(p) for p in ref["patient_id"]]
        for key, value in ref.items():
            if key == "patient_id":
                continue
            got = torch.cat([b[key] for b in batches])[order]
            assert got.dtype == value.dtype, key
            assert torch.allclose(got.float(), value.float(), equal_nan=True), key
