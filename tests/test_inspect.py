"""``mmtune data inspect``: counts per split x class, clinical missingness, and the montage PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from mmtune.cli import main
from mmtune.data import format as fmt
from mmtune.data.inspect import montage, summarize
from mmtune.errors import DataError


def test_summary_matches_shards(prepared_synthetic: Path) -> None:
    summary = summarize(prepared_synthetic)
    manifest = summary.manifest
    table = pq.read_table(fmt.shard_paths(prepared_synthetic)[0], columns=["split", "clinical_missing"])
    splits = np.array(table.column("split").to_pylist())
    missing = np.array(table.column("clinical_missing").to_pylist())
    assert summary.split_sizes == {s: int((splits == s).sum()) for s in fmt.SPLITS}
    j = manifest.clinical.features.index("IL-6")
    assert summary.missing["IL-6"]["all"] == pytest.approx(missing[:, j].mean())
    assert summary.missing["IL-6"]["test"] == pytest.approx(missing[splits == "test", j].mean())
    assert summary.missing["Age"]["all"] == 0.0


def test_inspect_cli_prints_tables_and_writes_montage(prepared_synthetic: Path, tmp_path: Path, capsys) -> None:
    plot = tmp_path / "montage.png"
    args = ["data", "inspect", str(prepared_synthetic), "--plot", str(plot), "--task", "morbidity", "--per-class", "3"]
    try:
        main(args)
    except SystemExit as done:  # typer ends a successful command with Exit(0)
        assert done.code in (0, None)
    out = capsys.readouterr().out
    manifest = fmt.read_manifest(prepared_synthetic)
    train_type2 = manifest.counts["train"]["morbidity"]["Type II"]
    assert "task morbidity (multiclass)" in out and "Type II" in out and str(train_type2) in out
    assert "clinical features: share missing" in out and "IL-6" in out
    import matplotlib.image as mpimg

    pixels = mpimg.imread(plot)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels[..., :3].std() > 0.05


def test_montage_refuses_non_class_task(prepared_synthetic: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs a binary or multiclass task"):
        montage(prepared_synthetic, tmp_path / "x.png", task="severity")


def test_inspect_of_a_non_dataset_is_one_line_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["data", "inspect", str(tmp_path)])
    assert info.value.code == 2
    assert "not a prepared data set" in capsys.readouterr().err
