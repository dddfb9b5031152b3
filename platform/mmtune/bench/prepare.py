"""``mmtune bench prepare``: patients/s of ``prepare`` at 1..N CPUs against a single-process decode-only loop.

The baseline (``decode_only``, the issue's "decode bound of one core", the same as ``bench scale``'s) decodes
exactly the files ``prepare`` decodes with ``PatientDecoder.pixels``: the same SimpleITK reads (a patient's slices
as one series), window and resize, one patient after another in this process, without hashing, Arrow, Parquet or
Ray. ``ratio_per_core`` (prepare patients/s per CPU over the baseline's patients/s) says how much of one core's
decode speed survives the pipeline; the goal is >= 0.8 and growing cores should scale it. ``read_only`` is the
stricter loop of the SimpleITK reads alone (``ratio_per_core_read_only``). ``ratio_per_core_cpu`` is the ratio in
CPU seconds (every process of the run, Ray's included), which stays meaningful when other jobs share the machine.
Use enough patients that the decode takes ~10 s (``--patients 3000`` at 64 px): fixed costs dominate below that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from mmtune.config.card import load_card_with_source
from mmtune.data import images as im
from mmtune.data.plan import make_plan
from mmtune.data.prepare import prepare

REPO_CARD = Path(__file__).resolve().parents[3] / "datasets" / "synthetic.yaml"
GOAL_RATIO_PER_CORE = 0.8


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants (Ray's raylet, GCS, workers, ...).

    Shared pages (the object store) count once per process mapping them, so this overestimates; ``idle_rss_mb``
    (same sum before ``prepare`` starts) separates Ray's own footprint from what preparing adds.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and every live descendant (Ray's raylet, GCS and workers).

    On a shared machine wall time measures the neighbours as much as the code; CPU seconds per patient do not.
    """
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += times.user + times.system
    return total


def decode_only(root: Path, jobs: list[dict[str, Any]]) -> tuple[float, int]:
    """Seconds to decode every image and mask file of ``jobs`` in this process, and the number of files.

    Each patient's slice files are read as one series (SimpleITK's fastest path, the one ``prepare`` uses too);
    files that fail are read one by one, volumes and masks with one ``ReadImage`` each.
    """
    n_files = 0
    start = time.perf_counter()
    for job in jobs:
        paths = [root / f for f in job["files"]]
        n_files += len(paths) + (1 if job.get("mask") else 0)
        try:
            if job["kind"] == "volume":
                im.read_image(paths[0])
            else:
                im.read_stack(paths)
        except im.UnreadableImage:
            for path in paths:
                with contextlib.suppress(im.UnreadableImage):
                    im.read_image(path)
        if job.get("mask"):
            im.read_image(root / job["mask"])
    return time.perf_counter() - start, n_files


def decode_bound(plan: Any) -> dict[str, float]:
    """Seconds and CPU seconds of the decode-only loop over every job of ``plan`` in this process."""
    from mmtune.data.decode import PatientDecoder

    decoder = PatientDecoder(plan.card.image, plan.root, plan.card.source.has_masks)

    def loop(jobs: list[dict[str, Any]]) -> None:
        for job in jobs:
            good = set(job["files"]) | ({job["mask"]} if job.get("mask") else set())
            decoder.pixels(job, good, {}, [])

    loop(plan.jobs[: max(1, len(plan.jobs) // 20)])  # warm the page cache and the readers
    cpu, start = time.process_time(), time.perf_counter()
    loop(plan.jobs)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "patients_per_s": len(plan.jobs) / seconds}


@contextmanager
def _ray(num_cpus: int) -> Iterator[None]:
    import ray

    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        yield
    finally:
        ray.shutdown()


def run(
    patients: int = 300, size: int = 64, slices: int = 8, cpus: tuple[int, ...] = (1, 2), seed: int = 0
) -> dict[str, Any]:
    """Generate synthetic raw data in a temp dir, time decode-only and ``prepare`` per CPU count; one dict."""
    from mmtune.data.synthetic import generate

    overrides = {"image.size": size, "image.slices": slices}
    with tempfile.TemporaryDirectory(prefix="mmtune-bench-prepare-") as tmp:
        raw = Path(tmp) / "raw"
        generate(raw, patients=patients, size=size, slices=slices, seed=seed, quirks=False)
        plan = make_plan(load_card_with_source(REPO_CARD, overrides), raw)
        n = len(plan.jobs)
        decode_only(plan.root, plan.jobs[: max(1, n // 10)])  # warm the page cache and the readers
        cpu_before = time.process_time()
        read_seconds, n_files = decode_only(plan.root, plan.jobs)
        read_cpu = time.process_time() - cpu_before
        bound = decode_bound(plan)
        decode_rate, decode_cpu = bound["patients_per_s"], bound["cpu_s"]
        result: dict[str, Any] = {
            "patients": n,
            "size": size,
            "slices": slices,
            "files": n_files,
            "machine_cpus": os.cpu_count(),
            "decode_only": {
                "seconds": round(bound["seconds"], 3),
                "patients_per_s": round(decode_rate, 1),
                "cpu_ms_per_patient": round(1000 * decode_cpu / n, 2),
            },
            "read_only": {
                "seconds": round(read_seconds, 3),
                "patients_per_s": round(n / read_seconds, 1),
                "cpu_ms_per_patient": round(1000 * read_cpu / n, 2),
            },
            "prepare": {},
            "ratio_per_core": {},
            "ratio_per_core_read_only": {},
            "ratio_per_core_cpu": {},
            "load_average_1min": round(os.getloadavg()[0], 2),
            "goal_ratio_per_core": GOAL_RATIO_PER_CORE,
        }
        for count in cpus:
            with _ray(count):
                start = time.perf_counter()
                prepare(REPO_CARD, Path(tmp) / "warm", source=raw, overrides=overrides, overwrite=True)
                first = time.perf_counter() - start
                idle = PeakMemory()._sample()
                with PeakMemory() as memory:
                    cpu_before = tree_cpu_seconds()
                    start = time.perf_counter()
                    prepare(REPO_CARD, Path(tmp) / f"out{count}", source=raw, overrides=overrides, overwrite=True)
                    seconds = time.perf_counter() - start
                    cpu = tree_cpu_seconds() - cpu_before
            rate = n / seconds
            result["prepare"][str(count)] = {
                "seconds": round(seconds, 3),
                "patients_per_s": round(rate, 1),
                "first_run_seconds": round(first, 3),
                "peak_rss_mb": round(memory.peak / 2**20, 1),
                "idle_rss_mb": round(idle / 2**20, 1),
                "cpu_ms_per_patient": round(1000 * cpu / n, 2),
            }
            result["ratio_per_core"][str(count)] = round(rate / count / decode_rate, 3)
            result["ratio_per_core_read_only"][str(count)] = round(rate / count / (n / read_seconds), 3)
            # the same ratio in CPU time: decode-only CPU per patient / everything prepare burns per patient
            result["ratio_per_core_cpu"][str(count)] = round(decode_cpu / cpu, 3)
        if len(cpus) > 1:
            low, high = str(min(cpus)), str(max(cpus))
            result["speedup"] = round(
                result["prepare"][high]["patients_per_s"] / result["prepare"][low]["patients_per_s"], 3
            )
    return result
