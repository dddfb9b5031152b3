"""The gradient-boosted clinical-only reference (``model.reference: gbdt``): the same run directory, predictions
format and metric keys as a network; scores equal an independent scikit-learn fit on the same training rows; bad
input refused in one line before fitting; usable as an ablation cell next to network cells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mmtune.cli import main

REPO = Path(__file__).resolve().parents[1]
MULTITASK = REPO / "configs" / "multitask.yaml"


def cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    args = ["train", str(MULTITASK), "--set", f"data.path={data}", "--set", "tracking.aim_repo=null", "--out", str(out)]
    for item in ("model.reference=gbdt", "trainer.progress=false", *extra):
        args += ["--set", item]
    return args


def test_gbdt_run_matches_sklearn_and_writes_the_network_format(prepared_synthetic: Path, tmp_path: Path) -> None:
    from mmtune.config.run import load_run_config
    from mmtune.data.loading import load_splits
    from mmtune.data.multisource import resolve_data
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    out = tmp_path / "gbdt"
    assert cli(train_args(prepared_synthetic, out, "model.reference_params={max_iter: 50}")) == 0
    preds = pd.read_parquet(out / "predictions.parquet")
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["reference"] == "gbdt" and summary["complete"] is True and not (out / "checkpoints").exists()

    # the columns a network run writes (mmtune.training.predictions): binary y/score, multiclass y/pred/score_<class>
    cfg = load_run_config(MULTITASK, {"data.path": str(prepared_synthetic)})
    info = resolve_data(cfg.data, cfg.task_names)
    morbidity = next(t for t in info.tasks if t.name == "morbidity")
    from mmtune.training.metrics import class_keys

    expected = ["patient_id", "dataset", "split", "y_covid", "score_covid", "y_morbidity", "pred_morbidity"]
    expected += [f"score_morbidity_{k}" for k in class_keys(morbidity)]
    assert list(preds.columns) == expected
    assert set(preds["split"]) == {"val", "test"} and preds.attrs["mmtune_tasks"]["covid"]["kind"] == "binary"

    # reference: scikit-learn fitted here on the same training rows, missing clinical values as NaN
    splits = load_splits(info)
    train = splits["train"].columns
    x = np.where(train["clinical_missing"] > 0.5, np.nan, train["clinical"].astype(np.float64))
    rows = train["y_covid"] >= 0
    ref = HistGradientBoostingClassifier(
        max_iter=50, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=10, random_state=0
    ).fit(x[rows], train["y_covid"][rows])
    val = splits["val"].columns
    x_val = np.where(val["clinical_missing"] > 0.5, np.nan, val["clinical"].astype(np.float64))
    expected_scores = ref.predict_proba(x_val)[:, 1]
    got = preds[preds["split"] == "val"].set_index("patient_id").loc[list(val["patient_id"]), "score_covid"]
    assert np.allclose(got.to_numpy(), expected_scores, atol=1e-5)
    labelled = val["y_covid"] >= 0
    auroc = roc_auc_score(val["y_covid"][labelled], expected_scores[labelled])
    assert summary["metrics"]["val/covid/auroc"] == pytest.approx(auroc, abs=1e-6)
    assert {"val/morbidity/auroc", "test/mean_auroc", "val/loss"} <= set(summary["metrics"])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["tasks=[covid, lesion_seg]"], "model.reference: 'gbdt' predicts from the clinical table; segmentation"),
        (["model.reference_params={max_iter: many}"], "model.reference_params.max_iter: Input should be a valid"),
        (["model.reference_params={depth: 3}"], "unknown parameter 'depth' at model.reference_params.depth"),
        (["model.reference=xgboost"], "model.reference"),
    ],
)
def test_bad_reference_input_is_one_line_exit_2(
    prepared_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], expected: str
) -> None:
    out = tmp_path / "run"
    assert cli(train_args(prepared_synthetic, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err, err
    assert not out.exists()


@pytest.mark.slow
def test_gbdt_is_a_cell_of_an_ablation_study(tmp_path: Path, prepared_synthetic: Path, ray_local) -> None:
    study = tmp_path / "ref.yaml"
    study.write_text(
        f"""kind: ablation
name: ref
base:
  data: {{path: {prepared_synthetic}, batch_size: 16}}
  tasks: [covid, morbidity]
  model: {{fusion: {{name: clinical_only, dim: 16}}, clinical_encoder: {{hidden: 16}}}}
  trainer: {{max_epochs: 1, accelerator: cpu, progress: false}}
  tracking: {{aim_repo: {tmp_path / "aim"}}}
factors:
  model:
    mlp: {{}}
    gbdt: {{model.reference: gbdt, model.reference_params: {{max_iter: 30}}}}
repeats: {{seeds: [0], folds: 2, stratify_by: morbidity}}
resources: {{workers: 1, cpus_per_worker: 1}}
""",
        encoding="utf-8",
    )
    results = tmp_path / "results"
    assert cli(["ablate", str(study), "--results", str(results)]) == 0
    trials = pd.read_parquet(results / "ref" / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"TERMINATED"}
    gbdt = trials[trials["cell"] == "gbdt"]
    assert len(gbdt) == 2 and gbdt["final/val/covid/auroc"].notna().all()
    for _, row in gbdt.iterrows():
        preds = pd.read_parquet(results / "ref" / "trials" / row["trial"] / "predictions.parquet")
        assert {"score_covid", "score_morbidity_control"} <= set(preds.columns)
    assert cli(["report", str(results / "ref")]) == 0
    md = (results / "ref" / "report" / "report.md").read_text(encoding="utf-8")
    assert "gbdt" in md
