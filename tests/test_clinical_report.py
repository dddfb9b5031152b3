"""The tuning report's clinical section: the best complete trial's threshold fixed on its validation predictions,
its test split (held out) scored with it, calibration / ROC / decision figures and the model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest
import yaml
from mmtune.analysis.clinical.study import study_clinical
from mmtune.analysis.report import write_report
from mmtune.analysis.results import load_study_data
from mmtune.cli import main
from sklearn.metrics import brier_score_loss, roc_curve

CLASSES = ["control", "type_i", "type_ii"]


def _patients(prepared: Path) -> pd.DataFrame:
    from mmtune.data.format import read_manifest, shard_paths

    manifest = read_manifest(prepared)
    table = pads.dataset([str(p) for p in shard_paths(prepared, manifest)], format="parquet").to_table(
        columns=["patient_id", "split", "y_covid", "y_morbidity"]
    )
    return table.to_pandas()


def _trial_predictions(patients: pd.DataFrame, gain: float, seed: int, with_test: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = patients[patients["split"].isin(["val", "test"] if with_test else ["val"])].reset_index(drop=True)
    y = rows["y_covid"].to_numpy()
    logit = gain * (2 * y - 1) + rng.normal(0, 1.0, len(rows))
    frame = pd.DataFrame(
        {
            "patient_id": rows["patient_id"],
            "dataset": "synthetic",
            "split": rows["split"],
            "y_covid": y.astype(np.int64),
            "score_covid": (1 / (1 + np.exp(-logit))).astype(np.float32),
        }
    )
    morb = rows["y_morbidity"].to_numpy()
    logits = gain * np.eye(3)[np.clip(morb, 0, 2)] + rng.normal(0, 1.0, (len(rows), 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame["y_morbidity"] = morb.astype(np.int64)
    frame["pred_morbidity"] = proba.argmax(axis=1).astype(np.int64)
    for c, name in enumerate(CLASSES):
        frame[f"score_morbidity_{name}"] = proba[:, c].astype(np.float32)
    return frame


@pytest.fixture
def study(tmp_path: Path, prepared_synthetic: Path) -> Path:
    """Three trials: tune_00002 has the best val metric but stopped early (no test predictions), so the best
    *complete* trial is tune_00001."""
    root = tmp_path / "study"
    patients = _patients(prepared_synthetic)
    rows = []
    for i, (best, complete) in enumerate([(0.6, True), (0.7, True), (0.8, False)]):
        trial = f"tune_{i:05d}"
        folder = root / "trials" / trial
        folder.mkdir(parents=True)
        _trial_predictions(patients, 0.5 + i, i, complete).to_parquet(folder / "predictions.parquet", index=False)
        config = {
            "tasks": ["covid", "morbidity"],
            "data": {"path": str(prepared_synthetic)},
            "model": {"backbone": {"name": "small_cnn"}, "fusion": {"name": ["concat", "late", "gated"][i]}},
            "weighting": {"name": "equal"},
            "trainer": {"max_epochs": 4, "monitor": "val/mean_auroc", "seed": 0},
        }
        (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        rows.append(
            {
                "trial": trial,
                "status": "TERMINATED",
                "epochs": 4 if complete else 2,
                "stopped_early": not complete,
                "best_epoch": 1,
                "aim_hash": None,
                "trial_dir": str(root / "tune" / trial),
                "predictions": str(folder / "predictions.parquet"),
                "error": None,
                "model.fusion.name": config["model"]["fusion"]["name"],
                "best/val/mean_auroc": best,
            }
        )
    pd.DataFrame(rows).to_parquet(root / "trials.parquet", index=False)
    space = {
        "name": "study",
        "metric": "val/mean_auroc",
        "mode": "max",
        "clinical": {
            "n_boot": 100,
            "threshold": {"sensitivity": 0.8},
            "subgroups": {"sex": {"column": "Gender", "labels": {0: "female", 1: "male"}}},
        },
    }
    (root / "space.yaml").write_text(yaml.safe_dump(space), encoding="utf-8")
    return root


def test_best_complete_trial_threshold_from_val_metrics_on_test(study: Path) -> None:
    section = study_clinical(load_study_data(study))
    assert section is not None and section.trial == "tune_00001" and section.evaluated_split == "test"
    frame = pd.read_parquet(study / "trials" / "tune_00001" / "predictions.parquet")
    val, test = frame[frame["split"] == "val"], frame[frame["split"] == "test"]
    _fpr, tpr, thresholds = roc_curve(val["y_covid"], val["score_covid"], drop_intermediate=False)
    expected = thresholds[np.flatnonzero(tpr >= 0.8)[0]]  # the highest threshold reaching 80 % sensitivity on val
    assert section.thresholds["covid"][""] == pytest.approx(expected)
    pos = test["y_covid"] == 1
    sens = (test.loc[pos, "score_covid"] >= expected).mean()
    spec = (test.loc[~pos, "score_covid"] < expected).mean()
    assert section.metrics["covid/sensitivity"] == pytest.approx(sens)
    assert section.metrics["covid/specificity"] == pytest.approx(spec)
    assert section.metrics["covid/brier"] == pytest.approx(brier_score_loss(test["y_covid"], test["score_covid"]))
    assert {"calibration_best_covid.png", "roc_pr_best_covid.png", "decision_best_morbidity.png"} <= set(section.images)


def test_report_shows_calibration_operating_point_and_model_card(study: Path, tmp_path: Path) -> None:
    paths = write_report(study, tmp_path / "report")
    md = paths.markdown.read_text(encoding="utf-8")
    section = md.split("## Best configuration: calibration and operating point")[1]
    assert "trial tune_00001" in section and "held out, not used for selection" in section
    assert "### Operating point" in section and "sensitivity >= 0.80 on validation" in section
    assert "Reliability diagram, covid (the test split of trial tune_00001" in section
    assert "| sex | female |" in section and "| hospital |" in section
    card = section.split("## Model card (TRIPOD+AI / CLAIM)")[1]
    assert "Selected as the best of 3 usable trials" in card and "to be completed by the authors" in card
    assert (paths.out / "calibration_best_covid.png").read_bytes()[:4] == b"\x89PNG"
    assert md.index("## Best configuration") < md.index("## Aim runs")


def test_a_study_without_test_predictions_is_labelled_optimistic(study: Path) -> None:
    for trial in ("tune_00000", "tune_00001"):
        path = study / "trials" / trial / "predictions.parquet"
        frame = pd.read_parquet(path)
        frame[frame["split"] == "val"].to_parquet(path, index=False)
    section = study_clinical(load_study_data(study))
    assert section is not None and section.trial == "tune_00002" and section.evaluated_split == "val"
    text = str(section.blocks[1])
    assert "optimistic" in text


def test_a_subgroup_column_the_data_lacks_is_one_line(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = yaml.safe_load((study / "space.yaml").read_text())
    record["clinical"]["subgroups"] = {"smoker": {"column": "Smoking"}}
    (study / "space.yaml").write_text(yaml.safe_dump(record))
    with pytest.raises(SystemExit) as info:
        main(["report", str(study)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'Smoking' is not a column" in err
    assert not (study / "report").exists()


def test_the_study_level_aim_run_carries_the_reports_tables(study: Path, tmp_path: Path) -> None:
    """With the study's Aim repo present, `mmtune report` writes one run holding the findings, leaderboards and
    the best configuration's section; a second report replaces it (still one report run)."""
    from mmtune.tracking.aim import init_repo, list_runs
    from mmtune.tracking.aim_objects import sequence_values, sequences

    repo = tmp_path / "aim"
    init_repo(repo)
    for folder in (study / "trials").iterdir():
        config = yaml.safe_load((folder / "config.yaml").read_text())
        config["tracking"] = {"aim_repo": str(repo)}
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    write_report(study, tmp_path / "r1")
    first = (study / "aim_report_run.txt").read_text().strip()
    write_report(study, tmp_path / "r2")
    second = (study / "aim_report_run.txt").read_text().strip()
    runs = [r for r in list_runs(repo) if r["name"] == "study: report"]
    assert [r["hash"] for r in runs] == [second] != [first]
    assert {"study=study", "kind=report"} <= set(runs[0]["tags"])
    texts = sequences(repo, second, "texts")
    assert ("leaderboard", {"metric": "covid/auroc"}) in texts and ("findings", {}) in texts
    (section,) = sequence_values(repo, second, "texts", "best_configuration", {})
    assert "held out, not used for selection" in section and "| covid |" in section and "Model card" in section
    from aim import Run

    params = Run(second, repo=str(repo), read_only=True)["report"]
    assert params["best_trial"] == "tune_00001" and params["best_split"] == "test"
    assert 0.0 <= params["best/covid/auroc"] <= 1.0
