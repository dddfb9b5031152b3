"""Shared fixtures: one real local Ray per session and tiny synthetic data made by mmtune's own generator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_CARD = REPO_ROOT / "datasets" / "synthetic.yaml"

# Tiny sizes keep the suite fast on 2 cores (32x32 slices, 4 slices, dozens of patients).
TINY = {"patients": 60, "size": 32, "slices": 4, "seed": 7}

# One BLAS/OpenMP thread per process: Ray workers and the test process share 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray cluster shared by the whole session (each ``ray.init`` costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory) -> Path:
    """Raw iCTCF-layout files (JPG + DICOM slices, NIfTI masks, clinical CSV) written by ``mmtune data synth``."""
    from mmtune.data.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic") / "raw"
    generate(out, **TINY)
    return out


@pytest.fixture(scope="session")
def prepared_synthetic(tmp_path_factory, synthetic_raw, ray_local) -> Path:
    """The tiny synthetic data set prepared to Parquet through the real Ray Data pipeline."""
    from mmtune.data.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "synthetic"
    prepare(SYNTHETIC_CARD, out, source=synthetic_raw)
    return out


@pytest.fixture(scope="session")
def asha_study(tmp_path_factory, prepared_synthetic, ray_local):
    """A finished 8-trial ASHA search (curve trial function, Aim on) shared by the driver and analysis tests:
    (space, results, folder, wall seconds)."""
    import time

    from helpers.tune import write_space
    from mmtune.tuning.curve import curve_trial
    from mmtune.tuning.driver import run_study
    from mmtune.tuning.space import load_search_space

    folder = tmp_path_factory.mktemp("asha")
    space = load_search_space(write_space(folder, prepared_synthetic, name="asha"))
    started = time.monotonic()
    results = run_study(space, results_dir=folder / "results", trial_fn=curve_trial)
    return space, results, folder, time.monotonic() - started
