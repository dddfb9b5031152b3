"""Clinical tables and labels: every cell quirk, feature selection without label leakage, label mapping rules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers.rawdata import base_card, write_card, write_csv
from mmtune.config.card import ParseSpec, load_card
from mmtune.data.clinical import Standardiser, build_clinical, parse_number, read_table
from mmtune.data.labels import map_labels
from mmtune.errors import DataError

PARSE = ParseSpec()


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("12.1&#8593;", 12.1),
        ("3.2&#8595;", 3.2),
        ("7.5↑", 7.5),
        ("0.8 ↓", 0.8),
        ("<0.5", 0.25),
        ("< 0.05", 0.025),
        ("≤2", 1.0),
        (">1000", 1000.0),
        (">=5", 5.0),
        ("36.6°C", 36.6),
        ("12 mg/L", 12.0),
        ("45%", 45.0),
        ("1,234.5", 1234.5),
        ("-3", -3.0),
        (".5", 0.5),
        ("1e3", 1000.0),
    ],
)
def test_parse_number_quirks(cell: str, expected: float) -> None:
    assert parse_number(cell, PARSE) == pytest.approx(expected)


@pytest.mark.parametrize("cell", ["", "  ", "NA", "n/a", "-", "NaN", "Unknown"])
def test_missing_cells_are_nan(cell: str) -> None:
    assert math.isnan(parse_number(cell, PARSE))


@pytest.mark.parametrize("cell", ["abc", "positive", "3-5", "1 2", "12..5", "7,5.1"])
def test_non_numbers_raise(cell: str) -> None:
    with pytest.raises(ValueError):
        parse_number(cell, PARSE)


def test_parse_options() -> None:
    assert parse_number("<0.5", ParseSpec(censored="value")) == 0.5
    assert math.isnan(parse_number("<0.5", ParseSpec(censored="missing")))
    assert math.isnan(parse_number(">1000", ParseSpec(censored="missing")))
    with pytest.raises(ValueError):
        parse_number("36.6°C", ParseSpec(strip_units=False))
    with pytest.raises(ValueError):
        parse_number("7.5↑", ParseSpec(strip_flags=False, strip_units=False))
    assert parse_number("4.2 (H)", ParseSpec(flags=["(H)"], strip_units=False)) == 4.2


ROWS = [
    {
        "Patient ID": "P1",
        "Hospital": "H1",
        "Age": "61",
        "Gender": "Male",
        "Body temperature": "38.2°C",
        "CRP": "12.5&#8593;",
        "Underlying diseases": "Hypertension",
        "SARS-CoV-2 nucleic acids": "1",
        "Morbidity outcome": "Severe",
        "Mortality outcome": "Deceased",
        "Note": "free text",
    },
    {
        "Patient ID": "P2",
        "Hospital": "H2",
        "Age": "45",
        "Gender": "female",
        "Body temperature": "",
        "CRP": "<0.5",
        "Underlying diseases": "",
        "SARS-CoV-2 nucleic acids": "0",
        "Morbidity outcome": "Suspected (COVID-19-confirmed later)",
        "Mortality outcome": "Unknown",
        "Note": "",
    },
    {
        "Patient ID": "P3",
        "Hospital": "H1",
        "Age": "30",
        "Gender": "",
        "Body temperature": "36.6",
        "CRP": "3.1",
        "Underlying diseases": "COPD",
        "SARS-CoV-2 nucleic acids": "0",
        "Morbidity outcome": "Control",
        "Mortality outcome": "",
        "Note": "x",
    },
    {
        "Patient ID": "P4",
        "Hospital": "H2",
        "Age": "52",
        "Gender": "Male",
        "Body temperature": "37.0",
        "CRP": ">200",
        "Underlying diseases": "",
        "SARS-CoV-2 nucleic acids": "1",
        "Morbidity outcome": "Mild",
        "Mortality outcome": "Cured",
        "Note": "",
    },
]


def _setup(tmp_path: Path, rows=ROWS, **card_changes):
    table_path = write_csv(tmp_path / "clinical.csv", rows)
    card = load_card(write_card(tmp_path / "card.yaml", base_card(**card_changes)))
    return card, table_path, read_table(table_path, card.patient_id)


def test_auto_features_are_numeric_and_never_labels(tmp_path: Path) -> None:
    card, path, table = _setup(tmp_path)
    clinical = build_clinical(table, card, path)
    assert clinical.features == ["Age", "Gender", "Body temperature", "CRP"]
    for leaky in ("SARS-CoV-2 nucleic acids", "Morbidity outcome", "Mortality outcome", "Patient ID", "Hospital"):
        assert leaky not in clinical.features
    expected = np.array(
        [[61, 1, 38.2, 12.5], [45, 0, np.nan, 0.25], [30, np.nan, 36.6, 3.1], [52, 1, 37.0, 200]], dtype=np.float32
    )
    np.testing.assert_allclose(clinical.raw, expected, rtol=1e-6)


def test_label_column_stays_out_even_when_numeric(tmp_path: Path) -> None:
    """`SARS-CoV-2 nucleic acids` holds 0/1 numbers here, so only the card's label_columns keeps it out."""
    card, path, table = _setup(tmp_path, label_columns=[])
    assert "SARS-CoV-2 nucleic acids" in build_clinical(table, card, path).features
    card, path, table = _setup(tmp_path)
    assert "SARS-CoV-2 nucleic acids" not in build_clinical(table, card, path).features


