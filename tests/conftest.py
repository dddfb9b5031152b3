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
