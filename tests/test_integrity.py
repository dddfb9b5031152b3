"""Data integrity (issue 11): the manifest records each shard's size, rows and SHA-256; every command that trains
or evaluates checks them first and refuses a changed shard in one line (exit 2), before Ray starts.

Real corrupted files: a copy of the tiny prepared data set with 400 flipped bytes, or a truncated shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers.ablation import study_yaml
from helpers.tune import write_space
from mmtune.cli import main
from mmtune.data.format import read_manifest
from mmtune.data.integrity import VERIFIED_DIR, verify_prepared
from mmtune.errors import DataError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_copy(prepared_synthetic, tmp_path, monkeypatch) -> Path:
    """A private copy of the prepared data (its own node-cache folder, so remembered hashes start empty)."""
    monkeypatch.setenv("MMTUNE_CACHE_DIR", str(tmp_path / "node-cache"))
    out = tmp_path / "data"
    shutil.copytree(prepared_synthetic, out)
    return out


def flip_bytes(path: Path, count: int = 400) -> None:
    """Invert ``count`` bytes in the middle of the file (same size; the image column is not checksummed)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2 - count // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: only the content differs


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code or 0), capsys.readouterr().err


def train_config(folder: Path, data: Path) -> Path:
    doc = yaml.safe_load((REPO / "configs" / "concat.yaml").read_text(encoding="utf-8"))
    doc["data"] = {"path": str(data), "batch_size": 8}
    doc["trainer"]["max_epochs"] = 1
    doc["tracking"] = {"aim_repo": None}
    doc["output_dir"] = str(folder / "runs")
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_manifest_records_each_shard(prepared_synthetic):
    manifest = read_manifest(prepared_synthetic)
    assert [i.name for i in manifest.shard_info] == manifest.shards
    for info in manifest.shard_info:
        path = prepared_synthetic / info.name
        assert info.bytes == path.stat().st_size
        assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert info.rows == pq.ParquetFile(path).metadata.num_rows
    assert sum(i.rows for i in manifest.shard_info) == manifest.n_patients


def test_flipped_bytes_refused_by_train(data_copy, tmp_path, capsys):
    shard = data_copy / read_manifest(data_copy).shards[0]
    flip_bytes(shard)
    code, err = run_cli(["train", str(train_config(tmp_path, data_copy))], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(shard) in lines[0] and "does not match manifest.json" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_truncated_shard_refused_by_train(data_copy, tmp_path, capsys):
    shard = data_copy / read_manifest(data_copy).shards[-1]
    truncate(shard)
    code, err = run_cli(["train", str(train_config(tmp_path, data_copy))], capsys)
    assert code == 2
    assert err.count("\n") == 1 and str(shard) in err and "truncated or replaced" in err


def test_missing_shard_refused(data_copy, capsys):
    shard = data_copy / read_manifest(data_copy).shards[0]
    shard.unlink()
    with pytest.raises(DataError, match=f"{shard}: shard listed in manifest.json is missing"):
        verify_prepared(data_copy)


def test_tune_and_ablate_refuse_before_ray_starts(data_copy, tmp_path, capsys):
    import ray

    flip_bytes(data_copy / read_manifest(data_copy).shards[0])
    was_running = ray.is_initialized()
    space = write_space(tmp_path, data_copy)
    code, err = run_cli(["tune", str(space), "--results", str(tmp_path / "results")], capsys)
    assert code == 2 and err.count("\n") == 1 and "part-00000.parquet" in err
    study = study_yaml(tmp_path / "study.yaml", data_copy)
    code, err = run_cli(["ablate", str(study), "--results", str(tmp_path / "results")], capsys)
    assert code == 2 and err.count("\n") == 1 and "part-00000.parquet" in err
    assert ray.is_initialized() == was_running
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.parquet"))


def test_evaluate_refuses_changed_data(data_copy, tmp_path, capsys):
    flip_bytes(data_copy / read_manifest(data_copy).shards[0])
    code, err = run_cli(["evaluate", str(tmp_path / "no-run"), "--data", str(data_copy)], capsys)
    assert code == 2 and "does not match manifest.json" in err


def test_hash_remembered_per_node_but_not_fooled(data_copy, monkeypatch):
    """The second check reads no shard bytes; a rewrite with the same size and mtime still changes ctime."""
    manifest = read_manifest(data_copy)
    verify_prepared(data_copy, manifest)
    remembered = list((Path(os.environ["MMTUNE_CACHE_DIR"]) / VERIFIED_DIR).glob("*.json"))
    assert len(remembered) == len(manifest.shards)
    assert json.loads(remembered[0].read_text())["sha256"] in {i.sha256 for i in manifest.shard_info}

    import mmtune.data.integrity as integrity

    def no_hashing(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(integrity, "sha256_file", no_hashing)
    verify_prepared(data_copy, manifest)  # remembered: no shard is read
    monkeypatch.undo()
    monkeypatch.setenv("MMTUNE_CACHE_DIR", str(remembered[0].parents[1]))
    flip_bytes(data_copy / manifest.shards[0])
    with pytest.raises(DataError, match=r"does not match manifest\.json"):
        verify_prepared(data_copy, manifest)


def test_manifest_without_hashes_is_checked_structurally(data_copy):
    """Data prepared before shard hashes existed: a truncated shard is still one line naming it."""
    path = data_copy / "manifest.json"
    doc = json.loads(path.read_text())
    doc.pop("shard_info")
    path.write_text(json.dumps(doc))
    verify_prepared(data_copy)
    shard = data_copy / doc["shards"][0]
    truncate(shard)
    with pytest.raises(DataError, match=f"{shard}: not a readable Parquet file"):
        verify_prepared(data_copy)
