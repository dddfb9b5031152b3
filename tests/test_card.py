"""Dataset cards: the shipped cards load, and every mistake is one line naming the YAML key path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from helpers.rawdata import base_card, write_card
from mmtune.config.card import load_card, load_card_with_source
from mmtune.errors import ConfigError
from mmtune.tasks import TaskKind

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["ictcf", "synthetic", "synthetic_prognosis"])
def test_shipped_cards_load(name: str) -> None:
    card = load_card(REPO / "datasets" / f"{name}.yaml")
    assert card.name == name
    leaky = card.label_defining_columns
    assert all(column not in leaky for column in card.clinical.include or [])


def test_synthetic_card_tasks_and_label_columns() -> None:
    card = load_card(REPO / "datasets" / "synthetic.yaml")
    kinds = {t.name: t.kind for t in card.tasks}
    assert kinds == {
        "covid": TaskKind.BINARY,
        "morbidity": TaskKind.MULTICLASS,
        "mortality": TaskKind.BINARY,
        "severity": TaskKind.REGRESSION,
        "findings": TaskKind.MULTILABEL,
        "lesion_seg": TaskKind.SEGMENTATION,
    }
    leaky = card.label_defining_columns
    for column in ("Morbidity outcome", "Mortality outcome", "Lesion fraction", "SARS-CoV-2 nucleic acids"):
        assert column in leaky
    specs = {t.name: t for t in card.task_specs}
    assert specs["morbidity"].classes == ["Control", "Type I", "Type II"]
    assert specs["lesion_seg"].classes == ["background", "lesion"]


def test_overrides_change_card_and_hash(tmp_path: Path) -> None:
    path = write_card(tmp_path / "card.yaml", base_card())
    plain = load_card_with_source(path)
    bigger = load_card_with_source(path, {"image.size": 32})
    assert plain.card.image.size == 16 and bigger.card.image.size == 32
    assert plain.sha256 != bigger.sha256
    assert load_card_with_source(path).sha256 == plain.sha256


def _error(tmp_path: Path, card: dict) -> str:
    path = write_card(tmp_path / "card.yaml", card)
    with pytest.raises(ConfigError) as info:
        load_card(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def _mutated(edit) -> dict:
    card = copy.deepcopy(base_card())
    edit(card)
    return card


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["image"].pop("size"), "image.size: required key is missing"),
        (lambda c: c["image"].update(sizes=3), "image.sizes: unknown key"),
        (lambda c: c["image"].update(size="big"), "image.size:"),
        (lambda c: c["tasks"][0].update(colum="x"), "tasks[0].colum: unknown key"),
        (lambda c: c["tasks"][1].update(kind="ordinal"), "tasks[1].kind:"),
        (lambda c: c["tasks"][1].update(classes=["a", "b", "c"]), "tasks[1]: binary needs `classes` with exactly 2"),
        (lambda c: c["tasks"][0]["map"].update(Mild="Type 1"), "'Type 1' is not one of classes"),
        (lambda c: c["split"].update(stratify_by="nope"), "split.stratify_by: no task named 'nope'"),
        (lambda c: c["split"].update(stratify_by="lesion_seg"), "split.stratify_by: task 'lesion_seg' is segmentation"),
        (lambda c: c["source"].pop("mask_glob"), "tasks[2].kind: a segmentation task needs masks"),
        (lambda c: c["source"].update(image_column="img"), "source: image_column only applies to layout 'manifest'"),
        (lambda c: c["split"].update(method="given"), "split: method given needs `column`"),
        (lambda c: c["split"].update(val_fraction=0.1), "split: `val_fraction` is implied by k_folds"),
        (lambda c: c.update(split={"method": "group"}, group=None), "split.method: method group needs `group`"),
        (lambda c: c["clinical"].update(include=["Age", "Mortality outcome"]), "clinical.include[1]: 'Mortality"),
        (lambda c: c["clinical"].update(include=["SARS-CoV-2 nucleic acids"]), "clinical.include[0]:"),
        (lambda c: c["clinical"].update(include=["Hospital"]), "clinical.include[0]: 'Hospital' is the group column"),
        (lambda c: c["tasks"].append({"name": "morbidity", "kind": "regression", "column": "Age"}), "tasks[0].name"),
        (lambda c: c["image"].update(kind="volume3d"), "image: volume3d needs `depth`"),
    ],
)
def test_card_errors_name_the_key_path(tmp_path: Path, edit, expected: str) -> None:
    assert expected in _error(tmp_path, _mutated(edit))


def test_missing_card_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_card(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nimage: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_card(bad)


def test_yaml_scalars_in_maps_become_text(tmp_path: Path) -> None:
    card = base_card()
    card["tasks"][1] = {
        "name": "mortality",
        "kind": "binary",
        "column": "Mortality outcome",
        "classes": ["Cured", "Deceased"],
        "map": {0: "Cured", 1: "Deceased"},
        "unlabelled": [9, True],
    }
    loaded = load_card(write_card(tmp_path / "card.yaml", card))
    assert loaded.tasks[1].map == {"0": "Cured", "1": "Deceased"}
    assert loaded.tasks[1].unlabelled == ["9", "true"]
