"""Ablation study files: validation errors (one line, key paths, exit 2), design expansion counts, fold partitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.ablation import study_yaml
from mmtune.cli import main
from mmtune.data.format import Manifest
from mmtune.errors import ConfigError, DataError
from mmtune.tuning.ablation import check_data, expand_with_data, load_study


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = """kind: ablation
base:
  data: {path: /nonexistent/prepared}
  tasks: [covid, morbidity]
  trainer: {max_epochs: 1}
  tracking: {aim_repo: null}
"""


def manifest(counts: dict[str, dict[str, int]], groups: dict[str, int]) -> Manifest:
    """A prepared data set's manifest as `mmtune data prepare` writes it (only the fields the checks read)."""
    return Manifest.model_validate(
        {
            "name": "m",
            "n_patients": sum(groups.values()),
            "shards": [],
            "image": {"dtype": "float16", "shape": [4, 32, 32]},
            "tasks": [
                {"name": "covid", "kind": "binary", "classes": ["Control", "COVID-19"]},
                {"name": "morbidity", "kind": "multiclass", "classes": ["Control", "Type I", "Type II"]},
            ],
            "split": {"method": "stratified", "k_folds": 5, "stratify_by": "morbidity", "group_column": "Hospital"},
            "counts": {"train": {"morbidity": {**counts, "masked": 0}}, "test": {"morbidity": {"Type II": 9}}},
            "groups": groups,
        }
    )


def test_factorial_2x2_3_folds_2_seeds_is_24_trials_with_tagged_configs(tmp_path):
    study = load_study(study_yaml(tmp_path / "s.yaml", tmp_path / "data", folds=3, seeds=(0, 1)))
    design = expand_with_data(study, None)
    assert len(design.cells) == 4 and len(design.replicates) == 6 and len(design.trials) == 24
    assert len({t.key for t in design.trials}) == 24
    first = design.trials[0].config
    assert first["data"]["cv"] == {"k": 3, "fold": 0, "seed": 0, "stratify_by": None}
    assert first["trainer"]["seed"] == 0 and first["model"]["fusion"]["name"] == "image_only"
    assert first["tasks"] == ["covid"]
    tags = first["tracking"]["tags"]
    assert tags == {
        "modality": "image",
        "tasks": "covid",
        "study": "crafted",
        "cell": "image / covid",
        "fold": "0",
        "seed": "0",
        "split": "f0/s0",
    }
    # repeated k-fold: seed 1 uses its own partition; every cell of one split shares it
    seed1 = [t for t in design.trials if t.replicate.seed == 1]
    assert {t.config["data"]["cv"]["seed"] for t in seed1} == {1}
    assert {t.config["trainer"]["seed"] for t in seed1} == {1}


def test_fixed_partition_varies_only_initialisation(tmp_path):
    path = study_yaml(tmp_path / "s.yaml", tmp_path / "data", folds=2, seeds=(3, 4))
    study = load_study(path, ["repeats.partition=fixed"])
    design = expand_with_data(study, None)
    assert {t.config["data"]["cv"]["seed"] for t in design.trials} == {0}
    assert {t.config["trainer"]["seed"] for t in design.trials} == {3, 4}


