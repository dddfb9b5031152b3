"""Aim beside the metrics, on a real Aim repo: a finished run's ROC/PR, calibration and decision figures and a
slice montage without patient ids; the study-level report run carrying the report's tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mmtune.tracking.aim import reindex
from mmtune.tracking.aim_objects import sequence_values, sequences
from mmtune.training.aim_figures import montage

REPO = Path(__file__).resolve().parents[1]


def test_montage_rows_are_patients_and_columns_evenly_spaced_slices() -> None:
    images = np.stack([np.full((6, 3, 2), i / 10) + np.arange(6)[:, None, None] / 100 for i in range(5)])
    out = montage(images, patients=4, slices=3)
    assert out.shape == (4 * 4 - 1, 3 * 3 - 1)
    assert out[0, 0] == pytest.approx(0.0) and out[4, 0] == pytest.approx(0.1)  # patient rows
    assert [out[0, j * 3] for j in range(3)] == pytest.approx([0.0, 0.02, 0.05])  # slices 0, 2 (2.5 -> 2), 5
    assert (out[3, :] == 1).all()  # separator
    volume = montage(images[:, None] * 1000 - 500)  # (B, 1, D, H, W) in HU-like units -> stretched to [0, 1]
    assert volume.min() == pytest.approx(0.0) and volume.max() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tracked_run(prepared_synthetic: Path, tmp_path_factory) -> tuple[Path, str, Path]:
    from mmtune.config.run import load_run_config
    from mmtune.training.fit import fit

    root = tmp_path_factory.mktemp("aim_figures")
    cfg = load_run_config(
        REPO / "configs" / "multitask.yaml",
        {
            "data.path": str(prepared_synthetic),
            "tracking.aim_repo": str(root / "aim"),
            "trainer.max_epochs": 1,
            "trainer.progress": False,
        },
    )
    result = fit(cfg, root / "run")
    assert result.aim_hash
    reindex(root / "aim")
    return root / "aim", result.aim_hash, result.run_dir


def test_a_finished_run_has_its_figures_and_an_anonymous_montage_in_aim(tracked_run) -> None:
    repo, run_hash, run_dir = tracked_run
    images = sequences(repo, run_hash, "images")
    for kind in ("roc_pr", "calibration", "decision"):
        for task in ("covid", "morbidity"):
            assert (kind, {"subset": "test", "task": task}) in images, images
    (roc,) = sequence_values(repo, run_hash, "images", "roc_pr", {"subset": "test", "task": "covid"})
    assert roc.size[0] > 300 and "test split" in roc.info["caption"]
    (slices,) = sequence_values(repo, run_hash, "images", "slices", {"subset": "val"})
    assert slices.mode == "L" and slices.size == (4 * 33 - 1, 4 * 33 - 1)  # 4 patients x 4 slices of 32 px
    ids = set(pd.read_parquet(run_dir / "predictions.parquet")["patient_id"].astype(str))
    caption = slices.info["caption"]
    assert re.findall(r"\d+", caption) == ["0", "3"]  # row numbers only
    assert not any(re.search(rf"\b{re.escape(pid)}\b", caption) for pid in ids - {"0", "1", "2", "3"})
