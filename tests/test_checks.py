"""Config checks against registries and the prepared data's manifest: one-line errors naming the key and what is
allowed, before anything is built or trained."""

from __future__ import annotations

import pytest
from mmtune.config.loading import validate
from mmtune.config.run import RunConfig
from mmtune.data.format import ArraySpec, ClinicalInfo, ImageInfo, Manifest, SplitInfo
from mmtune.errors import ConfigError, UnknownComponentError
from mmtune.tasks import TaskKind, TaskSpec
from mmtune.validation import check_run_config

TASKS = [
    TaskSpec(name="covid", kind=TaskKind.BINARY, classes=["negative", "positive"]),
    TaskSpec(name="morbidity", kind=TaskKind.MULTICLASS, classes=["mild", "regular", "severe", "critical"]),
    TaskSpec(name="severity", kind=TaskKind.REGRESSION),
    TaskSpec(name="lesion_seg", kind=TaskKind.SEGMENTATION, classes=["background", "lesion"]),
]


def manifest(layout: str = "stack2d", features: int = 6, mask: bool = True, name: str = "synthetic") -> Manifest:
    shape = [4, 32, 32] if layout == "stack2d" else [16, 16, 16]
    return Manifest(
        name=name,
        n_patients=60,
        shards=["shards/part-00000.parquet"],
        image=ImageInfo(dtype="float16", shape=shape, layout=layout),
        mask=ArraySpec(dtype="uint8", shape=shape) if mask else None,
        tasks=TASKS,
        clinical=ClinicalInfo(features=[f"f{i}" for i in range(features)]),
        split=SplitInfo(method="stratified"),
    )


def run_config(**sections) -> RunConfig:
    data = {"data": {"path": "prepared"}, "tasks": ["covid", "morbidity"], **sections}
    return validate(RunConfig, data, "run.yaml")


def test_a_valid_config_passes_without_warnings() -> None:
    cfg = run_config(
        model={"backbone": {"name": "resnet18", "mode": "mil"}, "fusion": {"name": "film", "params": {"daft": True}}},
        weighting={"name": "gradnorm", "params": {"alpha": 0.5}},
        tasks=["covid", {"name": "morbidity", "class_weights": "balanced"}, "lesion_seg"],
    )
    assert check_run_config(cfg, manifest()) == []


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"model": {"fusion": {"name": "x"}}},
            r"^unknown fusion 'x' at model\.fusion\.name; known: clinical_only, concat",
        ),
        ({"model": {"backbone": {"name": "vit"}}}, r"^unknown backbone 'vit' at model\.backbone\.name; known: "),
        (
            {"model": {"clinical_encoder": {"name": "xgb"}}},
            r"at model\.clinical_encoder\.name; known: ft_transformer, mlp$",
        ),
        (
            {"weighting": {"name": "mgdaa"}},
            r"^unknown weighting 'mgdaa' at weighting\.name; did you mean 'mgda'\? known: aligned_mtl, cagrad",
        ),
        (
            {"tasks": [{"name": "covid", "loss": "focal"}]},
            r"^unknown task loss 'focal' at tasks\[0\]\.loss; known: bce",
        ),
    ],
)
def test_unknown_component_names(sections, message) -> None:
    with pytest.raises(UnknownComponentError, match=message):
        check_run_config(run_config(**sections))


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"weighting": {"name": "pcgrad", "params": {"alpha": 1}}},
            r"^unknown parameter 'alpha' at weighting\.params\.alpha; 'pcgrad' accepts: seed$",
        ),
        (
            {"weighting": {"name": "cagrad", "params": {"c": "big"}}},
            r"^weighting\.params\.c: Input should be a valid number",
        ),
        (
            {"model": {"backbone": {"name": "small_cnn", "params": {"depth": 3}}}},
            r"^unknown parameter 'depth' at model\.backbone\.params\.depth; 'small_cnn' accepts: width, stages$",
        ),
        (
            {"model": {"fusion": {"name": "late", "params": {"combine": "max"}}}},
            r"^model\.fusion\.params\.combine: Input should be 'average' or 'learned'",
        ),
    ],
)
def test_params_are_checked_against_factory_signatures(sections, message) -> None:
    with pytest.raises(ConfigError, match=message):
        check_run_config(run_config(**sections))


