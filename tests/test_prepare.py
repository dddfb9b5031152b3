"""``prepare`` end to end on real files and a real local Ray: format, labels, splits, determinism, PHI, bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SYNTHETIC_CARD, TINY
from helpers.rawdata import PHI_NAME, base_card, make_ictcf, truncate, write_card
from mmtune.cli import main
from mmtune.data import format as fmt
from mmtune.data.prepare import prepare

REPO = Path(__file__).resolve().parents[1]
MORBIDITY_INDEX = {"control": 0, "type1": 1, "type2": 2}


def _table(root: Path) -> pa.Table:
    manifest = fmt.read_manifest(root)
    return pa.concat_tables([pq.read_table(p) for p in fmt.shard_paths(root, manifest)])


def _posteriors(raw: Path) -> dict[str, dict[str, str]]:
    with (raw / "posteriors.csv").open(encoding="utf-8") as handle:
        return {row["patient_id"]: row for row in csv.DictReader(handle)}


def test_synthetic_prepared_format(prepared_synthetic: Path) -> None:
    manifest = fmt.read_manifest(prepared_synthetic)
    table = _table(prepared_synthetic)
    names = ["patient_id", "group", "split", "fold"]
    names += ["y_covid", "y_morbidity", "y_mortality", "y_severity", "y_findings"]
    names += ["clinical", "clinical_missing", "clinical_raw", "image", "mask"]
    assert table.column_names == names
    schema = table.schema
    assert schema.field("fold").type == pa.int32()
    assert schema.field("y_morbidity").type == pa.int64() and schema.field("y_severity").type == pa.float32()
    assert schema.field("y_findings").type == pa.list_(pa.float32(), 3)
    n_features = len(manifest.clinical.features)
    assert schema.field("clinical").type == pa.list_(pa.float32(), n_features)
    assert schema.field("image").type == pa.binary()
    assert json.loads(schema.metadata[b"mmtune.image"])["shape"] == [TINY["slices"], TINY["size"], TINY["size"]]
    assert manifest.image.dtype == "float16" and manifest.image.shape == [4, 32, 32]
    assert manifest.mask is not None and manifest.mask.dtype == "uint8"
    images = fmt.decode_binary_column(table.column("image"), manifest.image).astype(np.float32)
    assert images.shape == (manifest.n_patients, 4, 32, 32)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0 and images.std() > 0.05
    ids = table.column("patient_id").to_pylist()
    assert ids == sorted(ids, key=int)  # natural patient order


def test_synthetic_labels_drops_and_skips(prepared_synthetic: Path, synthetic_raw: Path) -> None:
    manifest = fmt.read_manifest(prepared_synthetic)
    truth = json.loads((synthetic_raw / "truth.json").read_text())
    posteriors = _posteriors(synthetic_raw)
    table = _table(prepared_synthetic).to_pydict()
    evaluable = sorted((p for p, r in posteriors.items() if r["evaluable"] == "1"), key=int)
    assert table["patient_id"] == evaluable
    for i, pid in enumerate(table["patient_id"]):
        row = posteriors[pid]
        assert table["y_morbidity"][i] == MORBIDITY_INDEX[row["morbidity_class"]]
        assert table["y_covid"][i] == int(row["covid"])
        expected_mortality = -1 if row["mortality_outcome"] == "Unknown" else int(row["deceased"])
        assert table["y_mortality"][i] == expected_mortality
        assert table["y_severity"][i] == pytest.approx(float(row["lesion_fraction"]), abs=1e-4)
        assert table["y_findings"][i] == [float(row[k]) for k in ("ggo", "consolidation", "effusion")]
        assert (table["mask"][i] is not None) == (row["has_mask"] == "1")
    dropped = {d.patient_id: d.reason for d in manifest.dropped}
    defects = truth["defects"]
    assert "no image files" in dropped[defects["empty_ct"]]
    assert "no patient folder" in dropped[defects["no_folder"]]
    assert "without a row in the clinical table" in dropped[defects["no_row"]]
    for pid in truth["suspected_patients"]:
        assert "Suspected*" in dropped[pid]
    skipped = {s.path: s.reason for s in manifest.skipped_files}
    truncated = [p for p in skipped if p.startswith(f"Patient {defects['truncated']}/")]
    assert len(truncated) == 1 and "truncated" in skipped[truncated[0]]
    assert defects["truncated"] in table["patient_id"]  # one bad slice does not drop the patient


def test_synthetic_splits_counts_and_features(prepared_synthetic: Path) -> None:
    manifest = fmt.read_manifest(prepared_synthetic)
    table = _table(prepared_synthetic)
    frame = table.select(["patient_id", "split", "fold", "y_morbidity"]).to_pandas()
    assert frame.patient_id.is_unique
    assert ((frame.split == "test") == (frame.fold == -1)).all()
    assert ((frame.split == "val") == (frame.fold == 0)).all()
    assert set(frame.fold[frame.split != "test"]) == {0, 1, 2, 3, 4}
    for split, per_task in manifest.counts.items():
        observed = frame[frame.split == split].y_morbidity.value_counts().to_dict()
        assert per_task["morbidity"]["Type II"] == observed.get(2, 0)
    features = manifest.clinical.features
    for banned in (
        "Morbidity outcome",
        "Mortality outcome",
        "Lesion fraction",
        "SARS-CoV-2 nucleic acids",
        "Computed tomography (CT)",
        "Ground-glass opacity",
        "Patient ID",
        "Hospital",
    ):
        assert banned not in features
    assert {"Age", "Gender", "CRP", "IL-6", "Body temperature"} <= set(features)
    raw = np.array(table.column("clinical_raw").to_pylist(), dtype=np.float64)
    scaled = np.array(table.column("clinical").to_pylist(), dtype=np.float64)
    train = (frame.split == "train").to_numpy()
    with np.errstate(invalid="ignore"):
        train_mean = np.nanmean(raw[train], axis=0)
    np.testing.assert_allclose(manifest.clinical.mean, train_mean, rtol=1e-4)  # fitted on train only
    np.testing.assert_allclose(np.where(np.isnan(raw[train]), 0, scaled[train]).sum(axis=0), 0, atol=1e-3)
    assert set(manifest.groups) == {"Hospital A", "Hospital B", "Hospital C"}


def test_no_phi_in_outputs(prepared_synthetic: Path, synthetic_raw: Path) -> None:
    assert any(b"SYNTH^PATIENT" in p.read_bytes() for p in synthetic_raw.rglob("*.dcm"))  # the raw files carry it
    for path in prepared_synthetic.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"SYNTH^PATIENT" not in data and b"SYN7-" not in data, path


def test_prepare_is_byte_identical(prepared_synthetic: Path, synthetic_raw: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    prepare(SYNTHETIC_CARD, again, source=synthetic_raw, num_cpus=1)  # one decode task at a time, fixture: two
    first = sorted(p.relative_to(prepared_synthetic) for p in prepared_synthetic.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (prepared_synthetic / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_many_shards_written_by_tasks_are_the_same_at_any_cpu_count(
    synthetic_raw: Path, tmp_path: Path, ray_local, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmtune.data.prepare as prep

    monkeypatch.setattr(prep, "shard_size", lambda row_bytes: 7)  # 60 patients -> 9 shards, several decode tasks
    monkeypatch.setattr(prep, "MAX_PATIENTS_PER_TASK", 3)
    one, two = tmp_path / "one", tmp_path / "two"
    prepare(SYNTHETIC_CARD, one, source=synthetic_raw, num_cpus=1)
    prepare(SYNTHETIC_CARD, two, source=synthetic_raw)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    manifest = fmt.read_manifest(one)
    assert len(manifest.shards) >= 8 and manifest.shards[0].endswith("00000.parquet")
    ids = [pid for name in manifest.shards for pid in pq.read_table(one / name)["patient_id"].to_pylist()]
    assert len(ids) == manifest.n_patients == len(set(ids))
    assert ids == sorted(ids, key=int)  # shards follow the plan's patient order
    assert all(pq.read_metadata(one / name).num_rows <= 7 for name in manifest.shards)


def test_prognosis_manifest_layout(ray_local, tmp_path: Path) -> None:
    from mmtune.data.synthetic import generate

    raw = tmp_path / "raw"
    generate(raw, patients=24, size=32, slices=6, seed=3, variant="prognosis")
    out = tmp_path / "prepared"
    manifest = prepare(REPO / "datasets" / "synthetic_prognosis.yaml", out, source=raw)
    rows = {r["patient_id"]: r for r in csv.DictReader((raw / "manifest.csv").open(encoding="utf-8"))}
    table = _table(out).to_pydict()
    missing = json.loads((raw / "truth.json").read_text())["defects"]["missing_image"]
    assert missing not in table["patient_id"] and missing in {d.patient_id for d in manifest.dropped}
    assert manifest.image.shape == [4, 32, 32] and manifest.clinical.features == [
        "age",
        "sex",
        "CRP",
        "LY",
        "LDH",
        "D-Dimer",
    ]
    for i, pid in enumerate(table["patient_id"]):
        raw_label = rows[pid]["prognosis"]
        assert table["y_prognosis"][i] == {"": -1, "MILD": 0, "SEVERE": 1}[raw_label]
        score = rows[pid]["severity_score"]
        assert np.isnan(table["y_severity"][i]) if score == "" else table["y_severity"][i] == float(score)
        assert (table["mask"][i] is not None) == (rows[pid]["mask"] != "")
    assert table["group"][0].startswith("Centre")


def test_own_raw_data_with_decode_drops_and_duplicates(ray_local, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_ictcf(raw, n=12, size=24, slices=4)
    for path in (raw / "Patient 6" / "CT").iterdir():  # every slice unreadable: dropped at decode time
        truncate(path)
    shutil.copytree(raw / "Patient 3" / "CT", raw / "Patient 7" / "CT", dirs_exist_ok=True)  # identical images
    card = write_card(tmp_path / "card.yaml", base_card("raw", image={"kind": "stack2d", "slices": 3, "size": 16}))
    manifest = prepare(card, tmp_path / "out", num_cpus=1)
    table = _table(tmp_path / "out").to_pydict()
    dropped = {d.patient_id: d.reason for d in manifest.dropped}
    assert dropped["6"] == "no readable image file (4 skipped)"
    assert "6" not in table["patient_id"] and manifest.n_patients == 11
    assert "patients '3' and '7' have identical images" in manifest.warnings
    assert len([s for s in manifest.skipped_files if s.path.startswith("Patient 6/")]) == 4
    # normalisation was refitted on the written training rows after patient 6 dropped out
    raw_values = np.array(table["clinical_raw"], dtype=np.float64)
    train = np.array([s == "train" for s in table["split"]])
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(manifest.clinical.mean, np.nanmean(raw_values[train], axis=0), rtol=1e-5)
    crp = manifest.clinical.features.index("CRP")
    by_id = dict(zip(table["patient_id"], raw_values[:, crp]))
    assert by_id["1"] == pytest.approx(0.25) and by_id["5"] == pytest.approx(0.25)  # "<0.5", censored: half
    assert by_id["2"] == pytest.approx(3.1) and np.isnan(by_id["3"])
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert PHI_NAME.encode() not in path.read_bytes() and b"19500101" not in path.read_bytes()


def _run_cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code), capsys.readouterr().err


def _bad_input(tmp_path: Path, kind: str) -> tuple[list[str], str]:
    raw = tmp_path / "raw"
    make_ictcf(raw, n=8, size=16, slices=2)
    card = base_card("raw")
    source = ["--source", str(raw)]
    table = raw / "clinical.csv"
    text = table.read_text(encoding="utf-8")
    if kind == "missing_source":
        source = ["--source", str(tmp_path / "nowhere")]
        expected = "source folder not found (--source)"
    elif kind == "missing_key":
        card["image"].pop("size")
        expected = "image.size: required key is missing"
    elif kind == "misspelt_key":
        card["split"]["k_fold"] = 3
        expected = "split.k_fold: unknown key (misspelt?)"
    elif kind == "wrong_type":
        card["split"]["k_folds"] = "five"
        expected = "split.k_folds: Input should be a valid integer"
    elif kind == "unknown_label":
        table.write_text(text.replace(",Severe,", ",Moderate,", 1), encoding="utf-8")
        expected = "column 'Morbidity outcome': raw value 'Moderate' is not covered by task 'morbidity'"
    elif kind == "duplicate_ids":
        lines = text.splitlines()
        table.write_text("\n".join([*lines, lines[1]]) + "\n", encoding="utf-8")
        expected = "duplicate patient id '1' in column 'Patient ID' (rows 2 and 10)"
    elif kind == "no_id_column":
        table.write_text(text.replace("Patient ID", "PatientID", 1), encoding="utf-8")
        expected = "no patient id column 'Patient ID'"
    else:
        raise AssertionError(kind)
    card_path = write_card(tmp_path / "card.yaml", card)
    return ["data", "prepare", "--card", str(card_path), "--out", str(tmp_path / "out"), *source], expected


@pytest.mark.parametrize(
    "kind",
    ["missing_source", "missing_key", "misspelt_key", "wrong_type", "unknown_label", "duplicate_ids", "no_id_column"],
)
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path: Path, capsys, kind: str) -> None:
    args, expected = _bad_input(tmp_path, kind)
    code, err = _run_cli(args, capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_existing_output_needs_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    card = write_card(tmp_path / "card.yaml", base_card("raw"))
    code, err = _run_cli(["data", "prepare", "--card", str(card), "--out", str(out)], capsys)
    assert code == 2 and "output exists and is not empty; pass --overwrite" in err
    assert (out / "keep.txt").read_text() == "mine"