def test_one_at_a_time_and_leave_one_out_cell_counts(tmp_path):
    oat = write(
        tmp_path,
        BASE
        + """factors:
  fusion: {none: {model.fusion.name: image_only}, concat: {model.fusion.name: concat}, gated: {model.fusion.name: gated}}
  weighting: {equal: {weighting.name: equal}, uncertainty: {weighting.name: uncertainty}}
design: one_at_a_time
baseline: {fusion: concat}
repeats: {seeds: [0, 1], folds: 2}
""",
        "oat.yaml",
    )
    design = expand_with_data(load_study(oat), None)
    assert [c.name for c in design.cells] == ["baseline", "fusion=none", "fusion=gated", "weighting=uncertainty"]
    assert design.cells[0].levels == {"fusion": "concat", "weighting": "equal"}
    assert len(design.trials) == 4 * 2 * 2
    loo = write(
        tmp_path,
        BASE
        + """factors:
  clinical: {model.fusion.name: image_only}
  morbidity: {tasks: [covid]}
design: leave_one_out
repeats: {seeds: [0], folds: 3}
""",
        "loo.yaml",
    )
    design = expand_with_data(load_study(loo), None)
    assert [c.name for c in design.cells] == ["full", "without clinical", "without morbidity"]
    assert design.baselines == {"clinical": "without", "morbidity": "without"}
    assert design.trials[1].config["model"]["fusion"]["name"] == "image_only"
    assert len(design.trials) == 3 * 3


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # two factors set the same key differently in one cell
            """factors:
  modality: {image: {model.fusion.name: image_only}, both: {model.fusion.name: concat}}
  fusion: {gated: {model.fusion.name: gated}, film: {model.fusion.name: film}}
""",
            "factors.modality.image sets model.fusion.name and factors.fusion.gated sets model.fusion.name",
        ),
        (  # a key nested inside another factor's key
            """factors:
  a: {x: {model.fusion: {name: concat}}, y: {model.fusion: {name: gated}}}
  b: {p: {model.fusion.dim: 8}, q: {model.fusion.dim: 16}}
""",
            "each config key must belong to one factor",
        ),
        ("factors:\n  a: {x: {model.fusion.nmae: concat}, y: {}}\n", "factors.a.x.model.fusion.nmae"),
        ("factors:\n  a: {x: {data.fold: 1}, y: {}}\n", "data.fold is set by `repeats`"),
        ("factors:\n  a: {only: {model.fusion.name: concat}}\n", "factors.a: needs at least 2 levels"),
        ("factors:\n  a: {x: {}, y: {}}\nbaseline: {a: z}\n", "baseline.a: 'z' is not a level of a"),
        (
            "factors:\n  a: {x: {}, y: {}}\ntune: {space: {optim.lr: {choice: [0.1]}}}\n",
            "tune: an inner search per cell is not supported",
        ),
        (
            "factors:\n  a: {x: {}, y: {}}\nrepeats: {scheme: logo, folds: 3}\n",
            "repeats: folds applies to scheme: kfold",
        ),
        ("factors:\n  a: {x: {}, y: {}}\nmetrics: [covid/f2]\n", "metrics: metric 'covid/f2'"),
        ("factors:\n  a: {x: {model.fusion.dim: 0}, y: {}}\n", "cell 'x': model.fusion.dim"),
    ],
)
def test_invalid_studies_are_one_line_errors_naming_the_key(tmp_path, body, expected):
    path = write(tmp_path, BASE + body)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    message = str(info.value)
    assert expected in message and "\n" not in message and message.startswith(str(path))


