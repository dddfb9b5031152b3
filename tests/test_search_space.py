"""Search-space YAML: validation with key paths, candidate checks, dry run, and conversion to Tune's param space.

No Ray cluster is started here: Tune's variant generator and Optuna's define-by-run sampling run offline.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from mmtune.config.run import RunConfig
from mmtune.errors import ConfigError, DataError
from mmtune.trial_config import INACTIVE, RUN_KEY
from mmtune.tuning.candidates import check_candidates
from mmtune.tuning.combinations import count_combinations, trial_count
from mmtune.tuning.searchers import OptunaSpace, param_space
from mmtune.tuning.space import load_search_space

BASE = {
    "data": {"path": "PREPARED"},
    "tasks": ["covid", "morbidity"],
    "trainer": {"max_epochs": 10, "monitor": "val/mean_auroc"},
}
SPACE = {
    "model.fusion.name": {"choice": ["concat", "late", "gated", "film"]},
    "weighting.name": {"choice": ["equal", "uncertainty", "gradnorm"]},
    "weighting.params.alpha": {"uniform": [0.5, 2.0], "when": {"weighting.name": "gradnorm"}},
    "model.backbone.name": {"grid": ["small_cnn", "resnet18"]},
    "optim.lr": {"loguniform": ["1e-4", "3e-3"]},
}


def write_space(tmp_path: Path, prepared: Path | None = None, **changes) -> Path:
    doc = {"name": "t", "base": yaml.safe_load(yaml.safe_dump(BASE)), "space": dict(SPACE)}
    doc["base"]["data"]["path"] = str(prepared or tmp_path / "prepared")
    doc["scheduler"] = {"max_t": 4}
    doc["num_samples"] = 2
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_loads_defaults_and_absolute_paths(tmp_path):
    space = load_search_space(write_space(tmp_path))
    assert space.name == "t"
    assert (space.metric, space.mode) == ("val/mean_auroc", "max")
    assert space.max_t == 4 and space.base["trainer"]["max_epochs"] == 4  # scheduler.max_t is the trial budget
    assert Path(space.base["data"]["path"]).is_absolute()
    assert Path(space.base["tracking"]["aim_repo"]).is_absolute()
    assert space.entries["optim.lr"].loguniform == (1e-4, 3e-3)  # YAML 1.1 strings read as numbers
    # conditions are decided before the keys they activate
    assert space.order.index("weighting.name") < space.order.index("weighting.params.alpha")
    assert trial_count(space) == 2 * 2  # grid of 2 backbones x num_samples 2
    RunConfig.model_validate(space.base)


def test_grid_search_expands_every_unconditional_choice(tmp_path):
    space = load_search_space(write_space(tmp_path, search="grid", num_samples=1))
    assert trial_count(space) == 4 * 3 * 2
    # 4 fusions x (equal + uncertainty + gradnorm x 2 alpha bounds) x 2 backbones x 2 lr bounds
    assert count_combinations(space) == 4 * (2 + 2) * 2 * 2


@pytest.mark.parametrize(
    ("space_entry", "expected"),
    [
        (
            {"model.fuson.name": {"choice": ["concat"]}},
            "space.model.fuson.name: 'model.fuson' is not a run config key; model has: backbone",
        ),
        ({"optim.lr.value": {"choice": [1]}}, "space.optim.lr.value: 'optim.lr' is a value, not a mapping"),
        (
            {"optim.lr": {"choice": [1], "uniform": [0, 1]}},
            "space.optim.lr: give exactly one of choice, grid, uniform, loguniform, randint (found: choice, uniform)",
        ),
        ({"optim.lr": {"choise": [1]}}, "space.optim.lr.choise: unknown key"),
        ({"optim.lr": {"uniform": [1, 0]}}, "low < high"),
        ({"optim.lr": {"loguniform": [0, 1]}}, "bounds must be > 0"),
        ({"optim.lr": {"choice": []}}, "space.optim.lr.choice: List should have at least 1 item"),
        (
            {"weighting.params.alpha": {"uniform": [0.5, 2], "when": {"weighting.nam": "gradnorm"}}},
            "space.weighting.params.alpha.when.weighting.nam: 'weighting.nam' is not a run config key",
        ),
        ({"model": {"choice": [{}]}, "model.fusion.name": {"choice": ["concat"]}}, "lies inside space.model"),
    ],
)
def test_space_errors_name_the_key_path(tmp_path, space_entry, expected):
    path = write_space(tmp_path, space=space_entry)
    with pytest.raises(ConfigError) as info:
        load_search_space(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expected in message


def test_file_level_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"scheduler\.name: Input should be 'asha', 'hyperband' or 'fifo'"):
        load_search_space(write_space(tmp_path, scheduler="median"))
    with pytest.raises(ConfigError, match=r"grid is not supported with search: optuna"):
        load_search_space(write_space(tmp_path, search="optuna"))
    with pytest.raises(ConfigError, match=r"base: tasks: required key is missing"):
        load_search_space(write_space(tmp_path, base={"data": {"path": "x"}}))
    with pytest.raises(ConfigError, match=r"base: run config file 'nope.yaml' not found"):
        load_search_space(write_space(tmp_path, base="nope.yaml"))
    with pytest.raises(
        ConfigError,
        match=r"space.yaml: resources: inline: true trains in the trial process, so it needs workers: 1 \(got 2\)",
    ):
        load_search_space(write_space(tmp_path, resources={"workers": 2, "inline": True}))
    circular = {
        "weighting.name": {"choice": ["equal"], "when": {"optim.lr": 0.1}},
        "optim.lr": {"choice": [0.1], "when": {"weighting.name": "equal"}},
    }
    with pytest.raises(ConfigError, match=r"circular condition"):
        load_search_space(write_space(tmp_path, space=circular))


def test_base_from_file_and_set_overrides(tmp_path):
    base_file = tmp_path / "base.yaml"
    base_file.write_text(yaml.safe_dump({**BASE, "data": {"path": str(tmp_path / "p")}}), encoding="utf-8")
    path = write_space(tmp_path, base="base.yaml")  # relative to the space file when not found from the CWD
    overrides = ["num_samples=3", "base.optim.weight_decay=0.01", "space.optim.lr.loguniform=[1.0e-5, 1.0e-4]"]
    space = load_search_space(path, overrides, name="other")
    assert space.name == "other"
    assert space.config.num_samples == 3
    assert space.base["optim"]["weight_decay"] == 0.01
    assert space.entries["optim.lr"].loguniform == (1e-5, 1e-4)


def test_invalid_values_and_all_invalid_spaces_are_refused(tmp_path):
    # a value of the wrong type is refused with its key path, whatever else is chosen
    path = write_space(tmp_path, space={**SPACE, "data.batch_size": {"choice": [8, "big"]}})
    with pytest.raises(ConfigError, match=r"space\.data\.batch_size: value 'big' is invalid: data\.batch_size"):
        check_candidates(load_search_space(path))
    # every value works alone, but no combination is valid (path and card are both removed)
    both = {"data.path": {"choice": [None]}, "data.card": {"choice": [None]}}
    base = {**BASE, "data": {"path": str(tmp_path / "p"), "card": str(tmp_path / "card.yaml")}}
    path = write_space(tmp_path, space=both, base=base)
    with pytest.raises(
        ConfigError, match=r"no combination of the space is valid; e\.g\. data\.path=None, data\.card=None"
    ):
        check_candidates(load_search_space(path))
    report = check_candidates(load_search_space(write_space(tmp_path)))
    assert report.valid == report.checked == report.total == 4 * 4 * 2 * 2


def test_unknown_component_name_is_an_error_naming_key_and_value(tmp_path, prepared_synthetic):
    pytest.importorskip("mmtune.validation")
    from mmtune.data.format import read_manifest

    space_entries = {**SPACE, "model.fusion.name": {"choice": ["concat", "no_such_fusion"]}}
    path = write_space(tmp_path, prepared=prepared_synthetic, space=space_entries)
    with pytest.raises(ConfigError) as info:
        check_candidates(load_search_space(path), read_manifest(prepared_synthetic))
    message = str(info.value)
    assert "space.model.fusion.name: value 'no_such_fusion' is invalid" in message
    assert "concat" in message  # the known names are listed


def test_param_space_conditional_entries_only_on_matching_choices(tmp_path):
    from ray.tune.search.variant_generator import generate_variants

    space = load_search_space(write_space(tmp_path, num_samples=1))
    config = param_space(space, {"study": "t"})
    assert config["study"] == "t"
    run = config[RUN_KEY]
    assert run["model"]["backbone"]["name"] == {"grid_search": ["small_cnn", "resnet18"]}
    seen = Counter()
    for _ in range(60):
        for _, variant in generate_variants(config):
            weighting = variant[RUN_KEY]["weighting"]
            alpha = weighting["params"]["alpha"]
            if weighting["name"] == "gradnorm":
                assert 0.5 <= alpha <= 2.0
            else:
                assert alpha == INACTIVE
            lr = variant[RUN_KEY]["optim"]["lr"]
            assert 1e-4 <= lr <= 3e-3
            seen[weighting["name"]] += 1
            seen[variant[RUN_KEY]["model"]["backbone"]["name"]] += 1
    assert set(seen) == {"equal", "uncertainty", "gradnorm", "small_cnn", "resnet18"}
    assert seen["small_cnn"] == seen["resnet18"] == 60  # the grid is expanded, every time

    def draws() -> list:
        np.random.seed(3)  # what the driver does with search.seed: conditional draws repeat
        return [v[RUN_KEY]["weighting"]["params"]["alpha"] for _ in range(10) for _, v in generate_variants(config)]

    assert draws() == draws()


def test_optuna_define_by_run_skips_inactive_keys(tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    entries = {k: v for k, v in SPACE.items() if k != "model.backbone.name"}
    space = load_search_space(write_space(tmp_path, space=entries, search={"name": "optuna", "seed": 3}))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=3))
    names = Counter()
    for _ in range(30):
        trial = study.ask()
        OptunaSpace(space)(trial)
        params = trial.params
        gradnorm = params[f"{RUN_KEY}/weighting/name"] == "gradnorm"
        assert (f"{RUN_KEY}/weighting/params/alpha" in params) == gradnorm
        assert 1e-4 <= params[f"{RUN_KEY}/optim/lr"] <= 3e-3
        names[params[f"{RUN_KEY}/weighting/name"]] += 1
        study.tell(trial, 0.5)
    assert len(names) == 3


def test_dry_run_prints_size_and_samples_without_ray(tmp_path, prepared_synthetic):
    path = write_space(tmp_path, prepared=prepared_synthetic)
    code = (
        "import sys\n"
        "from mmtune.cli import main\n"
        f"try:\n    main(['tune', {str(path)!r}, '--dry-run'])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('RAY_IMPORTED' if 'ray' in sys.modules else 'NO_RAY')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "expanded space: 4 trials (grid points 2 x num_samples 2)" in text
    assert "64 combinations" in text
    assert "3 sample configs" in text
    assert text.strip().endswith("NO_RAY")
    assert not (tmp_path / "results").exists()


def test_dry_run_refuses_a_directory_that_is_not_prepared(tmp_path):
    not_prepared = tmp_path / "raw"
    not_prepared.mkdir()
    (not_prepared / "clinical.csv").write_text("Patient ID\n1\n", encoding="utf-8")
    space = load_search_space(write_space(tmp_path, prepared=not_prepared))
    from mmtune.tuning.plan import validate_study

    with pytest.raises(DataError, match=r"not a prepared data set \(no manifest\.json\)"):
        validate_study(space)


def test_resource_plan_refuses_what_the_cluster_can_never_give():
    from mmtune.config.search import ResourcesConfig
    from mmtune.tuning.resources import plan_resources

    two_cpus = ({"CPU": 2.0}, [{"CPU": 2.0}])
    plan = plan_resources(ResourcesConfig(), *two_cpus)
    assert plan.trial == {"cpu": 1.0} and plan.max_concurrent == 2
    ray_train = plan_resources(ResourcesConfig(workers=2, cpus_per_worker=0.5), *two_cpus)
    assert ray_train.trial == {"cpu": 0, "memory": 1} and ray_train.max_concurrent == 2
    with pytest.raises(ConfigError, match=r"resources.gpus_per_worker: a worker needs 1 GPU on one node"):
        plan_resources(ResourcesConfig(gpus_per_worker=1), *two_cpus)
    with pytest.raises(ConfigError, match=r"resources: a trial needs 4 CPUs \(workers 2 x cpus_per_worker 2\)"):
        plan_resources(ResourcesConfig(workers=2, cpus_per_worker=2), *two_cpus)
    # one 3-CPU worker cannot be split across two 2-CPU nodes
    with pytest.raises(ConfigError, match=r"a worker needs 3 CPUs on one node but the largest node has 2"):
        plan_resources(ResourcesConfig(cpus_per_worker=3), {"CPU": 4.0}, [{"CPU": 2.0}, {"CPU": 2.0}])
    grows = plan_resources(ResourcesConfig(gpus_per_worker=1, autoscale=True, max_concurrent=4), *two_cpus)
    assert grows.max_concurrent == 4 and math.isclose(grows.gpus_per_trial, 1)


def test_shipped_mtl_zoo_crosses_both_weighting_families_with_every_sharing() -> None:
    """search_spaces/mtl_zoo.yaml: a full grid (no early stopping) of loss- and gradient-based weightings x the
    four sharings, on three tasks of three kinds; every combination passes the registry checks."""
    from mmtune.components import load_registries
    from mmtune.losses.weighting import WEIGHTINGS

    SHARINGS = load_registries()["sharings"]

    space = load_search_space(Path(__file__).resolve().parents[1] / "search_spaces" / "mtl_zoo.yaml")
    assert space.config.search.name == "grid" and space.config.scheduler.name == "fifo"
    weightings = space.config.space["weighting.name"].grid
    families = {WEIGHTINGS.entry(w).tags["family"] for w in weightings}
    assert families == {"loss", "gradient"} and len(weightings) >= 8
    assert sorted(space.config.space["model.sharing"].grid) == sorted(SHARINGS.names())
    assert trial_count(space) == len(weightings) * len(SHARINGS.names())
    assert len(space.base["tasks"]) == 3
    check_candidates(space)
