"""The run config: everything one training run needs, validated before any work starts.

Sections are small models so search spaces and ablations address them with dotted keys
(``model.fusion.name``, ``weighting.name``, ``optim.lr``). Component names are checked against the registries
later, by ``mmtune.validation``, so this module imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mmtune.config.loading import StrictModel, apply_overrides, load_yaml, validate


class DataSource(StrictModel):
    """One prepared data set; several of them train one model (multi-dataset multi-task learning)."""

    path: str
    weight: float = Field(1.0, gt=0, description="relative sampling weight of this data set in a batch stream")
    name: str | None = Field(None, description="short name used in metric keys; defaults to the manifest name")


class CVConfig(StrictModel):
    """Repeated k-fold (ablations): a fresh stratified patient-level partition of the non-test patients, computed
    deterministically from (k, seed) by ``mmtune.data.cv``; fold ``fold`` validates, the other folds train."""

    k: int = Field(5, ge=2)
    fold: int = Field(0, ge=0)
    seed: int = 0
    stratify_by: str | None = Field(None, description="task whose labels stratify the folds (default: the card's)")

    @model_validator(mode="after")
    def _fold_below_k(self) -> CVConfig:
        if self.fold >= self.k:
            raise ValueError(f"fold {self.fold} does not exist with k = {self.k} (0..{self.k - 1})")
        return self


def default_prepared_path(card: str | Path) -> Path:
    """Where a card's prepared data go when ``data.path`` is not given: ``data/<card stem>_prepared``."""
    return Path("data") / f"{Path(card).stem}_prepared"


class DataConfig(StrictModel):
    """Which prepared data, which fold, how to batch."""

    path: str | list[DataSource] | None = Field(None, description="prepared dir, or a list of data sources")
    card: str | None = Field(None, description="dataset card to prepare from when `path` does not exist yet")
    source: str | None = Field(None, description="raw data dir overriding the card's source path")
    fold: int | None = Field(None, ge=0, description="CV fold used as validation; None = the `split` column")
    test_group: str | None = Field(None, description="leave-one-group-out: this group is the test set")
    cv: CVConfig | None = Field(None, description="repeated k-fold partition (mmtune.data.cv) instead of `fold`")
    batch_size: int = Field(16, ge=1)
    num_workers: int = Field(0, ge=0)
    augment: bool = False
    cache: Literal["auto", "node", "memory", "ray_data"] = Field(
        "auto",
        description="node: decoded splits memory-mapped from one per-node copy on local disk (shared by the "
        "node's trials, works past memory); memory: each process reads its own; auto: node above 256 MiB of images; "
        "ray_data: Ray Train workers stream the train split as Ray Data shards (other runs read it into memory)",
    )

    @model_validator(mode="after")
    def _needs_path_or_card(self) -> DataConfig:
        if self.path is None and self.card is None:
            raise ValueError("give `path` (a prepared data set) or `card` (a dataset card to prepare)")
        if self.cv is not None and (self.fold is not None or self.test_group is not None):
            raise ValueError("`cv` replaces the stored folds: give `cv` or `fold`/`test_group`, not both")
        return self

    @property
    def sources(self) -> list[DataSource]:
        if self.path is None:
            return []
        if isinstance(self.path, str):
            return [DataSource(path=self.path)]
        return list(self.path)


class TaskConfig(StrictModel):
    """A task to learn (must exist in the prepared data) and its loss options (checked by ``mmtune.validation``)."""

    name: str
    loss: str | None = Field(
        None, description="override the kind's default loss: bce, ce, mse, smooth_l1, l1, dice_ce, dice"
    )
    weight: float = Field(1.0, ge=0, description="static weight (used by the `static` weighting)")
    pos_weight: float | Literal["auto"] | None = Field(
        None, description="binary/multilabel BCE weight of positives; 'auto' = negatives/positives of the train split"
    )
    class_weights: list[float] | Literal["balanced"] | None = Field(
        None, description="multiclass CE class weights; 'balanced' = n / (C * count) on the train split"
    )


class BackboneConfig(StrictModel):
    """The image encoder; ``params`` are keyword arguments of the registered factory (``mmtune list backbones``)."""

    name: str = "small_cnn"
    mode: Literal["channels", "mil"] = Field(
        "channels", description="2D stacks: slices as input channels, or a shared slice encoder + attention MIL"
    )
    pretrained: str | None = Field(None, description="local path to weights; nothing is ever downloaded")
    params: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments of the factory")


