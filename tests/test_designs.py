"""The study designs of search_spaces/ (docs/designs.md) end to end on tiny synthetic data, and their bad inputs.

Each design YAML runs through the real ``mmtune ablate`` (Ray Tune trials on the session Ray, Lightning, Aim,
per-patient predictions) at tiny sizes: 1 epoch, 2 folds (the fewest a k-fold allows), 4-channel encoders. The
assertions check what each design is for: per-dataset metrics and task masks (MDMT), the U-Net bottleneck heads and
masked segmentation (CT triage), the three task families (joint), per-label metrics and CLAHE (findings).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import SYNTHETIC_CARD, TINY
from mmtune.cli import main

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "search_spaces"
DESIGNS_CARD = REPO / "datasets" / "synthetic_designs.yaml"
PROGNOSIS_CARD = REPO / "datasets" / "synthetic_prognosis.yaml"
PROGNOSIS_TASKS = [
    {"name": "prognosis", "kind": "binary", "column": "prognosis", "classes": ["MILD", "SEVERE"]},
    {"name": "severity", "kind": "regression", "column": "severity_score"},
]


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


@pytest.fixture(scope="session")
def prognosis_raw(tmp_path_factory) -> Path:
    from mmtune.data.synthetic import generate

    out = tmp_path_factory.mktemp("prognosis") / "raw"
    generate(out, variant="prognosis", patients=40, size=TINY["size"], slices=TINY["slices"], seed=TINY["seed"])
    return out


@pytest.fixture(scope="session")
def prognosis_prepared(tmp_path_factory, prognosis_raw, ray_local) -> Path:
    """The second data set of the MDMT design: its own label set (MILD/SEVERE prognosis, 0-18 severity)."""
    from mmtune.data.prepare import prepare

    out = tmp_path_factory.mktemp("prognosis_prepared") / "prognosis"
    prepare(PROGNOSIS_CARD, out, source=prognosis_raw)
    return out


@pytest.fixture(scope="session")
def designs_prepared(tmp_path_factory, synthetic_raw, ray_local) -> dict[str, Path]:
    """The design card (class4, recon) prepared twice from the same raw data: without and with CLAHE."""
    from mmtune.data.prepare import prepare

    root = tmp_path_factory.mktemp("designs_prepared")
    prepare(DESIGNS_CARD, root / "plain", source=synthetic_raw)
    prepare(DESIGNS_CARD, root / "clahe", source=synthetic_raw, overrides={"image.clahe": True})
    return {"off": root / "plain", "on": root / "clahe"}


@pytest.fixture(scope="session")
def design_aim(tmp_path_factory) -> Path:
    """One Aim repo for every design test (creating a repo runs Aim's migrations: seconds each)."""
    return tmp_path_factory.mktemp("design_aim") / "aim"


def ablate(tmp_path: Path, design: str, data: Path, *extra: str, aim: Path | None = None) -> Path:
    """``mmtune ablate search_spaces/<design>.yaml`` at tiny sizes; returns ``results/<design>``."""
    results = tmp_path / "results"
    args = ["ablate", str(SPACES / f"{design}.yaml"), "--results", str(results)]
    sets = [
        f"data.path={data}",
        "data.synth=null",
        "data.card=null",
        f"base.data.card={SYNTHETIC_CARD}",
        f"base.tracking.aim_repo={aim or tmp_path / 'aim'}",
        "base.trainer.max_epochs=1",
        "base.data.batch_size=8",
        "repeats.folds=2",
        "base.model.backbone.params.width=4",
        *extra,
    ]
    for item in sets:
        args += ["--set", item]
    assert run_cli(args) == 0
    return results / design


def trials(root: Path) -> pd.DataFrame:
    frame = pd.read_parquet(root / "trials.parquet")
    assert set(frame["status"]) == {"TERMINATED"}
    return frame.set_index("key")


def predictions(root: Path, trial: str) -> pd.DataFrame:
    return pd.read_parquet(root / "trials" / trial / "predictions.parquet")


# ---------------------------------------------------------------------------------------------------- shape


def test_design_files_expand_to_the_documented_studies(capsys, monkeypatch, tmp_path):
    # from an empty directory: data a user prepared in the checkout (the quick start's data/) must not matter
    monkeypatch.chdir(tmp_path)
    expected = {"mdmt": (12, 60), "ct_triage": (3, 15), "joint_seg_rec_cls": (3, 15), "findings": (2, 10)}
    for design, (cells, n) in expected.items():
        assert run_cli(["ablate", str(SPACES / f"{design}.yaml"), "--dry-run"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert f"{cells} cells x 5 splits" in out and f"= {n} trials" in out, design
    mdmt = yaml.safe_load((SPACES / "mdmt.yaml").read_text(encoding="utf-8"))
    assert len(mdmt["factors"]["backbone"]) >= 6 and mdmt["repeats"]["folds"] == 5


def test_a_cell_whose_second_data_set_is_not_prepared_is_named(capsys, monkeypatch, tmp_path, prepared_synthetic):
    """The primary data are prepared (as after the quick start), the MDMT level's second data set is not: one line
    naming the study file, the cell and the missing directory, exit 2, before Ray."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic_prepared").symlink_to(prepared_synthetic)
    assert run_cli(["ablate", str(SPACES / "mdmt.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "mdmt.yaml: cell 'mdmt / small_cnn'" in err and "synthetic_prognosis_prepared" in err and "not found" in err


def test_mdmt_cells_pass_the_registry_and_data_checks(prepared_synthetic, prognosis_prepared):
    """All 12 cells (6 backbones x single-task / MDMT) against the registries and both data sets' manifests."""
    from mmtune.data.format import read_manifest
    from mmtune.tuning.ablation import check_registries, expand_with_data, load_study

    study = load_study(
        SPACES / "mdmt.yaml",
        [
            f"data.path={prepared_synthetic}",
            "data.synth=null",
            f"factors.training.mdmt.data.path=[{{path: {prepared_synthetic}}}, {{path: {prognosis_prepared}}}]",
        ],
    )
    manifest = read_manifest(prepared_synthetic)
    design = expand_with_data(study, manifest)
    check_registries(study, design, manifest)  # raises on any unknown backbone / task / incompatible combination
    mdmt = next(t for t in design.trials if t.cell.levels["training"] == "mdmt")
    assert [s["path"] for s in mdmt.config["data"]["path"]] == [str(prepared_synthetic), str(prognosis_prepared)]
    assert {t.cell.levels["backbone"] for t in design.trials} >= {"resnet18", "densenet121", "efficientnet_b0"}


# ---------------------------------------------------------------------------------------------------- designs


@pytest.mark.slow
def test_mdmt_end_to_end(tmp_path, prepared_synthetic, prognosis_prepared, design_aim, ray_local):
    root = ablate(
        tmp_path,
        "mdmt",
        prepared_synthetic,
        "factors.backbone=null",
        f"factors.training.mdmt.data.path=[{{path: {prepared_synthetic}, name: ictcf}}, "
        f"{{path: {prognosis_prepared}, name: prognosis}}]",
        aim=design_aim,
    )
    frame = trials(root)
    assert sorted(frame.index) == sorted(f"{c} @ f{f}/s0" for c in ("single_task", "mdmt") for f in (0, 1))
    for fold in (0, 1):
        single, mdmt = frame.loc[f"single_task @ f{fold}/s0"], frame.loc[f"mdmt @ f{fold}/s0"]
        assert pd.isna(single.get("final/train/prognosis/loss")) and mdmt["final/train/prognosis/loss"] > 0
        for key in ("final/val/ictcf/morbidity/auroc", "final/val/prognosis/prognosis/auroc"):
            assert 0 <= mdmt[key] <= 1  # results per data set and task
        a, b = predictions(root, single["trial"]), predictions(root, mdmt["trial"])
        val_a = set(a.loc[(a["split"] == "val") & a["modality_dropped"].isna(), "patient_id"])
        val_b = b[(b["split"] == "val") & b["modality_dropped"].isna()]
        ictcf_rows = val_b[~val_b["patient_id"].str.startswith("P")]
        assert set(ictcf_rows["patient_id"]) == val_a  # the primary's fold is the same in both cells: paired
        second = val_b[val_b["patient_id"].str.startswith("P")]
        assert len(second) > 0 and second["y_morbidity"].lt(0).all()  # masked: that data set has no morbidity
        assert second["y_prognosis"].ge(0).any() and ictcf_rows["y_prognosis"].lt(0).all()
    assert run_cli(["report", str(root)]) == 0
    report = (root / "report" / "report.md").read_text(encoding="utf-8")
    assert "training from single_task to mdmt" in report


@pytest.mark.slow
def test_ct_triage_end_to_end(tmp_path, prepared_synthetic, design_aim, ray_local):
    from mmtune.analysis.simple_effects import simple_effects

    root = ablate(tmp_path, "ct_triage", prepared_synthetic, aim=design_aim)
    frame = trials(root)
    full = frame.loc[[k for k in frame.index if k.startswith("full @")]]
    assert full["final/val/severity/spearman"].notna().all() and full["final/val/lesion_seg/dice"].between(0, 1).all()
    assert full["final/val/lesion_seg/iou"].notna().all() and full["final/val/covid/auroc"].between(0, 1).all()
    no_seg = frame.loc[[k for k in frame.index if k.startswith("without segmentation")]]
    assert "final/train/lesion_seg/loss" not in no_seg.dropna(axis=1, how="all").columns
    config = yaml.safe_load((root / "trials" / full["trial"].iloc[0] / "config.yaml").read_text(encoding="utf-8"))
    assert config["model"]["backbone"]["name"] == "unet_encoder" and config["model"]["fusion"]["name"] == "image_only"
    manifest = json.loads((prepared_synthetic / "manifest.json").read_text(encoding="utf-8"))
    assert sum(c["lesion_seg"]["masked"] for c in manifest["counts"].values()) > 0  # some patients lack masks
    effects = simple_effects(root, "segmentation", "severity", ["covid/auroc"])
    assert list(effects["within"]) == ["with"] and effects["n_splits"].tolist() == [2]


@pytest.mark.slow
def test_joint_seg_rec_cls_end_to_end(tmp_path, designs_prepared, design_aim, ray_local):
    root = ablate(
        tmp_path, "joint_seg_rec_cls", designs_prepared["off"], f"base.data.card={DESIGNS_CARD}", aim=design_aim
    )
    frame = trials(root)
    assert len(frame) == 6
    full = frame.loc[[k for k in frame.index if k.startswith("full @")]]
    assert full["final/val/recon/mse"].between(0, 1).all() and full["final/val/lesion_seg/dice"].notna().all()
    assert full["final/val/morbidity/auroc"].notna().all()
    no_rec = frame.loc[[k for k in frame.index if k.startswith("without reconstruction")]]
    assert no_rec.get("final/val/recon/mse", pd.Series(dtype=float)).isna().all()


@pytest.mark.slow
def test_findings_end_to_end_with_per_label_metrics_and_clahe(tmp_path, designs_prepared, design_aim, ray_local):
    root = ablate(
        tmp_path,
        "findings",
        designs_prepared["off"],
        f"base.data.card={DESIGNS_CARD}",
        f"factors.clahe.off.data.path={designs_prepared['off']}",
        f"factors.clahe.on.data.path={designs_prepared['on']}",
        aim=design_aim,
    )
    frame = trials(root)
    assert sorted(frame.index) == sorted(f"{c} @ f{f}/s0" for c in ("off", "on") for f in (0, 1))
    for label in ("ground_glass", "consolidation", "effusion"):
        for metric in ("sensitivity", "specificity", "f1", "mcc"):
            assert f"final/val/findings/{metric}_{label}" in frame.columns
    assert frame["final/val/findings/mcc_ground_glass"].notna().all()
    assert frame[["final/val/lesion_seg/dice", "final/val/lesion_seg/iou"]].notna().all().all()
    assert frame["final/val/class4/auroc"].notna().all() and "final/val/class4/auroc_cap" in frame.columns
    assert frame["final/train/loss"].notna().all() and frame["final/val/loss"].notna().all()  # CLAHE gives no NaN
    on = yaml.safe_load((root / "trials" / frame.loc["on @ f0/s0", "trial"] / "config.yaml").read_text("utf-8"))
    assert on["data"]["path"] == str(designs_prepared["on"])
    # the report reads the multilabel task from the predictions (labels with underscores: ground_glass)
    from mmtune.analysis.results import load_study_data

    data = load_study_data(root)
    assert data.tasks["findings"].kind == "multilabel"
    assert data.tasks["findings"].classes == ["ground_glass", "consolidation", "effusion"]
    assert "findings/auroc" in data.metrics and not [p for p in data.problems if "findings" in p]


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="session")
def prognosis_variants(tmp_path_factory, prognosis_raw, ray_local) -> dict[str, Path]:
    """The prognosis data prepared (a) with its label renamed `morbidity` (2 classes: disagrees with the iCTCF data's
    3) and (b) without masks."""
    from mmtune.data.prepare import prepare

    root = tmp_path_factory.mktemp("prognosis_variants")
    renamed = [{**PROGNOSIS_TASKS[0], "name": "morbidity"}, PROGNOSIS_TASKS[1]]
    prepare(
        PROGNOSIS_CARD,
        root / "renamed",
        source=prognosis_raw,
        overrides={"tasks": renamed, "split.stratify_by": "morbidity"},
    )
    prepare(
        PROGNOSIS_CARD,
        root / "no_masks",
        source=prognosis_raw,
        overrides={"tasks": PROGNOSIS_TASKS, "source.mask_column": None},
    )
    return {"renamed": root / "renamed", "no_masks": root / "no_masks"}


def run_config(tmp_path: Path, paths: list[Path], tasks: list[str]) -> Path:
    config = {
        "name": "multi",
        "data": {"path": [{"path": str(p)} for p in paths], "batch_size": 8},
        "tasks": tasks,
        "model": {
            "backbone": {"name": "small_cnn", "params": {"width": 4}},
            "fusion": {"name": "image_only", "dim": 8},
        },
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "progress": False, "num_threads": 1},
        "tracking": {"aim_repo": None},
        "output_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_data_sets_disagreeing_on_a_shared_task_are_one_line_errors(
    tmp_path, prepared_synthetic, prognosis_variants, capsys
):
    from mmtune.config.run import DataConfig
    from mmtune.data.multisource import resolve_data
    from mmtune.errors import DataError

    paths = [prepared_synthetic, prognosis_variants["renamed"]]
    with pytest.raises(DataError, match="must agree on a shared task's classes"):
        resolve_data(DataConfig(path=[{"path": str(p)} for p in paths]), ["morbidity"])
    assert run_cli(["train", str(run_config(tmp_path, paths, ["morbidity"]))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "morbidity" in err and "must agree" in err
    assert not (tmp_path / "runs").exists()


def test_segmentation_without_masks_only_as_a_masked_task(tmp_path, prepared_synthetic, prognosis_variants, capsys):
    from mmtune.config.run import DataConfig
    from mmtune.data.multisource import resolve_data

    no_masks = prognosis_variants["no_masks"]
    info = resolve_data(DataConfig(path=[{"path": str(prepared_synthetic)}, {"path": str(no_masks)}]), ["lesion_seg"])
    assert info.warnings == [f"{no_masks}: no lesion masks; task 'lesion_seg' is masked for its patients"]
    alone = run_config(tmp_path, [no_masks], ["prognosis", "lesion_seg"])
    assert run_cli(["train", str(alone)]) == 2  # a data set without masks cannot carry a segmentation task alone
    err = capsys.readouterr().err
    assert "task 'lesion_seg' is not in the prepared data" in err and err.count("\n") == 1


def test_masked_segmentation_task_trains_and_is_said_in_the_log(
    tmp_path, prepared_synthetic, prognosis_variants, capsys
):
    no_masks = prognosis_variants["no_masks"]
    config = run_config(tmp_path, [prepared_synthetic, no_masks], ["covid", "lesion_seg"])
    assert run_cli(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "no lesion masks; task 'lesion_seg' is masked for its patients" in " ".join(err.split())
    metrics = (tmp_path / "run" / "metrics.json").read_text(encoding="utf-8")
    assert "val/lesion_seg/dice" in metrics and "val/synthetic_prognosis/lesion_seg" in metrics
    shutil.rmtree(tmp_path / "run")


def test_a_level_whose_data_set_is_missing_fails_before_any_trial(tmp_path, designs_prepared, capsys):
    missing = tmp_path / "synthetic_designs_clahe_prepared"
    args = ["ablate", str(SPACES / "findings.yaml"), "--results", str(tmp_path / "results")]
    off = designs_prepared["off"]
    sets = (f"data.path={off}", "data.synth=null", "repeats.folds=2", f"factors.clahe.off.data.path={off}")
    for item in (*sets, f"factors.clahe.on.data.path={missing}"):
        args += ["--set", item]
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip()
    expected = f"error: {SPACES / 'findings.yaml'}: cell 'on': {missing}: data directory not found"
    assert err == expected and not (tmp_path / "results" / "findings").exists()


def test_per_label_mcc_is_zero_for_a_constant_predictor_and_matches_scikit_learn():
    """The findings design reports MCC per label; an all-negative predictor must not look informative."""
    import torch
    from mmtune.training.metrics import multilabel_metrics
    from sklearn.metrics import matthews_corrcoef

    labels = torch.tensor([[0, 1], [0, 0], [1, 1], [0, 0], [0, 1], [1, 0], [0, 0], [0, 1]], dtype=torch.float32)
    scores = torch.stack([torch.full((8,), 0.2), torch.tensor([0.9, 0.1, 0.7, 0.4, 0.3, 0.6, 0.2, 0.8])], dim=1)
    out = multilabel_metrics(scores, labels, ["constant", "informative"])
    assert out["mcc_constant"] == 0.0 and out["sensitivity_constant"] == 0.0 and out["specificity_constant"] == 1.0
    expected = matthews_corrcoef(labels[:, 1].numpy(), (scores[:, 1] > 0.5).numpy())
    assert out["mcc_informative"] == pytest.approx(expected, abs=1e-6) and expected > 0.4
