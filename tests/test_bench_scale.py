"""``mmtune bench scale`` and ``bench concurrent`` at tiny sizes: the JSON they print and what it must hold.

No timing thresholds (the machine is shared): the tests check the keys, that the numbers are real measurements,
that prepare at 1 and 2 CPUs writes the same bytes, and that concurrent trials over the node cache hold the data
once where private copies hold it per trial.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mmtune.cli import main


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.mark.slow
def test_bench_scale_prints_ratios_and_prepares_the_same_bytes_at_any_cpu_count(
    tmp_path: Path, ray_local, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # works from any directory
    keep = tmp_path / "keep"
    args = ["bench", "scale", "--patients", "14", "--size", "32", "--slices", "3", "--prepared-size", "16"]
    args += ["--prepared-slices", "2", "--volumes", "12", "--volume-size", "24", "--volume-slices", "6"]
    args += ["--volume-prepared-size", "8", "--volume-prepared-depth", "4", "--no-ray-paths", "--keep", str(keep)]
    assert run_cli(args) == 0
    result = json.loads(capsys.readouterr().out)
    for name, shape in (("ictcf", [2, 16, 16]), ("volumes", [4, 8, 8])):
        side = result[name]
        assert side["image"] == shape and side["patients"] >= 12
        assert set(side["ratio_per_core"]) == {"1", "2"} and all(v > 0 for v in side["ratio_per_core"].values())
        assert side["speedup"] > 0 and side["decode_only"]["patients_per_s"] > 0
        assert side["raw_bytes"] > side["prepared_bytes"] > 0
        assert result["ratio_per_core"][name] == side["ratio_per_core"]
        one, two = digests(keep / f"{name}_prepared_1"), digests(keep / f"{name}_prepared_2")
        assert one == two and any(k.endswith(".parquet") for k in one)
    loaders = result["loaders"]
    assert {"plain_read", "in_memory_epoch", "node_cache_warm", "node_cache_cold"} == set(loaders["patients_per_s"])
    assert result["beyond_memory_ratio"] == loaders["vs_in_memory"]["node_cache_cold"] > 0
    assert loaders["vs_in_memory"]["in_memory_epoch"] == 1.0 and loaders["node_cache_bytes"] > 0
    for cache in ("node", "memory"):
        assert loaders["one_trial_memory_mb"][cache]["pss"] > 0
    assert result["synth"]["ictcf"]["files"] > 14 * 3 and result["driver_peak_rss_mb"] > 0


@pytest.mark.slow
def test_bench_concurrent_counts_node_cache_data_once(prepared_synthetic: Path, tmp_path: Path) -> None:
    import shutil

    from mmtune.bench.concurrent import run
    from mmtune.bench.synthetic import replicate_rows

    data = tmp_path / "big"
    shutil.copytree(prepared_synthetic, data)
    replicate_rows(data, 96)  # ~45 MB of float16 images: enough to see one copy vs two
    result = run(trials=2, data=data, batch_size=64)
    node, memory = result["node_cache"], result["memory_path"]
    train_mb = result["train_images_mb"]
    assert train_mb > 20 and result["rss_ratio"] == node["rss_ratio"] > 0
    # private copies: each trial holds the training images; node cache: the node holds them once
    assert memory["n_trials_pss_mb"] - node["n_trials_pss_mb"] > 0.5 * train_mb
    assert node["rss_ratio"] < memory["rss_ratio"]
