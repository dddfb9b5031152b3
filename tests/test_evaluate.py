"""``mmtune predict`` / ``mmtune evaluate`` end to end: a model trained on the built-in synthetic data scored on a
second synthetic data set (another seed, five hospitals instead of three), plus bad input refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mmtune.cli import main
from sklearn.metrics import brier_score_loss, roc_auc_score

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "datasets" / "synthetic.yaml"


def _cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def external(tmp_path_factory, ray_local) -> Path:
    """A second synthetic data set: seed 11, 5 hospitals (A-E; training saw A-C), 40 patients."""
    from mmtune.data.prepare import prepare
    from mmtune.data.synthetic import generate

    root = tmp_path_factory.mktemp("external")
    generate(root / "raw", patients=40, size=32, slices=4, seed=11, hospitals=5)
    prepare(CARD, root / "prepared", source=root / "raw")
    return root / "prepared"


@pytest.fixture(scope="module")
def trained(prepared_synthetic: Path, tmp_path_factory) -> Path:
    from mmtune.config.run import load_run_config
    from mmtune.training.fit import fit

    cfg = load_run_config(
        REPO / "configs" / "multitask.yaml",
        {
            "data.path": str(prepared_synthetic),
            "tracking.aim_repo": None,
            "trainer.max_epochs": 3,
            "trainer.progress": False,
        },
    )
    return fit(cfg, tmp_path_factory.mktemp("eval_run") / "run").run_dir


@pytest.fixture(scope="module")
def trained_b(prepared_synthetic: Path, tmp_path_factory) -> Path:
    """A second model of the same config (another seed, one epoch): an ensemble member."""
    from mmtune.config.run import load_run_config
    from mmtune.training.fit import fit

    overrides = {"data.path": str(prepared_synthetic), "tracking.aim_repo": None, "trainer.progress": False}
    overrides.update({"trainer.max_epochs": 1, "trainer.seed": 1})
    cfg = load_run_config(REPO / "configs" / "multitask.yaml", overrides)
    return fit(cfg, tmp_path_factory.mktemp("eval_run_b") / "run_b").run_dir


@pytest.fixture(scope="module")
def settings_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clinical") / "clinical.yaml"
    path.write_text(
        "clinical:\n  n_boot: 100\n  threshold: {sensitivity: 0.8}\n  subgroups:\n"
        "    sex: {column: Gender, labels: {0: female, 1: male}}\n    age: {column: Age, bins: [0, 50, 65, 120]}\n",
        encoding="utf-8",
    )
    return path


def test_predict_reproduces_the_runs_test_predictions(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    assert _cli(["predict", str(trained), "--split", "test", "--out", str(out)]) == 0
    new = pd.read_parquet(out)
    old = pd.read_parquet(trained / "predictions.parquet")
    old = old[(old["split"] == "test") & (old.get("modality_dropped", pd.Series("", index=old.index)).fillna("") == "")]
    merged = new.merge(old, on="patient_id", suffixes=("", "_run"))
    assert len(merged) == len(old) > 0
    assert np.allclose(merged["score_covid"], merged["score_covid_run"], atol=1e-6)
    assert (merged["y_morbidity"] == merged["y_morbidity_run"]).all()


def test_evaluate_on_a_second_synthetic_data_set(trained: Path, external: Path, settings_file: Path, tmp_path):
    results = tmp_path / "results"
    args = ["evaluate", str(trained), "--data", str(external), "--results", str(results), "--name", "ext"]
    assert _cli([*args, "--config", str(settings_file)]) == 0
    out = results / "ext"
    metrics = json.loads((out / "metrics.json").read_text())
    pred = pd.read_parquet(out / "predictions.parquet")
    from mmtune.data.format import read_manifest

    assert len(pred) == read_manifest(external).n_patients  # --split all: every external patient
    assert set(pred["group"]) == {f"Hospital {c}" for c in "ABCDE"} & set(pred["group"])
    assert len(set(pred["group"])) >= 4
    lab = pred[pred["y_covid"] >= 0]
    assert metrics["covid/auroc"] == pytest.approx(roc_auc_score(lab["y_covid"], lab["score_covid"]), abs=1e-6)
    assert metrics["covid/brier"] == pytest.approx(brier_score_loss(lab["y_covid"], lab["score_covid"]), abs=1e-6)
    for key in ("covid/ece", "covid/calibration_slope", "covid/calibration_intercept", "morbidity/auroc_type_i"):
        assert key in metrics
    record = json.loads((out / "evaluation.json").read_text())
    threshold = record["thresholds"]["covid"][""]
    run_val = pd.read_parquet(trained / "predictions.parquet").query("split == 'val'")
    if "modality_dropped" in run_val:
        run_val = run_val[run_val["modality_dropped"].fillna("") == ""]
    val = run_val[run_val["y_covid"] >= 0]
    assert ((val["score_covid"] >= threshold) & (val["y_covid"] == 1)).sum() >= 0.8 * (val["y_covid"] == 1).sum()
    sens = ((lab["score_covid"] >= threshold) & (lab["y_covid"] == 1)).sum() / (lab["y_covid"] == 1).sum()
    assert metrics["covid/sensitivity"] == pytest.approx(sens)  # the validation threshold, applied unchanged
    sub = pd.read_csv(out / "subgroups.csv")
    assert set(sub["variable"]) == {"hospital", "sex", "age"}
    assert {"0-50", "50-65", "65-120"} <= set(sub.loc[sub["variable"] == "age", "level"])
    assert (sub["ci"] == "too small").any()  # 40 patients over 5 hospitals: some are shown without intervals
    report = (out / "report.md").read_text()
    for text in ("Calibration", "Operating point", "Decision-curve", "Model card", "to be completed by the authors"):
        assert text.lower() in report.lower()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="calibration_covid.png"' not in html


def _copy_with_manifest(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    edit(manifest)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    trained: Path, external: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"

    def refused(args: list[str], expected: str) -> None:
        capsys.readouterr()
        assert _cli(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and expected in err, err
        assert not results.exists() or not any(results.iterdir())

    base = ["--data", str(external), "--results", str(results), "--name", "x"]
    refused(["evaluate", str(tmp_path), *base], "expected a `mmtune train` run directory")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    refused(["evaluate", str(tmp_path / "junk.ckpt"), *base], "not a readable checkpoint")
    wide = _copy_with_manifest(external, tmp_path / "wide", lambda m: m["image"].update(shape=[4, 64, 64]))
    refused(["evaluate", str(trained), "--data", str(wide), "--results", str(results)], "[4, 64, 64]")
    refused(["evaluate", str(trained), "--data", str(wide), "--results", str(results)], "model's stack2d [4, 32, 32]")
    renamed = _copy_with_manifest(
        external, tmp_path / "renamed", lambda m: m["tasks"][1].update(classes=["Control", "Mild", "Severe"])
    )
    refused(["evaluate", str(trained), "--data", str(renamed), "--results", str(results)], "matched by name")
    bad_column = tmp_path / "bad_column.yaml"
    bad_column.write_text("clinical:\n  subgroups:\n    smoker: {column: Smoking}\n")
    refused(["evaluate", str(trained), *base, "--config", str(bad_column)], "'Smoking' is not a column")
    bad_target = tmp_path / "bad_target.yaml"
    bad_target.write_text("clinical:\n  specificity_targets: [1.5]\n")
    refused(["evaluate", str(trained), *base, "--config", str(bad_target)], "(0, 1)")
    refused(["predict", str(trained), "--split", "everything"], "--split")


def test_ensemble_averages_the_members_and_separate_runs_get_one_directory_each(
    trained: Path, trained_b: Path, external: Path, tmp_path: Path
) -> None:
    results, quick = tmp_path / "results", tmp_path / "quick.yaml"
    quick.write_text("clinical: {n_boot: 100}\n")
    base = ["--data", str(external), "--results", str(results), "--split", "test", "--config", str(quick)]
    assert _cli(["evaluate", str(trained), str(trained_b), *base, "--name", "sep"]) == 0
    assert sorted(p.name for p in (results / "sep").iterdir()) == ["run", "run_b"]
    one, two = (pd.read_parquet(results / "sep" / r / "predictions.parquet") for r in ("run", "run_b"))
    assert len(one) == read_split(external, "test") and not np.allclose(one["score_covid"], two["score_covid"])
    assert _cli(["evaluate", str(trained), str(trained_b), *base, "--name", "ens", "--ensemble"]) == 0
    ens = pd.read_parquet(results / "ens" / "predictions.parquet")
    averaged = [c for c in ens.columns if c.startswith("score_")]
    assert {"score_covid", "score_morbidity_type_i"} <= set(averaged)
    for column in averaged:
        assert np.allclose(ens[column], (one[column] + two[column]) / 2, atol=1e-6), column
    scores = ens[[c for c in ens.columns if c.startswith("score_morbidity_")]].to_numpy()
    assert (ens["pred_morbidity"].to_numpy() == scores.argmax(axis=1)).all()
    record = json.loads((results / "ens" / "evaluation.json").read_text())
    assert record["ensemble"] and [r["label"] for r in record["runs"]] == ["run", "run_b"]
    assert "pooled over the ensemble" in record["threshold_source"]
    metrics = json.loads((results / "ens" / "metrics.json").read_text())
    lab = ens[ens["y_covid"] >= 0]
    assert metrics["covid/auroc"] == pytest.approx(roc_auc_score(lab["y_covid"], lab["score_covid"]), abs=1e-6)
    assert "Ensemble: the mean predicted probability of 2 models" in (results / "ens" / "report.md").read_text()


def read_split(prepared: Path, split: str) -> int:
    from mmtune.data.format import read_manifest

    return read_manifest(prepared).split_sizes[split]


def test_classes_are_matched_by_name_not_position(trained: Path, external: Path, tmp_path: Path) -> None:
    """The same labels under a card that lists the morbidity classes in another order: each label is mapped
    to the model's class of the same name (label k of the reversed card is class 2 - k of the model's)."""
    from mmtune.data.format import read_manifest

    order = list(read_manifest(external).tasks[1].classes)
    assert len(order) == 3

    def reverse(m: dict) -> None:
        task = next(t for t in m["tasks"] if t["name"] == "morbidity")
        task["classes"] = list(reversed(task["classes"]))

    reversed_data = _copy_with_manifest(external, tmp_path / "reversed", reverse)
    same, mapped = tmp_path / "same.parquet", tmp_path / "mapped.parquet"
    assert _cli(["predict", str(trained), "--data", str(external), "--split", "all", "--out", str(same)]) == 0
    assert _cli(["predict", str(trained), "--data", str(reversed_data), "--split", "all", "--out", str(mapped)]) == 0
    a, b = pd.read_parquet(same), pd.read_parquet(mapped)
    assert np.allclose(a["score_morbidity_type_i"], b["score_morbidity_type_i"])
    labelled = a["y_morbidity"] >= 0
    assert labelled.any() and (a["y_morbidity"].nunique() > 1)
    assert (b.loc[labelled, "y_morbidity"] == 2 - a.loc[labelled, "y_morbidity"]).all()
    assert (b.loc[~labelled, "y_morbidity"] == -1).all()


def test_missing_and_unknown_clinical_features_are_listed(
    trained: Path, external: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data set whose `Age` column is called `AgeYears`: the model sees Age as missing (indicator set) and
    ignores AgeYears; both are listed by predict (warnings), in evaluation.json and in the report."""
    from mmtune.data.format import read_manifest
    from mmtune.inference.align import align
    from mmtune.inference.runs import resolve_run

    features = list(read_manifest(external).clinical.features)
    assert "Age" in features

    def rename(m: dict) -> None:
        m["clinical"]["features"] = ["AgeYears" if f == "Age" else f for f in m["clinical"]["features"]]

    renamed = _copy_with_manifest(external, tmp_path / "renamed_age", rename)
    capsys.readouterr()
    out = tmp_path / "p.parquet"
    assert _cli(["predict", str(trained), "--data", str(renamed), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "missing in the data (set missing): Age" in err and "never saw (ignored): AgeYears" in err
    spec = resolve_run(trained).spec()
    aligned = align(spec, renamed, "all")
    j = list(spec.features).index("Age")
    assert (aligned.columns["clinical_missing"][:, j] == 1).all() and (aligned.columns["clinical"][:, j] == 0).all()
    results, quick = tmp_path / "results", tmp_path / "quick.yaml"
    quick.write_text("clinical: {n_boot: 100}\n")
    args = ["evaluate", str(trained), "--data", str(renamed), "--results", str(results), "--name", "r"]
    assert _cli([*args, "--config", str(quick)]) == 0
    record = json.loads((results / "r" / "evaluation.json").read_text())
    assert record["missing_features"] == ["Age"] and record["extra_features"] == ["AgeYears"]
    report = (results / "r" / "report.md").read_text()
    assert "lacks (set missing, through the missing-value indicators): Age" in report
    assert "never saw (ignored): AgeYears" in report
