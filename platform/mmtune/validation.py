"""Whole-config checks that need the registries and the prepared data's manifest, run before any training.

It sits above ``config``, ``data``, ``models`` and ``losses`` (it reads all of them), so ``config`` stays free of
components.

Pydantic already checked types and key names; this module checks what it cannot: every component name against
its registry, ``params`` against the factory signatures, and combinations that cannot work with the data
(a fusion needing clinical features on image-only data, segmentation without masks, a 3D backbone on slice
stacks, a task the data do not have). Each problem is a one-line ``ConfigError`` naming the YAML key and what is
allowed. Nothing is built, so it is cheap enough for ``mmtune tune`` to run on every sampled config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmtune.config.run import RunConfig, TaskConfig
from mmtune.console import warn
from mmtune.data.format import Manifest
from mmtune.errors import ConfigError
from mmtune.tasks import DENSE_KINDS, TaskKind, TaskSpec

POS_WEIGHT_KINDS = (TaskKind.BINARY, TaskKind.MULTILABEL)
CLASS_WEIGHT_KINDS = (TaskKind.MULTICLASS,)


def check_run_config(
    cfg: RunConfig, manifest: Manifest | Sequence[Manifest] | None = None, *, quiet: bool = False
) -> list[str]:
    """Raise ``ConfigError`` on the first problem; return (and print unless ``quiet``) warnings.

    ``manifest``: the prepared data set's manifest, or one per data source of a multi-dataset run; without it only
    the data-independent checks run.
    """
    from mmtune.components import load_registries
    from mmtune.losses.registries import TASK_LOSSES, WEIGHTINGS
    from mmtune.losses.tasks import allowed_losses
    from mmtune.models.gbdt import check_reference, gbdt_params
    from mmtune.models.image_encoder import check_backbone_layout
    from mmtune.models.multitask import check_model_combination, clinical_encoder_kwargs
    from mmtune.models.registries import BACKBONES, CLINICAL_ENCODERS, FUSIONS, SHARINGS
    from mmtune.registry import validate_params

    load_registries()
    warnings: list[str] = []
    model = cfg.model
    backbone = BACKBONES.entry(model.backbone.name, "model.backbone.name")
    validate_params(backbone, model.backbone.params, "model.backbone.params")
    CLINICAL_ENCODERS.check(model.clinical_encoder.name, "model.clinical_encoder.name")
    clinical_encoder_kwargs(model.clinical_encoder)  # its params against the encoder's signature
    fusion = FUSIONS.entry(model.fusion.name, "model.fusion.name")
    validate_params(fusion, model.fusion.params, "model.fusion.params")
    sharing = SHARINGS.entry(model.sharing, "model.sharing")
    validate_params(sharing, model.sharing_params, "model.sharing_params")
    if model.reference is not None:
        gbdt_params(cfg)
    weighting = WEIGHTINGS.entry(cfg.weighting.name, "weighting.name")
    weighting_params = validate_params(weighting, cfg.weighting.params, "weighting.params")

    if model.backbone.pretrained and not Path(model.backbone.pretrained).expanduser().is_file():
        raise ConfigError(f"model.backbone.pretrained: weights file not found: {model.backbone.pretrained}")
    if model.backbone.mode == "mil" and backbone.tags.get("dims") == 3:
        raise ConfigError(
            f"model.backbone.mode: 'mil' pools 2D slice embeddings; {model.backbone.name!r} is a 3D backbone "
            "(use mode 'channels')"
        )
    _check_weighting(cfg, weighting.factory, weighting_params)
    if model.fusion.modality_dropout > 0 and not (fusion.factory.uses_image and fusion.factory.uses_clinical):
        warnings.append(
            f"model.fusion.modality_dropout: {model.fusion.name!r} uses one modality; modality dropout does nothing"
        )
    for i, task in enumerate(cfg.tasks):
        if task.loss is not None:
            TASK_LOSSES.check(task.loss, f"tasks[{i}].loss")

    manifests = [manifest] if isinstance(manifest, Manifest) else list(manifest or [])
    if manifests:
        image = manifests[0].image
        for j, other in enumerate(manifests[1:], start=1):
            if (other.image.layout, other.image.shape) != (image.layout, image.shape):
                raise ConfigError(
                    f"data.path[{j}]: image {other.image.layout} {other.image.shape} differs from data.path[0]'s "
                    f"{image.layout} {image.shape}; all data sources of one run need the same image spec"
                )
        check_backbone_layout(model.backbone, image, backbone.tags.get("dims"))
        n_clinical = _clinical_width(manifests)
        specs = [_task_spec(i, task, manifests) for i, task in enumerate(cfg.tasks)]
        for i, (task, spec) in enumerate(zip(cfg.tasks, specs)):
            _check_task_options(i, task, spec)
            if task.loss is not None and task.loss not in allowed_losses(spec.kind):
                raise ConfigError(
                    f"tasks[{i}].loss: {task.loss!r} does not fit {spec.kind.value} task {spec.name!r}; "
                    f"allowed: {', '.join(allowed_losses(spec.kind))}"
                )
            if spec.kind == TaskKind.SEGMENTATION and not any(
                m.mask is not None for m in manifests if any(t.name == spec.name for t in m.tasks)
            ):
                raise ConfigError(
                    f"tasks[{i}].name: segmentation task {spec.name!r} needs masks but the prepared data have none "
                    "(the card maps no mask files)"
                )
        if model.reference is not None:
            check_reference(cfg, specs, n_clinical)
        check_model_combination(model, n_clinical, specs)
        if all(spec.kind in DENSE_KINDS for spec in specs) and model.fusion.name != "image_only":
            warnings.append(
                f"model.fusion.name: every task is dense (segmentation / reconstruction), so fusion "
                f"{model.fusion.name!r} and the clinical encoder are not built; the decoders read the image alone"
            )
    if not quiet:
        for message in warnings:
            warn(message)
    return warnings


def _check_weighting(cfg: RunConfig, factory: type, params: dict) -> None:
    names = cfg.task_names
    if len(names) < getattr(factory, "min_tasks", 1):
        raise ConfigError(
            f"weighting.name: {cfg.weighting.name!r} combines per-task gradients but the run has one task "
            f"({names[0]}); use 'equal' or add a task"
        )
    for key in (params.get("weights") or {}) if cfg.weighting.name == "static" else {}:
        if key not in names:
            raise ConfigError(f"weighting.params.weights.{key}: not a task of this run; tasks: {', '.join(names)}")
    precision = str(cfg.trainer.precision)
    if getattr(factory, "manual_gradients", False) and "16" in precision and "bf16" not in precision:
        raise ConfigError(
            f"trainer.precision: {precision!r} uses a loss scaler, which gradient weighting "
            f"{cfg.weighting.name!r} does not support; use 32-true or bf16-mixed"
        )


def _clinical_width(manifests: list[Manifest]) -> int:
    """Features a model sees: the union over the data sources (a source lacking one marks it missing, as
    ``mmtune.data.loading`` harmonises them)."""
    return len({f: None for m in manifests for f in m.clinical.features})


def _task_spec(index: int, task: TaskConfig, manifests: list[Manifest]) -> TaskSpec:
    """The task's spec from the data; missing tasks and conflicting definitions are errors."""
    found = [t for m in manifests for t in m.tasks if t.name == task.name]
    if not found:
        has = sorted({t.name for m in manifests for t in m.tasks})
        where = ", ".join(repr(m.name) for m in manifests)
        raise ConfigError(
            f"tasks[{index}].name: task {task.name!r} is not in the prepared data {where}; it has: {', '.join(has)}"
        )
    first = found[0]
    for other in found[1:]:
        if (other.kind, other.classes) != (first.kind, first.classes):
            raise ConfigError(
                f"tasks[{index}].name: data sources disagree on task {task.name!r}: {first.kind.value} "
                f"{first.classes} vs {other.kind.value} {other.classes}"
            )
    return first


def _check_task_options(index: int, task: TaskConfig, spec: TaskSpec) -> None:
    if task.pos_weight is not None and spec.kind not in POS_WEIGHT_KINDS:
        raise ConfigError(
            f"tasks[{index}].pos_weight: only binary and multilabel tasks take pos_weight; {spec.name!r} is "
            f"{spec.kind.value}"
        )
    if task.class_weights is not None:
        if spec.kind not in CLASS_WEIGHT_KINDS:
            raise ConfigError(
                f"tasks[{index}].class_weights: only multiclass tasks take class weights; {spec.name!r} is "
                f"{spec.kind.value} (binary tasks use pos_weight)"
            )
        if isinstance(task.class_weights, list) and len(task.class_weights) != len(spec.classes):
            raise ConfigError(
                f"tasks[{index}].class_weights: {len(task.class_weights)} weights for {len(spec.classes)} classes "
                f"of {spec.name!r} ({', '.join(spec.classes)})"
            )