@pytest.mark.parametrize(
    ("sections", "data", "message"),
    [
        (
            {"model": {"fusion": {"name": "film"}}},
            manifest(features=0),
            r"^model\.fusion\.name: 'film' needs clinical features but the data have none; use one of: image_only$",
        ),
        (
            {"model": {"fusion": {"name": "clinical_only"}}},
            manifest(features=0),
            r"^model\.fusion\.name: 'clinical_only'",
        ),
        (
            {"tasks": ["covid", "lesion_seg"]},
            manifest(mask=False),
            r"^tasks\[1\]\.name: segmentation task 'lesion_seg' needs masks but the prepared data have none",
        ),
        (
            {"model": {"backbone": {"name": "resnet3d_18"}}},
            manifest("stack2d"),
            r"^model\.backbone\.name: 'resnet3d_18' is a 3D backbone but the data are stack2d \(2D\); use one of: ",
        ),
        (
            {"model": {"backbone": {"name": "resnet18"}}},
            manifest("volume3d"),
            r"^model\.backbone\.name: 'resnet18' is a 2D backbone but the data are volume3d \(3D\); use one of: .*resnet3d_10",
        ),
        (
            {"model": {"backbone": {"name": "small_cnn3d", "mode": "mil"}}},
            None,
            r"^model\.backbone\.mode: 'mil' pools 2D slice embeddings; 'small_cnn3d' is a 3D backbone",
        ),
        (
            {"model": {"backbone": {"name": "small_cnn", "mode": "mil"}}},
            manifest("volume3d"),
            r"^model\.backbone\.name: 'small_cnn' is a 2D backbone",
        ),
        (
            {"tasks": ["covid", "mortality"]},
            manifest(),
            r"^tasks\[1\]\.name: task 'mortality' is not in the prepared data 'synthetic'; it has: covid, lesion_seg, "
            r"morbidity, severity$",
        ),
        (
            {"tasks": [{"name": "severity", "pos_weight": 2.0}]},
            manifest(),
            r"^tasks\[0\]\.pos_weight: only binary and multilabel tasks take pos_weight; 'severity' is regression$",
        ),
        (
            {"tasks": [{"name": "morbidity", "class_weights": [1, 2]}]},
            manifest(),
            r"^tasks\[0\]\.class_weights: 2 weights for 4 classes of 'morbidity'",
        ),
        (
            {"tasks": [{"name": "covid", "loss": "mse"}]},
            manifest(),
            r"^tasks\[0\]\.loss: 'mse' does not fit binary task 'covid'; allowed: bce$",
        ),
        (
            {"model": {"fusion": {"name": "clinical_only"}}, "tasks": ["covid", "lesion_seg"]},
            manifest(),
            r"^model\.fusion\.name: 'clinical_only' builds no image encoder but task 'lesion_seg' is segmentation",
        ),
        (
            {"weighting": {"name": "pcgrad"}, "trainer": {"precision": "16-mixed"}},
            None,
            r"^trainer\.precision: '16-mixed' uses a loss scaler",
        ),
        (
            {"weighting": {"name": "static", "params": {"weights": {"mortality": 2}}}},
            None,
            r"^weighting\.params\.weights\.mortality: not a task of this run; tasks: covid, morbidity$",
        ),
        (
            {"model": {"backbone": {"name": "small_cnn", "pretrained": "/nonexistent/weights.pt"}}},
            None,
            r"^model\.backbone\.pretrained: weights file not found: /nonexistent/weights\.pt$",
        ),
    ],
)
def test_incompatible_combinations(sections, data, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        check_run_config(run_config(**sections), data)
    assert "\n" not in str(info.value)


def test_multi_dataset_manifests_must_agree() -> None:
    cfg = run_config(tasks=["covid"])
    with pytest.raises(ConfigError, match=r"^data\.path\[1\]: image volume3d"):
        check_run_config(cfg, [manifest(), manifest("volume3d", name="other")])
    # clinical features are the union over the sources (a source lacking one marks it missing)
    film = run_config(tasks=["covid"], model={"fusion": {"name": "film"}})
    assert check_run_config(film, [manifest(features=0), manifest(features=3, name="other")]) == []
    with pytest.raises(ConfigError, match=r"^model\.fusion\.name: 'film' needs clinical features"):
        check_run_config(film, [manifest(features=0), manifest(features=0, name="other")])
    second = manifest(name="brixia")
    second.tasks = [TaskSpec(name="covid", kind=TaskKind.MULTICLASS, classes=["a", "b", "c"])]
    with pytest.raises(ConfigError, match=r"^tasks\[0\]\.name: data sources disagree on task 'covid'"):
        check_run_config(cfg, [manifest(), second])
    # a task labelled by only one of the sources is fine (masked in the other)
    second.tasks = [TaskSpec(name="brixia_score", kind=TaskKind.REGRESSION)]
    assert check_run_config(run_config(tasks=["covid", "brixia_score"]), [manifest(), second]) == []


def test_one_task_with_a_gradient_weighting_is_an_error_and_other_mismatches_warnings(capsys) -> None:
    assert check_run_config(run_config(tasks=["covid"], weighting={"name": "dwa"}), manifest()) == []
    with pytest.raises(
        ConfigError, match=r"^weighting\.name: 'nash_mtl' combines per-task gradients but the run has one"
    ):
        check_run_config(run_config(tasks=["covid"], weighting={"name": "nash_mtl"}), manifest())
    quiet = check_run_config(
        run_config(tasks=["covid"], model={"fusion": {"name": "image_only", "modality_dropout": 0.3}}), quiet=True
    )
    assert quiet == ["model.fusion.modality_dropout: 'image_only' uses one modality; modality dropout does nothing"]
    dense_only = check_run_config(run_config(tasks=["lesion_seg"]), manifest(), quiet=True)
    assert dense_only == [
        "model.fusion.name: every task is dense (segmentation / reconstruction), so fusion 'concat' and the clinical "
        "encoder are not built; the decoders read the image alone"
    ]


def test_checks_build_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mmtune.validation import check_run_config\n"
        "from mmtune.config.run import RunConfig\n"
        "cfg = RunConfig.model_validate({'data': {'path': 'x'}, 'tasks': ['covid'],"
        " 'model': {'backbone': {'name': 'densenet121'}, 'fusion': {'name': 'cross_attention'}}})\n"
        "check_run_config(cfg)\n"
        "print(sorted(m for m in ('timm', 'monai') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
