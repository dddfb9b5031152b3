"""Mistakes caught before Ray starts (issue 11, item 5): duplicate YAML keys, empty or non-mapping files, a metric
the trials never report, a mode other than max|min, a prepared folder without its manifest. Each is one line and
exit 2, and nothing is left behind that blocks the corrected rerun."""

from __future__ import annotations

import shutil
import time

import pytest
import yaml
from helpers.tune import CURVE, write_space
from mmtune.cli import main


def _one_line_exit_2(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_duplicate_key_names_file_line_and_key(tmp_path, capsys):
    """On main the second ``optim.lr`` silently won (a study ran with lr 0.1)."""
    path = tmp_path / "dup.yaml"
    path.write_text(
        "name: dup\nbase:\n  optim:\n    lr: 0.001\n    weight_decay: 0.0\n    lr: 0.1\nspace:\n"
        "  optim.lr: {choice: [0.001]}\n",
        encoding="utf-8",
    )
    err = _one_line_exit_2(["tune", str(path), "--dry-run"], capsys)
    assert err == f"error: {path}: line 6: duplicate key 'base.optim.lr' (first given on line 4); keep one"


def test_empty_and_non_mapping_files_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here yet\n", encoding="utf-8")
    err = _one_line_exit_2(["tune", str(empty), "--dry-run"], capsys)
    assert err == f"error: {empty}: the file is empty (or only comments); expected a mapping of keys"
    listed = tmp_path / "list.yaml"
    listed.write_text("- optim.lr\n- weighting.name\n", encoding="utf-8")
    err = _one_line_exit_2(["ablate", str(listed), "--dry-run"], capsys)
    assert err == f"error: {listed}: expected a mapping of keys at the top level, got a list"


def test_a_yaml_anchor_merge_is_not_a_duplicate(tmp_path):
    from mmtune.config.loading import load_yaml

    path = tmp_path / "merge.yaml"
    path.write_text("a: &x {p: 1, q: 2}\nb:\n  <<: *x\n  p: 3\n", encoding="utf-8")
    assert load_yaml(path) == {"a": {"p": 1, "q": 2}, "b": {"p": 3, "q": 2}}


def test_misspelt_metric_fails_before_ray_and_the_fix_runs(tmp_path, prepared_synthetic, ray_local, capsys):
    """On main: Ray started, every trial crashed after ~27 s, exit 1, and the corrected file was refused."""
    path = write_space(tmp_path, prepared_synthetic, name="typo", metric="val/mean_aucroc", num_samples=2)
    started = time.monotonic()
    err = _one_line_exit_2(["tune", str(path), "--results", str(tmp_path / "results"), "--trainable", CURVE], capsys)
    assert time.monotonic() - started < 20
    assert err.startswith(f"error: {path}: metric: 'val/mean_aucroc' is not a metric the trials report; ")
    assert "did you mean 'val/mean_auroc'" in err and "val/covid/auroc" in err
    assert not (tmp_path / "results").exists()  # nothing blocks the corrected rerun

    path = write_space(tmp_path, prepared_synthetic, name="typo", metric="val/mean_auroc", num_samples=2)
    with pytest.raises(SystemExit) as info:
        main(["tune", str(path), "--results", str(tmp_path / "results"), "--trainable", CURVE, "--no-report"])
    assert info.value.code in (0, None)
    assert (tmp_path / "results" / "typo" / "trials.parquet").is_file()


def test_misspelt_monitor_and_bad_mode_are_refused(tmp_path, prepared_synthetic, capsys):
    path = write_space(tmp_path, prepared_synthetic, name="mon")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["base"]["trainer"]["monitor"] = "val/covid/aucroc"
    doc["metric"] = "val/mean_auroc"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    err = _one_line_exit_2(["tune", str(path), "--results", str(tmp_path / "results")], capsys)
    assert "base.trainer.monitor: 'val/covid/aucroc' is not a metric the trials report" in err
    assert "did you mean 'val/covid/auroc'" in err
    path = write_space(tmp_path, prepared_synthetic, name="mode", mode="maximum")
    err = _one_line_exit_2(["tune", str(path), "--results", str(tmp_path / "results")], capsys)
    assert err.startswith(f"error: {path}: mode: ") and "'max' or 'min'" in err
    assert not (tmp_path / "results").exists()


def test_train_without_manifest_does_not_advise_an_option_train_lacks(tmp_path, prepared_synthetic, capsys):
    """On main the error told ``mmtune train`` users to pass ``--overwrite``, which ``train`` does not have."""
    from conftest import SYNTHETIC_CARD

    data = tmp_path / "prepared"
    shutil.copytree(prepared_synthetic, data)
    (data / "manifest.json").unlink()
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"card": str(SYNTHETIC_CARD), "path": str(data)},
                "tasks": ["covid"],
                "model": {"backbone": {"name": "small_cnn"}},
                "trainer": {"max_epochs": 1, "progress": False},
                "tracking": {"aim_repo": None},
            }
        ),
        encoding="utf-8",
    )
    err = _one_line_exit_2(["train", str(config), "--out", str(tmp_path / "run")], capsys)
    assert err == (
        f"error: {data}: not a prepared data set (no manifest.json) and not empty; rebuild it with "
        f"`mmtune data prepare {SYNTHETIC_CARD} {data} --overwrite`, or point data.path elsewhere"
    )
    assert not (tmp_path / "run").exists()