def test_explicit_include_and_bad_cells(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS]
    rows[2]["CRP"] = "pending"
    card, path, table = _setup(tmp_path, rows, clinical={"include": ["CRP", "Age"]})
    clinical = build_clinical(table, card, path)
    assert clinical.features == ["CRP", "Age"]
    assert math.isnan(clinical.raw[2, 0])
    assert any("'CRP'" in w and "'P3'" in w and "'pending'" in w for w in clinical.warnings)


def test_unknown_categorical_value_names_row_and_column(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS]
    rows[3]["Gender"] = "Other"
    card, path, table = _setup(tmp_path, rows)
    with pytest.raises(DataError) as info:
        build_clinical(table, card, path)
    message = str(info.value)
    assert str(path) in message and "'P4'" in message and "'Gender'" in message and "'Other'" in message


def test_standardiser_fits_train_rows_only() -> None:
    raw = np.array([[1.0, np.nan], [3.0, 2.0], [100.0, 4.0]], dtype=np.float32)
    scaler = Standardiser.fit(raw[:2])
    assert scaler.mean.tolist() == [2.0, 2.0]
    assert scaler.std.tolist() == [1.0, 1.0]  # std 0 -> 1
    values, missing = scaler.transform(raw)
    np.testing.assert_allclose(values, [[-1, 0], [1, 0], [98, 2]])
    np.testing.assert_array_equal(missing, [[0, 1], [0, 0], [0, 0]])


def test_read_table_errors(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dup.csv", [{"Patient ID": "1", "Age": "3"}, {"Patient ID": "1", "Age": "4"}])
    with pytest.raises(DataError, match=r"duplicate patient id '1' .*rows 2 and 3"):
        read_table(path, "Patient ID")
    path = write_csv(tmp_path / "noid.csv", [{"ID": "1", "Age": "3"}])
    with pytest.raises(DataError, match=r"no patient id column 'Patient ID'.*columns: ID, Age"):
        read_table(path, "Patient ID")
    path = tmp_path / "blank.csv"
    path.write_text("Patient ID,Age\n1,3\n,\n2,5\n", encoding="utf-8")
    assert read_table(path, "Patient ID")["Patient ID"].tolist() == ["1", "2"]


def test_labels_map_drop_and_mask(tmp_path: Path) -> None:
    card, path, table = _setup(tmp_path)
    labels = map_labels(table, card, path)
    assert labels.values["morbidity"].tolist() == [2, -1, 0, 1]  # P2 is dropped, its value stays masked
    assert labels.values["mortality"].tolist() == [1, -1, -1, 0]  # Unknown and empty are masked
    assert list(labels.dropped) == [1]
    assert "Suspected*" in labels.dropped[1]


def test_unknown_label_value_is_one_line_error(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS]
    rows[3]["Morbidity outcome"] = "Moderate"
    card, path, table = _setup(tmp_path, rows)
    with pytest.raises(DataError) as info:
        map_labels(table, card, path)
    message = str(info.value)
    assert "\n" not in message
    for part in (str(path), "row 'P4'", "column 'Morbidity outcome'", "'Moderate'", "tasks[0]"):
        assert part in message


def test_regression_and_multilabel_labels(tmp_path: Path) -> None:
    rows = [
        {"Patient ID": "a", "Score": "12", "GGO": "1", "Eff": "no", "Outcome": "Cured"},
        {"Patient ID": "b", "Score": "", "GGO": "0", "Eff": "yes", "Outcome": "Cured"},
        {"Patient ID": "c", "Score": "n.a.", "GGO": "", "Eff": "YES", "Outcome": "Cured"},
        {"Patient ID": "d", "Score": "4.5", "GGO": "?", "Eff": "0", "Outcome": "Cured"},
    ]
    tasks = [
        {"name": "score", "kind": "regression", "column": "Score", "unlabelled": ["n.a."]},
        {"name": "findings", "kind": "multilabel", "columns": ["GGO", "Eff"], "unlabelled": ["?"]},
    ]
    card, path, table = _setup(tmp_path, rows, tasks=tasks, split={"k_folds": 2}, label_columns=[])
    labels = map_labels(table, card, path)
    score = labels.values["score"]
    assert score[0] == 12 and score[3] == 4.5 and np.isnan(score[1]) and np.isnan(score[2])
    np.testing.assert_array_equal(labels.values["findings"], [[1, 0], [0, 1], [np.nan, 1], [np.nan, 0]])
    rows[1]["Score"] = "high"
    card, path, table = _setup(tmp_path, rows, tasks=tasks, split={"k_folds": 2}, label_columns=[])
    with pytest.raises(DataError, match=r"row 'b', column 'Score': raw value 'high'"):
        map_labels(table, card, path)
