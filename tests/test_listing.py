"""``mmtune list``: every registered component appears with its description; unknown categories exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mmtune.cli.listing import CATEGORIES, _rows
from mmtune.components import load_registries
from mmtune.tasks import TaskKind

MMTUNE = str(Path(sys.executable).with_name("mmtune"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run([MMTUNE, "list", *args], capture_output=True, text=True, env=env, timeout=300)


def test_list_prints_every_registered_component() -> None:
    result = run_cli()
    assert result.returncode == 0, result.stderr
    registries = load_registries()
    for category in CATEGORIES:
        assert category in result.stdout
    for registry in registries.values():
        for entry in registry:
            assert entry.name in result.stdout
            assert entry.description and entry.description[:30] in result.stdout, entry.name
    for kind in TaskKind:
        assert kind.value in result.stdout
    assert "3d" in result.stdout and "2d" in result.stdout


def test_list_one_category_and_its_rows(capsys) -> None:
    from mmtune.cli import main

    try:
        main(["list", "weightings"])
    except SystemExit as exc:  # typer may signal success as SystemExit(0)
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "pcgrad" in out and "famo" in out and "resnet18" not in out
    rows = {row[0]: row for row in _rows("weightings")}
    assert rows["gradnorm"][1:3] == ("family=gradient", "alpha=1.5, lr=0.025")
    assert rows["aligned_mtl"][1:3] == ("source=torchjd family=gradient", "scale_mode='min'")
    assert len(rows) >= 20
    names = [row[0] for row in _rows("backbones")]
    assert names == [*load_registries()["backbones"].names(), "timm:<name>", "monai:<name>"]
    tasks = {row[0]: row[1] for row in _rows("tasks")}
    assert tasks["segmentation"] == "default_loss=dice_ce losses=dice/dice_ce"


def test_list_unknown_category_exits_2_with_the_known_ones() -> None:
    result = run_cli("nonsense")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: unknown category 'nonsense' for `mmtune list`; known: " + ", ".join(CATEGORIES)
    )
    assert result.stdout == ""


def test_list_layouts_shows_every_source_layout_and_its_keys() -> None:
    result = run_cli("layouts")
    assert result.returncode == 0, result.stderr
    rows = {row[0]: row[1:] for row in _rows("layouts")}
    assert list(rows) == ["files", "ictcf", "manifest", "table"]
    assert rows["ictcf"][:2] == ("clinical_table", "source.image_glob, source.mask_glob, source.patient_dir")
    assert rows["files"][:2] == ("", "source.options.images, source.options.masks")
    assert rows["table"][1] == (
        "source.options.images, source.options.masks, source.options.separator, source.options.digits"
    )
    for name in rows:
        assert name in result.stdout
    assert "backbones" not in result.stdout and "source.mask_column" in result.stdout
