"""The multi-task model: image encoder + clinical encoder + fusion + one head per task (per fusion branch).

``model(batch)`` returns ``{task: output}``. ``drop_modality="clinical"|"image"`` (argument, or the batch key
``drop_modality``) evaluates a fusion model with one modality removed: clinical features are zeroed and marked
missing; image features reaching the fusion are zeroed and marked absent. ``FusionConfig.modality_dropout`` does
the same per sample at random while training, so models learn to cope with a missing modality.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mmtune.config.run import ClinicalEncoderConfig, ModelConfig
from mmtune.data.format import ImageInfo
from mmtune.errors import ConfigError
from mmtune.models.features import ClinicalFeatures, ImageFeatures
from mmtune.models.fusion import Fusion, FusionDims, NoFusion
from mmtune.models.heads import DenseLayout
from mmtune.models.image_encoder import ImageEncoder, build_image_encoder
from mmtune.models.registries import CLINICAL_ENCODERS, FUSIONS, HEADS, SHARINGS
from mmtune.registry import validate_params
from mmtune.tasks import DENSE_KINDS, TaskKind, TaskSpec

Modality = Literal["clinical", "image"]
MODALITIES = ("clinical", "image")


class MultiTaskModel(nn.Module):
    """See the module docstring. ``shared_parameters`` / ``task_parameters`` serve gradient weightings."""

    def __init__(
        self,
        tasks: list[TaskSpec],
        image_encoder: ImageEncoder | None,
        clinical_encoder: nn.Module | None,
        fusion: Fusion,
        heads: nn.ModuleDict,
        dense_heads: nn.ModuleDict,
        modality_dropout: float = 0.0,
        sharing: nn.ModuleDict | None = None,
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.image_encoder = image_encoder
        self.clinical_encoder = clinical_encoder
        self.fusion = fusion
        self.heads = heads  # branch -> task -> head
        self.dense_heads = dense_heads  # task -> decoder
        self.modality_dropout = modality_dropout
        self.sharing = sharing  # branch -> sharing module (None: hard parameter sharing)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    # ---- modalities -------------------------------------------------------------------------------------
    def _drop_masks(
        self, batch: Mapping[str, Any], size: int, device: torch.device, drop: str | None
    ) -> tuple[Tensor, Tensor]:
        """Per-sample 0/1 float masks (image_dropped, clinical_dropped)."""
        none = torch.zeros(size, device=device)
        if drop is not None:
            if drop not in MODALITIES:
                raise ValueError(f"drop_modality must be one of {MODALITIES} or None, got {drop!r}")
            full = torch.ones(size, device=device)
            return (full, none) if drop == "image" else (none, full)
        both = self.fusion.uses_image and self.fusion.uses_clinical
        if not (self.training and self.modality_dropout > 0 and both):
            return none, none
        hit = (torch.rand(size, device=device) < self.modality_dropout).float()
        image_side = (torch.rand(size, device=device) < 0.5).float()
        return hit * image_side, hit * (1 - image_side)

    def encode(
        self, batch: Mapping[str, Any], drop_modality: Modality | None = None
    ) -> tuple[ImageFeatures | None, ImageFeatures | None, ClinicalFeatures | None]:
        """(raw image features for decoders, image features as the fusion sees them, clinical features)."""
        drop = drop_modality if drop_modality is not None else batch.get("drop_modality")
        reference = batch["image"] if "image" in batch else batch["clinical"]
        size, device = reference.shape[0], reference.device
        image_dropped, clinical_dropped = self._drop_masks(batch, size, device, drop)
        clinical = None
        if self.fusion.uses_clinical:
            keep = (1 - clinical_dropped).unsqueeze(1)
            values = batch["clinical"] * keep
            missing = batch["clinical_missing"] * keep + (1 - keep)
            present = 1 - missing.min(dim=1).values if missing.shape[1] else torch.zeros(size, device=device)
            embedding = self.clinical_encoder(values, missing) if self.clinical_encoder is not None else values[:, :0]
            clinical = ClinicalFeatures(values, missing, embedding, present)
        raw = fused_view = None
        if self.image_encoder is not None:
            extra = self.fusion.image_inputs(clinical) if clinical is not None else None
            with self.fusion.conditioning(clinical):
                raw = self.image_encoder(batch["image"], extra)
            fused_view = raw.masked(1 - image_dropped) if self.fusion.uses_image else raw
        return raw, fused_view, clinical

    def forward_features(self, batch: Mapping[str, Any], drop_modality: Modality | None = None) -> dict[str, Tensor]:
        """The fused representation(s): ``{branch: [B, fusion.out_dim]}`` (``late`` has image + clinical)."""
        _, image, clinical = self.encode(batch, drop_modality)
        return self.fusion(image, clinical)

    def forward(self, batch: Mapping[str, Any], drop_modality: Modality | None = None) -> dict[str, Tensor]:
        raw, image, clinical = self.encode(batch, drop_modality)
        outputs: dict[str, Tensor] = {}
        if len(self.heads[self.fusion.branches[0]]):
            branches = self.fusion(image, clinical)
            per_task = {
                b: self.sharing[b](branches[b])
                if self.sharing is not None
                else dict.fromkeys(self.heads[b], branches[b])
                for b in self.fusion.branches
            }
            for name in self.heads[self.fusion.branches[0]]:
                per_branch = {b: self.heads[b][name](per_task[b][name]) for b in self.fusion.branches}
                outputs[name] = self.fusion.combine(name, per_branch, image, clinical)
        if len(self.dense_heads):
            assert raw is not None and self.image_encoder is not None
            pixels = batch["image"]
            size, crop = self.image_encoder.padded_size(pixels), tuple(pixels.shape[2:])
            for name, head in self.dense_heads.items():
                outputs[name] = head(raw, size, crop)
        return {name: outputs[name] for name in self.task_names}

    # ---- parameter groups for gradient weightings ------------------------------------------------------
    def shared_parameters(self) -> list[nn.Parameter]:
        """Encoders and fusion (less late fusion's per-task mixing weights): what every task's gradient touches."""
        params: list[nn.Parameter] = []
        for module in (self.image_encoder, self.clinical_encoder):
            if module is not None:
                params += list(module.parameters())
        params += self.fusion.shared_parameters()
        if self.sharing is not None:
            own = {id(p) for t in self.task_names for p in self._sharing_task_parameters(t)}
            params += [p for p in self.sharing.parameters() if id(p) not in own]
        return params

    def _sharing_task_parameters(self, name: str) -> list[nn.Parameter]:
        if self.sharing is None:
            return []
        return [p for module in self.sharing.values() if name in module.tasks for p in module.task_parameters(name)]

    def task_parameters(self, name: str) -> list[nn.Parameter]:
        """Parameters that only ``name``'s loss reaches (its heads / decoder)."""
        if name not in self.task_names:
            raise KeyError(f"unknown task {name!r}; the model has: {', '.join(self.task_names)}")
        params: list[nn.Parameter] = []
        for branch in self.heads.values():
            if name in branch:
                params += list(branch[name].parameters())
        if name in self.dense_heads:
            params += list(self.dense_heads[name].parameters())
        return params + self.fusion.task_parameters(name) + self._sharing_task_parameters(name)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The last shared layer (where GradNorm measures per-task gradient norms)."""
        layer = self.fusion.last_layer()
        params = list(layer.parameters()) if layer is not None else []
        return params or self.shared_parameters()[-2:]


def build_model(cfg: ModelConfig, image: ImageInfo, n_clinical: int, tasks: list[TaskSpec]) -> MultiTaskModel:
    """Build the model named by ``cfg`` for data with image layout ``image``, ``n_clinical`` features, ``tasks``."""
    if not tasks:
        raise ConfigError("tasks: at least one task is needed")
    fusion_entry = FUSIONS.entry(cfg.fusion.name, "model.fusion.name")
    fusion_params = validate_params(fusion_entry, cfg.fusion.params, "model.fusion.params")
    fusion_cls = fusion_entry.factory
    dense = [t for t in tasks if t.kind in DENSE_KINDS]
    vector = [t for t in tasks if t.kind not in DENSE_KINDS]
    check_model_combination(cfg, n_clinical, tasks)

    if not vector:  # only dense tasks: nothing reads a fused vector, so build no fusion or clinical encoder
        fusion_cls, fusion_params = NoFusion, {}
    extra_channels = fusion_cls.image_input_channels(n_clinical)
    image_encoder = (
        build_image_encoder(cfg.backbone, image, extra_channels) if (fusion_cls.uses_image or dense) else None
    )
    clinical_encoder = None
    if fusion_cls.needs_clinical_encoder:
        entry = CLINICAL_ENCODERS.entry(cfg.clinical_encoder.name, "model.clinical_encoder.name")
        try:
            clinical_encoder = entry.factory(n_clinical, **clinical_encoder_kwargs(cfg.clinical_encoder))
        except ValueError as exc:
            raise ConfigError(f"model.clinical_encoder: {exc} ({cfg.clinical_encoder.name!r})") from None
    dims = FusionDims(
        image=image_encoder.out_dim if image_encoder is not None else 0,
        clinical=int(getattr(clinical_encoder, "out_dim", 0)),
        n_clinical=n_clinical,
        channels=tuple(image_encoder.channels) if image_encoder is not None else (),
        spatial_dims=image_encoder.spatial_dims if image_encoder is not None else 0,
        out=cfg.fusion.dim,
        tasks=tuple(t.name for t in vector),
    )
    try:
        fusion = fusion_cls(dims, **fusion_params)
        if image_encoder is not None:
            fusion.attach(image_encoder)
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"model.fusion.params: {exc} (fusion {cfg.fusion.name!r})") from None

    sharing = build_sharing(cfg, fusion, [t.name for t in vector])
    heads = nn.ModuleDict({branch: nn.ModuleDict() for branch in fusion.branches})
    for task in vector:
        factory = HEADS.get(task.kind.value, f"tasks.{task.name}")
        for branch in fusion.branches:
            heads[branch][task.name] = factory(task, fusion.out_dim, hidden=cfg.head.hidden, dropout=cfg.head.dropout)
    dense_heads = nn.ModuleDict()
    if dense:
        assert image_encoder is not None
        layout = DenseLayout(
            image.layout, cfg.backbone.mode, image.shape[0], image_encoder.spatial_dims, tuple(image_encoder.channels)
        )
        for task in dense:
            factory = HEADS.get(task.kind.value, f"tasks.{task.name}")
            dense_heads[task.name] = factory(task, layout, width=cfg.head.decoder_width)
    return MultiTaskModel(
        tasks, image_encoder, clinical_encoder, fusion, heads, dense_heads, cfg.fusion.modality_dropout, sharing
    )


COMMON_ENCODER_KEYS = ("hidden", "depth", "dropout", "missing_indicators")


def clinical_encoder_kwargs(cfg: ClinicalEncoderConfig) -> dict[str, Any]:
    """The encoder factory's keyword arguments: the common keys plus ``params`` checked against its signature."""
    entry = CLINICAL_ENCODERS.entry(cfg.name, "model.clinical_encoder.name")
    for key in cfg.params:
        if key in COMMON_ENCODER_KEYS:
            raise ConfigError(
                f"model.clinical_encoder.params.{key}: set model.clinical_encoder.{key} instead (a common key)"
            )
    params = validate_params(entry, cfg.params, "model.clinical_encoder.params")
    common = {k: getattr(cfg, k) for k in COMMON_ENCODER_KEYS}
    return {**common, **params}


def build_sharing(cfg: ModelConfig, fusion: Fusion, vector_tasks: list[str]) -> nn.ModuleDict | None:
    """One sharing module per fusion branch on the fused vector (``None`` for hard sharing or no vector task)."""
    entry = SHARINGS.entry(cfg.sharing, "model.sharing")
    params = validate_params(entry, cfg.sharing_params, "model.sharing_params")
    if not vector_tasks or not fusion.branches:
        return None
    try:
        modules = {b: entry.factory(fusion.out_dim, vector_tasks, **params) for b in fusion.branches}
    except ValueError as exc:
        raise ConfigError(f"model.sharing: {cfg.sharing!r} {exc}") from None
    if any(m is None for m in modules.values()):
        return None
    return nn.ModuleDict(modules)


def check_model_combination(cfg: ModelConfig, n_clinical: int, tasks: list[TaskSpec]) -> None:
    """Incompatible fusion / data / task combinations, as one-line errors naming the YAML key."""
    entry = FUSIONS.entry(cfg.fusion.name, "model.fusion.name")
    fusion_cls = entry.factory
    SHARINGS.check(cfg.sharing, "model.sharing")
    vector = [t.name for t in tasks if t.kind not in DENSE_KINDS]
    if cfg.sharing != "hard" and len(vector) < 2:
        raise ConfigError(
            f"model.sharing: {cfg.sharing!r} shares the fused vector between tasks but the run has "
            f"{len(vector)} classification/regression task(s) ({', '.join(vector) or 'none'}); use 'hard'"
        )
    if fusion_cls.uses_clinical and n_clinical == 0:
        usable = [e.name for e in FUSIONS if not e.factory.uses_clinical]
        raise ConfigError(
            f"model.fusion.name: {cfg.fusion.name!r} needs clinical features but the data have none; "
            f"use one of: {', '.join(usable)}"
        )
    for task in tasks:
        if task.kind in DENSE_KINDS and not fusion_cls.uses_image:
            raise ConfigError(
                f"model.fusion.name: {cfg.fusion.name!r} builds no image encoder but task {task.name!r} is "
                f"{task.kind.value}; use a fusion with an image branch"
            )
        if task.kind in (TaskKind.MULTICLASS, TaskKind.MULTILABEL) and len(task.classes) < 2:
            raise ConfigError(f"tasks: {task.kind.value} task {task.name!r} needs at least 2 classes in the manifest")