class ClinicalEncoderConfig(StrictModel):
    """Encoder of the clinical features (+ missing indicators); built only when the fusion reads them."""

    name: str = "mlp"
    hidden: int = Field(64, ge=1)
    depth: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    missing_indicators: bool = True
    params: dict[str, Any] = Field(
        default_factory=dict, description="the encoder's own keyword arguments (e.g. ft_transformer: heads)"
    )


class FusionConfig(StrictModel):
    """How image and clinical features meet (``mmtune list fusions``)."""

    name: str = "concat"
    dim: int = Field(128, ge=1, description="width of the fused representation")
    modality_dropout: float = Field(0.0, ge=0, lt=1, description="chance to blank one modality per sample")
    params: dict[str, Any] = Field(default_factory=dict)


class HeadConfig(StrictModel):
    """Task heads: MLPs on the fused representation; U-Net decoders for segmentation / reconstruction."""

    hidden: int = Field(0, ge=0, description="0 = a linear head, else one hidden layer of this width")
    dropout: float = Field(0.0, ge=0, lt=1)
    decoder_width: int = Field(32, ge=1, description="channels of every stage of the dense-task decoders")


class ModelConfig(StrictModel):
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    clinical_encoder: ClinicalEncoderConfig = Field(default_factory=ClinicalEncoderConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    sharing: str = Field(
        "hard", description="how vector tasks share the fused vector: hard, mmoe, cgc, cross_stitch (mmtune list)"
    )
    sharing_params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the sharing")
    head: HeadConfig = Field(default_factory=HeadConfig)
    reference: Literal["gbdt"] | None = Field(
        None,
        description="'gbdt': no network; a scikit-learn gradient-boosted model per task on the clinical features "
        "(a clinical-only reference cell for ablations, same predictions and metrics)",
    )
    reference_params: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the reference model (mmtune.training.gbdt)"
    )


class WeightingConfig(StrictModel):
    """Task-loss weighting; ``params`` are checked against the chosen weighting's signature."""

    name: str = "equal"
    params: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(StrictModel):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["none", "cosine"] = "none"


class TrainerConfig(StrictModel):
    max_epochs: int = Field(10, ge=1)
    seed: int = 0
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    precision: str = "32-true"
    deterministic: bool = True
    gradient_clip: float | None = Field(None, gt=0)
    early_stopping_patience: int | None = Field(None, ge=1)
    monitor: str = "val/mean_auroc"
    mode: Literal["max", "min"] = "max"
    limit_train_batches: int | float | None = None
    diagnostics: bool = Field(
        True, description="per-epoch task weights, shared-gradient norms and cosines on a fixed batch (diag/...)"
    )
    diagnostics_batch: int = Field(8, ge=1, description="samples in the fixed diagnostics batch")
    progress: bool = True
    num_threads: int | None = Field(
        None, ge=1, description="torch intra-op CPU threads (None = torch's default; 1 is fastest on busy machines)"
    )


class TrackingConfig(StrictModel):
    aim_repo: str | None = Field("aim", description="Aim repo directory; null disables Aim")
    experiment: str = "mmtune"
    tags: dict[str, str] = Field(default_factory=dict)


class RunConfig(StrictModel):
    """One training run."""

    name: str = "run"
    data: DataConfig
    tasks: list[TaskConfig] = Field(min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    weighting: WeightingConfig = Field(default_factory=WeightingConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    output_dir: str = "runs"

    @field_validator("tasks", mode="before")
    @classmethod
    def _names_to_tasks(cls, value: Any) -> Any:
        # ``tasks: [covid, morbidity]`` is shorthand for ``[{name: covid}, {name: morbidity}]``.
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, value: list[TaskConfig]) -> list[TaskConfig]:
        names = [t.name for t in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task listed twice: {', '.join(dupes)}")
        return value

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]


def load_run_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Load a run config YAML, apply ``--set`` overrides, validate; relative data paths resolve from the CWD."""
    data = apply_overrides(load_yaml(path), overrides or {})
    return validate(RunConfig, data, str(path))
