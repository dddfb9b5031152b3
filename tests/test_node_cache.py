"""The per-node decoded cache: the same rows as the in-memory path, memory-mapped, built once, keyed by content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mmtune.config.run import DataConfig
from mmtune.data.loading import load_splits, make_loader, resolve_data, uses_node_cache
from mmtune.data.node_cache import cache_key, entry_dir

TASKS = ["covid", "morbidity", "findings", "severity", "lesion_seg"]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MMTUNE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("data", [{}, {"fold": 1}])
def test_node_cache_gives_the_in_memory_rows_memory_mapped(prepared_synthetic: Path, cache_dir: Path, data) -> None:
    info = resolve_data(DataConfig(path=str(prepared_synthetic), **data), TASKS)
    assert info.needs_mask
    memory = load_splits(info, cache="memory")
    cached = load_splits(info, cache="node")
    for split in ("train", "val", "test"):
        a, b = memory[split].columns, cached[split].columns
        assert set(a) == set(b) and len(a["image"]) > 0
        for name in a:
            assert np.array_equal(a[name], b[name]), (split, name)
            assert a[name].dtype == b[name].dtype, (split, name)
        assert isinstance(b["image"], np.memmap) and isinstance(b["mask"], np.memmap)
        assert np.array_equal(memory[split].weights, cached[split].weights)
    stamp = (entry_dir(info) / "train" / "image.npy").stat().st_mtime_ns
    load_splits(info, cache="node")  # a second trial maps the entry: no rebuild
    assert (entry_dir(info) / "train" / "image.npy").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in entry_dir(info).iterdir()) == ["test", "train", "val"]


def test_cache_key_follows_run_options_and_policy(prepared_synthetic: Path, cache_dir: Path) -> None:
    base = resolve_data(DataConfig(path=str(prepared_synthetic)), TASKS)
    assert cache_key(base) == cache_key(resolve_data(DataConfig(path=str(prepared_synthetic)), TASKS))
    assert cache_key(base) != cache_key(resolve_data(DataConfig(path=str(prepared_synthetic), fold=0), TASKS))
    assert cache_key(base) != cache_key(resolve_data(DataConfig(path=str(prepared_synthetic)), ["covid"]))
    assert not uses_node_cache(base, "auto")  # tiny: a private copy, no files
    assert uses_node_cache(base, "node") and not uses_node_cache(base, "memory")
    # no decoded entry; only the shards' verified hashes (mmtune.data.integrity) are remembered
    assert [p.name for p in cache_dir.iterdir()] == ["verified"]


def test_ranks_of_a_node_cache_loader_split_the_rows(prepared_synthetic: Path, cache_dir: Path) -> None:
    cfg = DataConfig(path=str(prepared_synthetic), batch_size=4)
    info = resolve_data(cfg, ["covid"])
    train = load_splits(info, ("train",), cache="node")["train"]
    seen = []
    for rank in (0, 1):
        loader = make_loader(train, info, cfg, train=True, seed=3, rank=rank, world_size=2)
        loader.sampler.set_epoch(0)
        first = [i for batch in loader.sampler for i in batch]
        loader.sampler.set_epoch(1)
        second = [i for batch in loader.sampler for i in batch]
        assert len(first) == len(second) == (len(train) // 2) // 4 * 4
        assert first != second  # reshuffled per epoch
        seen.append(set(first))
        assert sum(int(b["image"].shape[0]) for b in loader) == len(first)
    assert not seen[0] & seen[1]
