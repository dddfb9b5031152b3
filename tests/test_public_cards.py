"""The public data sets' cards (datasets/*.yaml) on small synthetic copies in their exact documented layouts.

Each card must prepare through the real pipeline (SimpleITK reads the DICOM / NIfTI that ``helpers.public_layouts`` wrote,
Ray Data decodes) and give the right labels, masks, groups and splits; a card pointed at files of another layout,
and malformed layout options or cells, are one-line errors with exit code 2 and leave nothing behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
from helpers.public_layouts import write_aiforcovid, write_brixia, write_covid_ct_seg, write_mosmed
from mmtune.cli import main
from mmtune.data.format import decode_binary_column, read_manifest, shard_paths

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
CXR = {"image.size": 32}
CT = {"image.size": 32, "image.slices": 4}


@pytest.fixture(scope="session")
def public_raw(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("public")
    return {
        "aiforcovid": write_aiforcovid(root / "AIforCOVID"),
        "brixia": write_brixia(root / "BRIXIA"),
        "mosmeddata": write_mosmed(root / "COVID19_1110"),
        "covid19_ct_seg": write_covid_ct_seg(root / "COVID-19-CT-Seg"),
    }


@pytest.fixture(scope="session")
def public_prepared(tmp_path_factory, public_raw, ray_local) -> dict[str, Path]:
    from mmtune.data.prepare import prepare

    out = tmp_path_factory.mktemp("public_prepared")
    prepared = {}
    for name, written in public_raw.items():
        overrides = CXR if name in ("aiforcovid", "brixia") else CT
        prepare(DATASETS / f"{name}.yaml", out / name, source=written.root, overrides=overrides)
        prepared[name] = out / name
    return prepared


def rows(path: Path) -> tuple[dict, object]:
    manifest = read_manifest(path)
    table = pads.dataset([str(p) for p in shard_paths(path, manifest)], format="parquet").to_table()
    return {name: table[name] for name in table.column_names}, manifest


def by_id(columns: dict, name: str) -> dict:
    return dict(zip(columns["patient_id"].to_pylist(), columns[name].to_pylist()))


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


# ---------------------------------------------------------------------------------------------------- cards


def test_aiforcovid_labels_centres_releases_and_radiographs(public_raw, public_prepared):
    truth = public_raw["aiforcovid"]
    cols, manifest = rows(public_prepared["aiforcovid"])
    assert manifest.n_patients == len(truth.labels) and not manifest.dropped
    assert by_id(cols, "y_prognosis") == {p: t["prognosis"] for p, t in truth.labels.items()}
    assert by_id(cols, "y_death") == {p: t["death"] for p, t in truth.labels.items()}
    assert by_id(cols, "group") == truth.groups and sorted(manifest.groups) == list("ABCDEF")
    assert set(truth.extra["release2"]) <= set(cols["patient_id"].to_pylist())  # imgs_r2/ found through imgs*/
    assert "Death" not in manifest.clinical.features and "Prognosis" not in manifest.clinical.features
    assert {"Age", "Sex", "CRP", "LDH"} <= set(manifest.clinical.features)
    assert manifest.image.shape == [1, 32, 32]
    images = decode_binary_column(cols["image"], manifest.image).astype(np.float32)[:, 0]
    body, lung = images[:, 16, 3:6].mean(axis=1), images[:, 14:18, 9:12].mean(axis=(1, 2))
    assert (body > lung).all()  # MONOCHROME1 radiographs are inverted back: bone bright, air dark, for every one
    severe = np.array(cols["y_prognosis"].to_pylist()) == 1
    assert lung[severe].min() > lung[~severe].max()  # the planted opacity survives the per-image scaling


def test_brixia_zone_string_global_score_and_whole_subjects(public_raw, public_prepared):
    truth = public_raw["brixia"]
    cols, manifest = rows(public_prepared["brixia"])
    assert manifest.n_patients == len(truth.labels)
    assert by_id(cols, "y_severity") == {f: t["severity"] for f, t in truth.labels.items()}
    for j, zone in enumerate("abcdef"):  # BrixiaScore "11213" (leading zero lost) is zone A = 0, B = 1, ...
        assert by_id(cols, f"y_zone_{zone}") == {f: t["zones"][j] for f, t in truth.labels.items()}
    assert manifest.clinical.features == ["AgeAtStudyDateFiveYear", "Sex"]
    assert set(manifest.groups) == {"SIEMENS", "AGFA", "CARESTREAM HEALTH"}
    subjects = truth.extra["subjects"]
    placement: dict[str, set] = {}
    for pid, split, fold in zip(cols["patient_id"].to_pylist(), cols["split"].to_pylist(), cols["fold"].to_pylist()):
        placement.setdefault(subjects[pid], set()).add((split, fold))
    assert all(len(p) == 1 for p in placement.values())  # a subject's radiographs never straddle splits or folds
    assert {s for p in placement.values() for s, _ in p} == {"train", "val", "test"}


def test_mosmeddata_grade_from_folder_and_masks_for_the_subset(public_raw, public_prepared):
    truth = public_raw["mosmeddata"]
    cols, manifest = rows(public_prepared["mosmeddata"])
    assert manifest.n_patients == len(truth.labels)
    assert by_id(cols, "y_ct_grade") == {s: t["grade"] for s, t in truth.labels.items()}
    assert by_id(cols, "y_covid") == {s: t["covid"] for s, t in truth.labels.items()}
    assert by_id(cols, "y_severity") == {s: float(t["grade"]) for s, t in truth.labels.items()}
    masks = by_id(cols, "mask")
    assert {s for s, m in masks.items() if m is not None} == truth.masks
    decoded = decode_binary_column(cols["mask"].drop_null(), manifest.mask)
    assert (decoded.reshape(len(decoded), -1).sum(axis=1) > 0).all()
    counts = manifest.counts
    assert sum(counts[s]["lesion_seg"]["with_mask"] for s in counts) == len(truth.masks)


def test_covid19_ct_seg_infection_masks_and_non_hu_volumes(public_raw, public_prepared):
    truth = public_raw["covid19_ct_seg"]
    cols, manifest = rows(public_prepared["covid19_ct_seg"])
    ids = cols["patient_id"].to_pylist()
    assert sorted(ids) == sorted(truth.labels) and all(m is not None for m in cols["mask"].to_pylist())
    masks = decode_binary_column(cols["mask"], manifest.mask).reshape(len(ids), -1).sum(axis=1)
    order = np.argsort([truth.labels[i]["lesion_voxels"] for i in ids])
    assert np.corrcoef(masks[order], np.arange(len(ids)))[0, 1] > 0.8  # masks follow the written infection load
    images = decode_binary_column(cols["image"], manifest.image).astype(np.float32)
    body, lung = images[:, :, 16, 2:4].mean(axis=(1, 2)), images[:, :, 16, 9:12].mean(axis=(1, 2))
    assert (body > lung + 0.1).all()  # HU volumes and 0-255 volumes both scaled by their own percentiles


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("card", "other", "expected"),
    [
        ("aiforcovid", "mosmeddata", "clinical table not found"),
        ("mosmeddata", "aiforcovid", "no file matches source.options.images"),
        ("covid19_ct_seg", "mosmeddata", "no file matches source.options.images"),
    ],
)
def test_card_on_another_layout_is_one_line_exit_2(tmp_path, public_raw, card, other, expected, capsys):
    out = tmp_path / "out"
    code = run_cli(
        ["data", "prepare", "--card", str(DATASETS / f"{card}.yaml"), "--source", str(public_raw[other].root),
         "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and expected in err
    assert not out.exists()


def test_brixia_images_missing_and_bad_zone_string(tmp_path, public_raw, capsys):
    raw = tmp_path / "BRIXIA"
    shutil.copytree(public_raw["brixia"].root, raw)
    shutil.rmtree(raw / "dicom_clean")
    args = [
        "data",
        "prepare",
        "--card",
        str(DATASETS / "brixia.yaml"),
        "--source",
        str(raw),
        "--out",
        str(tmp_path / "o"),
    ]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert "no row's image file exists" in err and "dicom_clean/{Filename}" in err
    shutil.copytree(public_raw["brixia"].root / "dicom_clean", raw / "dicom_clean")
    table = raw / "metadata_global_v2.csv"
    lines = table.read_text(encoding="utf-8").splitlines()
    cells = lines[3].split(";")
    cells[4] = "01x213"
    lines[3] = ";".join(cells)
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert f"row {cells[0]!r}, column 'BrixiaScore'" in err and "6 digits" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_layout_options_are_checked_with_key_paths(tmp_path, public_raw, capsys):
    card = (DATASETS / "mosmeddata.yaml").read_text(encoding="utf-8").replace("    masks:", "    maskz:")
    (tmp_path / "bad.yaml").write_text(card, encoding="utf-8")
    assert run_cli(["data", "prepare", "--card", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "source: options.maskz: unknown key" in err
    args = ["data", "prepare", "--card", str(DATASETS / "aiforcovid.yaml"), "--out", str(tmp_path / "o")]
    xlsx = tmp_path / "afc"
    shutil.copytree(public_raw["aiforcovid"].root, xlsx)
    (xlsx / "AIforCOVID.xlsx").write_bytes(b"PK\x03\x04")
    assert run_cli([*args, "--source", str(xlsx), "--set", "source.clinical_table=AIforCOVID.xlsx"]) == 2
    assert "Excel tables are not read; export it to CSV" in capsys.readouterr().err
    assert run_cli([*args, "--source", str(xlsx), "--set", "source.options.images=imgs/{Image}.dcm"]) == 2
    assert "no column 'Image' (named by source.options templates)" in capsys.readouterr().err
