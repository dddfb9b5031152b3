"""``mmtune ablate`` end to end on a real local Ray, the synthetic data and real training, then ``mmtune report``."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from mmtune.cli import main


def tiny_study(tmp_path, data, card: str = "null") -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        f"""kind: ablation
name: tiny
base:
  data: {{path: {data}, card: {card}, batch_size: 16}}
  tasks: [covid, morbidity]
  model: {{backbone: {{name: small_cnn, params: {{width: 4}}}}, fusion: {{name: concat, dim: 16}}, clinical_encoder: {{hidden: 16}}}}
  trainer: {{max_epochs: 1, accelerator: cpu, progress: false}}
  tracking: {{aim_repo: {tmp_path / "aim"}}}
factors:
  modality:
    image: {{model.fusion.name: image_only}}
    image+clinical: {{model.fusion.name: concat}}
repeats: {{seeds: [0], folds: 2, stratify_by: morbidity}}
resources: {{workers: 1, cpus_per_worker: 1}}
""",
        encoding="utf-8",
    )
    return str(path)


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def test_dry_run_prints_cells_and_trial_count(tmp_path, capsys):
    card = Path(__file__).resolve().parents[1] / "datasets" / "synthetic.yaml"
    study = tiny_study(tmp_path, tmp_path / "not_prepared", card=str(card))
    assert run_cli(["ablate", study, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 cells x 2 splits (2 folds x 1 seed(s) (repeated partitions)) = 4 trials" in " ".join(out.split())
    assert "not prepared yet" in out


@pytest.mark.slow
def test_ablate_then_report_end_to_end(tmp_path, prepared_synthetic, ray_local, capsys):
    study = tiny_study(tmp_path, prepared_synthetic)
    results = tmp_path / "results"
    assert run_cli(["ablate", study, "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "tiny: covid AUROC (2 folds x 1 seed)" in out and "main effects" in out
    root = results / "tiny"
    trials = pd.read_parquet(root / "trials.parquet")
    cells = pd.read_parquet(root / "cells.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"TERMINATED"}
    assert (
        set(trials["key"])
        == set(cells["key"])
        == {f"{c} @ f{f}/s0" for c in ("image", "image+clinical") for f in (0, 1)}
    )
    assert (cells["n_train"] + cells["n_val"]).nunique() == 1  # one partition of the non-test patients
    hashes = [h for h in trials["aim_hash"] if isinstance(h, str) and len(h) == 24]
    assert len(hashes) == 4
    for _, row in trials.iterrows():
        preds = pd.read_parquet(root / "trials" / row["trial"] / "predictions.parquet")
        val = preds[(preds["split"] == "val") & preds.get("modality_dropped", pd.Series(index=preds.index)).isna()]
        n_val = int(cells.loc[cells["key"] == row["key"], "n_val"].iloc[0])
        assert len(val) == n_val and val["patient_id"].is_unique
        dropped = preds.get("modality_dropped")
        has_dropped = dropped is not None and (dropped == "clinical").any()
        assert has_dropped == row["key"].startswith("image+clinical")  # robustness rows only for the fusion model
    assert (root / "study.yaml").is_file() and (root / "best_config.yaml").is_file()

    assert run_cli(["report", str(root)]) == 0
    md = (root / "report" / "report.md").read_text(encoding="utf-8")
    assert "switching modality from image to image+clinical" in md.lower()
    assert "## Missing-modality robustness" in md and "| image+clinical | without clinical |" in md
    assert set(hashes) <= set(re.findall(r"\b[0-9a-f]{24}\b", md))
    assert f"aim up --repo {tmp_path / 'aim'}" in md
    assert (root / "report" / "report.html").stat().st_size > 10_000


def test_every_cell_is_checked_against_the_registries_before_running(tmp_path, capsys):
    card = Path(__file__).resolve().parents[1] / "datasets" / "synthetic.yaml"
    study = tiny_study(tmp_path, tmp_path / "not_prepared", card=str(card))
    assert run_cli(["ablate", study, "--dry-run", "--set", "factors.modality.image.model.fusion.name=nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cell 'image': unknown fusion 'nope' at model.fusion.name" in err[0]
    assert not (tmp_path / "results").exists()