def test_cli_exit_code_2_and_one_line(tmp_path, capsys):
    path = write(tmp_path, BASE + "factors:\n  a: {x: {model.fusion.nmae: concat}, y: {}}\n")
    with pytest.raises(SystemExit) as info:
        main(["ablate", str(path), "--dry-run"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "model.fusion.nmae" in err[0]


def test_data_checks_k_against_smallest_class_and_single_group(tmp_path):
    path = study_yaml(tmp_path / "s.yaml", tmp_path / "data", folds=5)
    study = load_study(path)
    check_data(study, manifest({"Control": 30, "Type I": 25, "Type II": 12}, {"A": 40, "B": 36}))  # fine
    with pytest.raises(DataError, match=r"k = 5 folds is larger than the smallest class of 'morbidity' \('Type II': 4"):
        check_data(study, manifest({"Control": 30, "Type I": 25, "Type II": 4}, {"A": 40, "B": 19}))
    logo = load_study(path, ["repeats.scheme=logo", "repeats.folds=null"])
    with pytest.raises(DataError, match=r"logo needs at least 2 groups in the card's group column .'Hospital'.*'A'"):
        check_data(logo, manifest({"Control": 30, "Type I": 25, "Type II": 12}, {"A": 67}))
    design = expand_with_data(logo, manifest({"Control": 30, "Type I": 25, "Type II": 12}, {"A": 40, "B": 27}))
    assert [r.group for r in design.replicates] == ["A", "B", "A", "B"]  # seeds 0, 1
    assert design.trials[0].config["data"]["test_group"] == "A" and "cv" not in design.trials[0].config["data"]


def test_fold_partitions_are_paired_across_cells_fresh_per_seed_and_stratified(tmp_path, prepared_synthetic):
    """Cells with different tasks get identical folds; seeds get different ones; no patient in two roles."""
    from mmtune.config.run import RunConfig
    from mmtune.data.format import read_manifest
    from mmtune.data.loading import read_split_tables
    from mmtune.data.multisource import resolve_data

    study = load_study(study_yaml(tmp_path / "s.yaml", prepared_synthetic, folds=3, seeds=(0, 1)))
    manifest_ = read_manifest(prepared_synthetic)
    design = expand_with_data(study, manifest_)
    roles: dict[tuple[str, str], dict[str, set[str]]] = {}
    labels: dict[str, int] = {}
    for trial in design.trials:
        cfg = RunConfig.model_validate(trial.config)
        tables = read_split_tables(resolve_data(cfg.data, ["morbidity"]))
        sets = {s: set(t["patient_id"].to_pylist()) for s, t in tables.items()}
        for pid, y in zip(
            tables["val"]["patient_id"].to_pylist(), tables["val"]["y_morbidity"].to_pylist(), strict=True
        ):
            labels[pid] = y
        assert not (sets["train"] & sets["val"]) and not (sets["test"] & (sets["train"] | sets["val"]))
        roles[(trial.cell.name, trial.replicate.split_id)] = sets
    cells = [c.name for c in design.cells]
    for rep in design.replicates:  # the same partition in every cell (tasks differ between cells)
        first = roles[(cells[0], rep.split_id)]
        assert all(roles[(c, rep.split_id)] == first for c in cells[1:])
    by_seed = {
        seed: [roles[(cells[0], r.split_id)]["val"] for r in design.replicates if r.seed == seed] for seed in (0, 1)
    }
    non_test = set().union(*by_seed[0])
    for folds in by_seed.values():
        assert sum(len(f) for f in folds) == len(non_test) == len(set().union(*folds))  # each patient validates once
    assert by_seed[0] != by_seed[1]
    for folds in by_seed.values():  # stratified by morbidity: class counts per fold differ by at most 1
        for cls in set(labels.values()):
            counts = [sum(1 for p in f if labels[p] == cls) for f in folds]
            assert max(counts) - min(counts) <= 1
    assert np.isclose(len(non_test), manifest_.n_patients - sum(1 for _ in roles[(cells[0], "f0/s0")]["test"]))


def test_set_overrides_retarget_a_shipped_study(tmp_path):
    shipped = Path(__file__).resolve().parents[1] / "search_spaces" / "ictcf_ablation.yaml"
    study = load_study(
        shipped,
        [
            "factors.tasks=null",
            "repeats.seeds=[0, 1]",
            f"data.path={tmp_path}",
            "factors.modality.image+clinical.model.fusion.name=gated",
        ],
    )
    design = expand_with_data(study, None)
    assert [c.name for c in design.cells] == ["image", "image+clinical"] and design.baselines == {"modality": "image"}
    assert len(design.trials) == 2 * 5 * 2
    assert design.trials[1].config["model"]["fusion"]["name"] == "gated"
    assert design.trials[0].config["data"]["path"] == str(tmp_path)
    assert design.trials[0].config["data"]["card"].endswith("datasets/synthetic.yaml")  # found beside the study


def test_a_remote_aim_server_stays_a_url_in_every_cell(tmp_path):
    """Ablations on a cluster log to ``aim://head:53800``: it must not be turned into a local path like the data
    paths are."""
    study = load_study(
        study_yaml(tmp_path / "s.yaml", tmp_path / "data", folds=3, seeds=(0,)),
        ["base.tracking.aim_repo=aim://10.0.0.5:53800"],
    )
    assert study.base["tracking"]["aim_repo"] == "aim://10.0.0.5:53800"
    assert Path(study.base["data"]["path"]).is_absolute()
