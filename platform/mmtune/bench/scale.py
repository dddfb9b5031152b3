"""``mmtune bench scale``: the data paths at realistic sizes, as ratios against baselines measured in the same run.

Two raw data sets are generated with ``mmtune data synth`` (in parallel, byte-identical for any worker count):

* ``ictcf``: N iCTCF-like patients (default 1,500) of 512 px JPG / DICOM slices, prepared to K x S x S;
* ``volumes``: V NIfTI volumes (default 300 of 256 x 256 x 64, the ``prognosis`` variant), prepared as 3D
  ``volume3d`` D x S x S.

For each: ``prepare`` at 1 CPU and at every CPU (one Ray; ``num_cpus`` caps the decode tasks) against the
decode-only loop (``PatientDecoder.pixels``: the same SimpleITK reads, window and resize, without hashing, Arrow or
Parquet) over the same files in this process: ``ratio_per_core`` = prepare patients/s per CPU over the loop's
patients/s, ``speedup`` = all-CPU over 1-CPU patients/s. For the 2D set also the loaders (``bench data``'s
functions): plain pyarrow read, in-memory path, node cache warm and cold (pages evicted before each epoch), and,
unless ``--no-ray-paths``, the Ray Data stream; one trial's memory (PSS/RSS) with the node cache and with a private
copy; the driver's peak RSS; bytes on disk (raw, prepared, node cache).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from mmtune.bench.prepare import PeakMemory, decode_bound, tree_cpu_seconds

DATASETS = Path(__file__).resolve().parents[3] / "datasets"
ICTCF_CARD = DATASETS / "synthetic.yaml"
VOLUME_CARD = DATASETS / "synthetic_prognosis.yaml"
GOALS = {"ratio_per_core": 0.8, "speedup_2_cpus": 1.6, "beyond_memory_ratio": 0.7}


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remote_warm() -> Any:
    import ray

    @ray.remote(num_cpus=1)
    def warm() -> None:
        import mmtune.data.decode  # noqa: F401

    return warm


def prepare_side(name: str, card: Path, raw: Path, overrides: dict[str, Any], root: Path) -> dict[str, Any]:
    """Decode bound, then ``prepare`` at 1 CPU and every CPU; ratios, memory and bytes; the all-CPU output path."""
    import ray

    from mmtune.config.card import load_card_with_source
    from mmtune.data.plan import make_plan
    from mmtune.data.prepare import prepare

    plan = make_plan(load_card_with_source(card, overrides), raw)
    n = len(plan.jobs)
    bound = decode_bound(plan)
    all_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    # start and warm one Ray worker per CPU (decode imports) so neither timed run pays for worker start-up
    warm = _remote_warm()
    ray.get([warm.remote() for _ in range(all_cpus)])
    out: dict[str, Any] = {
        "patients": n,
        "raw_bytes": disk_bytes(raw),
        "decode_only": {
            "seconds": round(bound["seconds"], 2),
            "patients_per_s": round(bound["patients_per_s"], 2),
            "cpu_ms_per_patient": round(1000 * bound["cpu_s"] / n, 1),
        },
        "prepare": {},
        "ratio_per_core": {},
        "ratio_per_core_cpu": {},
    }
    for cpus in sorted({1, all_cpus}):
        target = root / f"{name}_prepared_{cpus}"
        with PeakMemory() as memory:
            cpu_before, start = tree_cpu_seconds(), time.perf_counter()
            prepare(card, target, source=raw, overrides=overrides, num_cpus=cpus, overwrite=True)
            seconds, cpu = time.perf_counter() - start, tree_cpu_seconds() - cpu_before
        rate = n / seconds
        out["prepare"][str(cpus)] = {
            "seconds": round(seconds, 2),
            "patients_per_s": round(rate, 2),
            "cpu_ms_per_patient": round(1000 * cpu / n, 1),
            "peak_tree_rss_mb": round(memory.peak / 2**20, 1),
        }
        out["ratio_per_core"][str(cpus)] = round(rate / cpus / bound["patients_per_s"], 3)
        out["ratio_per_core_cpu"][str(cpus)] = round(bound["cpu_s"] / cpu, 3)
        out["prepared_bytes"] = disk_bytes(target)
        out["prepared"] = str(target)
    if all_cpus > 1:
        out["speedup"] = round(
            out["prepare"][str(all_cpus)]["patients_per_s"] / out["prepare"]["1"]["patients_per_s"], 3
        )
    return out


def loader_side(prepared: Path, root: Path, batch_size: int, ray_paths: bool) -> dict[str, Any]:
    """Patients/s of each data path over the prepared 2D set, against the plain read and the in-memory path."""
    from mmtune.bench.concurrent import measure
    from mmtune.bench.data import baseline_read, best_of, in_memory, node_cache_epochs, ray_shard

    base_s, base_n = best_of(lambda: baseline_read(prepared, batch_size), 2)  # best of 2: the first pays imports
    baseline = base_n / base_s
    memory = in_memory(prepared, batch_size)
    node = node_cache_epochs(prepared, batch_size, root / "node-cache", epochs=2)
    rates = {
        "plain_read": baseline,
        "in_memory_epoch": memory["patients"] / memory["epoch_s"],
        "node_cache_warm": node["patients"] / node["warm_epoch_s"],
        "node_cache_cold": node["patients"] / node["cold_epoch_s"],
    }
    if ray_paths:
        rates["ray_stream"] = ray_shard(prepared, batch_size, 3, "stream", root / "ray")["rate"]
    out: dict[str, Any] = {"patients_per_s": {k: round(v, 1) for k, v in rates.items()}}
    out["vs_in_memory"] = {k: round(v / rates["in_memory_epoch"], 3) for k, v in rates.items()}
    out["vs_plain_read"] = {k: round(v / baseline, 3) for k, v in rates.items()}
    out["beyond_memory_ratio"] = out["vs_in_memory"]["node_cache_cold"]
    out["node_cache_bytes"] = node["bytes"]
    out["node_cache_build_s"] = round(node["build_s"], 2)
    trial = {}
    for cache in ("node", "memory"):
        figures = measure(prepared, cache, 1, root / "node-cache", batch_size)[0]
        trial[cache] = {k: round(figures[k] / 2**20, 1) for k in ("pss", "rss", "uss")}
    out["one_trial_memory_mb"] = trial
    return out


def run(
    *,
    patients: int = 1500,
    size: int = 512,
    slices: int = 16,
    prepared_size: int = 128,
    prepared_slices: int = 16,
    volumes: int = 300,
    volume_size: int = 256,
    volume_slices: int = 64,
    volume_prepared_size: int = 128,
    volume_prepared_depth: int = 64,
    batch_size: int = 32,
    workers: int = 0,
    ray_paths: bool = True,
    keep: Path | None = None,
) -> dict[str, Any]:
    """Generate, prepare and load both sets (in ``keep`` when given, else a temporary directory); one dict."""
    from mmtune.bench.ray_local import bench_ray
    from mmtune.data.synthetic import generate

    result: dict[str, Any] = {"benchmark": "scale", "machine_cpus": os.cpu_count(), "goals": GOALS}
    load = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory(prefix="mmtune-bench-scale-") as tmp, bench_ray():
        root = Path(keep) if keep is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        synth: dict[str, Any] = {}
        start = time.perf_counter()
        ictcf = generate(
            root / "ictcf_raw",
            patients=patients,
            size=size,
            slices=slices,
            quirks=False,
            workers=workers,
            overwrite=True,
        )
        synth["ictcf"] = {"seconds": round(time.perf_counter() - start, 1), "files": ictcf.files}
        start = time.perf_counter()
        vols = generate(
            root / "volumes_raw",
            patients=volumes,
            size=volume_size,
            slices=volume_slices,
            variant="prognosis",
            quirks=False,
            workers=workers,
            overwrite=True,
        )
        synth["volumes"] = {"seconds": round(time.perf_counter() - start, 1), "files": vols.files}
        result["synth"] = synth
        two_d = prepare_side(
            "ictcf",
            ICTCF_CARD,
            root / "ictcf_raw",
            {"image.size": prepared_size, "image.slices": prepared_slices},
            root,
        )
        three_d = prepare_side(
            "volumes",
            VOLUME_CARD,
            root / "volumes_raw",
            {
                "image.kind": "volume3d",
                "image.slices": None,
                "image.depth": volume_prepared_depth,
                "image.size": volume_prepared_size,
            },
            root,
        )
        result["ictcf"] = {"image": [prepared_slices, prepared_size, prepared_size], **two_d}
        result["volumes"] = {"image": [volume_prepared_depth, volume_prepared_size, volume_prepared_size], **three_d}
        result["loaders"] = loader_side(Path(two_d["prepared"]), root, batch_size, ray_paths)
        load.append(round(os.getloadavg()[0], 2))
    result["ratio_per_core"] = {"ictcf": two_d["ratio_per_core"], "volumes": three_d["ratio_per_core"]}
    result["speedup"] = {"ictcf": two_d.get("speedup"), "volumes": three_d.get("speedup")}
    result["beyond_memory_ratio"] = result["loaders"]["beyond_memory_ratio"]
    result["driver_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["loadavg"] = load
    return result
