"""Every path a dataset card names stays inside the source folder, in every layout (issue 11): a card key that
could leave it is a one-line error naming the key, and a symlink leaving it is not followed. Real files, no Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.rawdata import base_card, make_ictcf, write_card, write_csv, write_nifti
from mmtune.cli import main
from mmtune.config.card import load_card
from mmtune.data.layouts import discover, load_table
from mmtune.errors import ConfigError, DataError

SECRET = "root:x:0:0:secret outside the source folder\n"


def _source(tmp_path: Path, **source) -> dict:
    card = base_card()
    card["source"] = {**card["source"], **source}
    return card


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("image_glob", "../../.."),
        ("image_glob", "CT/../../../*"),
        ("mask_glob", "../../outside/*.nii.gz"),
        ("clinical_table", "../../../etc/passwd"),
        ("clinical_table", "/etc/passwd"),
        ("patient_dir", "../Patient {id}"),
    ],
)
def test_ictcf_card_keys_cannot_leave_the_source(tmp_path, key, value):
    path = write_card(tmp_path / "card.yaml", _source(tmp_path, **{key: value}))
    with pytest.raises(ConfigError) as info:
        load_card(path)
    message = str(info.value)
    assert f"source.{key}:" in message and "\n" not in message


def test_prepare_refuses_escaping_card_in_one_line(tmp_path, capsys):
    """The audit's card (`clinical_table: ../../../etc/passwd`) through the CLI: exit 2, nothing written."""
    make_ictcf(tmp_path / "raw", n=4)
    path = write_card(tmp_path / "card.yaml", _source(tmp_path, clinical_table="../../../etc/passwd"))
    with pytest.raises(SystemExit) as info:
        main(["data", "prepare", "--card", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "source.clinical_table" in err
    assert not (tmp_path / "out").exists()


def test_manifest_layout_table_and_cells_stay_inside(tmp_path):
    raw = tmp_path / "raw"
    write_nifti(raw / "images" / "a.nii.gz", np.zeros((3, 8, 8), np.int16))
    (tmp_path / "secret.nii.gz").write_bytes((raw / "images" / "a.nii.gz").read_bytes())
    write_csv(raw / "manifest.csv", [{"id": "a", "image": "../secret.nii.gz", "y": "1"}])
    card = base_card(
        source={"layout": "manifest", "path": "raw", "clinical_table": "../manifest.csv"},
        patient_id="id",
        group=None,
        label_columns=[],
        clinical={},
        tasks=[{"name": "y", "kind": "binary", "column": "y", "classes": ["0", "1"]}],
        split={"k_folds": 2, "test_fraction": 0.0},
    )
    with pytest.raises(ConfigError, match=r"source\.clinical_table: '\.\./manifest\.csv': '\.\.' would leave"):
        load_card(write_card(tmp_path / "card.yaml", card))
    card["source"]["clinical_table"] = "manifest.csv"
    loaded = load_card(write_card(tmp_path / "card.yaml", card))
    table = load_table(raw.resolve(), loaded).table
    with pytest.raises(DataError, match=r"row 'a', column 'image': path '\.\./secret\.nii\.gz' is outside"):
        discover(raw.resolve(), table, loaded, (raw / "manifest.csv").resolve())


def test_template_layouts_stay_inside(tmp_path):
    files = {"layout": "files", "path": "raw", "options": {"images": "../outside/{id}.nii.gz"}}
    card = base_card(source=files, group=None, label_columns=[], clinical={}, tasks=[], split={"k_folds": 2})
    with pytest.raises(ConfigError, match=r"options\.images: .*'\.\.' would leave the source folder"):
        load_card(write_card(tmp_path / "files.yaml", card))
    table = {"layout": "table", "path": "raw", "options": {"images": "../{File}"}}
    card["source"] = table
    with pytest.raises(ConfigError, match=r"options\.images: .*'\.\.' would leave the source folder"):
        load_card(write_card(tmp_path / "table.yaml", card))


def test_symlinks_leaving_the_source_are_not_followed(tmp_path):
    """A clinical table or an image that is a symlink to a file outside the source folder is not read."""
    raw = tmp_path / "raw"
    make_ictcf(raw, n=4)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd.csv").write_text(SECRET)
    (raw / "linked.csv").symlink_to(outside / "passwd.csv")
    loaded = load_card(write_card(tmp_path / "card.yaml", _source(tmp_path, clinical_table="linked.csv")))
    with pytest.raises(DataError, match=r"source\.clinical_table: 'linked\.csv' resolves to .* outside the source"):
        load_table(raw.resolve(), loaded)

    stolen = outside / "stolen.png"
    stolen.write_bytes((raw / "Patient 1" / "CT" / "1.png").read_bytes())
    (raw / "Patient 1" / "CT" / "9.png").symlink_to(stolen)
    loaded = load_card(write_card(tmp_path / "card.yaml", _source(tmp_path)))
    table = load_table(raw.resolve(), loaded).table
    found = discover(raw.resolve(), table, loaded, raw / "clinical.csv")
    assert found.patients["1"].files == [f"Patient 1/CT/{k}.png" for k in range(1, 5)]


def test_a_patient_folder_linked_from_outside_is_not_read(tmp_path):
    """Files are checked by their folder once, and resolved one by one only when they or their folder are links:
    a patient folder that is a symlink to a folder outside the source contributes no files."""
    import shutil

    raw = tmp_path / "raw"
    make_ictcf(raw, n=4)
    outside = tmp_path / "outside"
    shutil.copytree(raw / "Patient 2", outside / "Patient 2")
    shutil.rmtree(raw / "Patient 2")
    (raw / "Patient 2").symlink_to(outside / "Patient 2", target_is_directory=True)
    shutil.copytree(raw / "Patient 3" / "CT", outside / "CT3")  # a linked sub-folder: its files are outside too
    shutil.rmtree(raw / "Patient 3" / "CT")
    (raw / "Patient 3" / "CT").symlink_to(outside / "CT3", target_is_directory=True)
    loaded = load_card(write_card(tmp_path / "card.yaml", _source(tmp_path)))
    table = load_table(raw.resolve(), loaded).table
    found = discover(raw.resolve(), table, loaded, raw / "clinical.csv")
    assert "2" not in found.patients and "3" not in found.patients
    assert found.patients["1"].files == [f"Patient 1/CT/{k}.png" for k in range(1, 5)]
